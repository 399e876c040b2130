"""Backup and restore: identical files after a round trip; damaged or unsafe archives refused."""

from __future__ import annotations

import io
import sqlite3
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mdm.audit import AuditLog
from mdm.backup import BackupError, create_backup, restore_backup
from mdm.mart import build_mart
from schemas.masking import DEFAULT_MASKING
from tests.test_mart_query import TOKEN_KEY, make_master, write_config


def _world(root: Path) -> None:
    version = make_master(root / "master")
    build_mart(version, root / "mart", DEFAULT_MASKING, TOKEN_KEY)
    state = root / "state"
    state.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(state / "steward.sqlite")
    con.execute("CREATE TABLE decisions (id INTEGER PRIMARY KEY, verdict TEXT)")
    con.executemany("INSERT INTO decisions (verdict) VALUES (?)", [("match",), ("no_match",)])
    con.commit()
    con.close()
    AuditLog.for_state(state).append("ops", "publish", "master:r1", {})


def _tree(root: Path, parts: tuple[str, ...] = ("master", "mart", "state")) -> dict[str, bytes]:
    out = {}
    for part in parts:
        for f in sorted((root / part).rglob("*")):
            if f.is_file() and f.name not in ("audit.lock", ".lock"):
                out[f.relative_to(root).as_posix()] = f.read_bytes()
    return out


def test_backup_restore_gives_identical_files(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _world(src)
    report = create_backup(src / "master", src / "state", src / "mart", tmp_path / "b.tar.gz")
    assert report.master_version == "r1" and report.files >= 10
    restored = restore_backup(tmp_path / "b.tar.gz", dst / "master", dst / "state", dst / "mart")
    assert restored.files == report.files
    before, after = _tree(src), _tree(dst)
    assert before.keys() == after.keys()
    for name in before:
        assert before[name] == after[name], name
    assert AuditLog.for_state(dst / "state").verify().ok


def test_restore_refuses_non_empty_target_unless_forced(tmp_path: Path) -> None:
    _world(tmp_path / "src")
    archive = create_backup(tmp_path / "src" / "master", tmp_path / "src" / "state", tmp_path / "src" / "mart",
                            tmp_path / "b.tar.gz").archive
    target = tmp_path / "src"
    with pytest.raises(BackupError, match="--force"):
        restore_backup(archive, target / "master", target / "state", target / "mart")
    restore_backup(archive, target / "master", target / "state", target / "mart", force=True)


def _archive(path: Path, members: dict[str, bytes], manifest: bytes | None = None) -> Path:
    import hashlib
    import json

    if manifest is None:
        files = {n: {"bytes": len(d), "sha256": hashlib.sha256(d).hexdigest()} for n, d in members.items()}
        manifest = json.dumps({"files": files}).encode()
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [("manifest.json", manifest), *members.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil", "master/../../evil", "other/file"])
def test_restore_refuses_path_traversal(tmp_path: Path, name: str) -> None:
    archive = _archive(tmp_path / "evil.tar.gz", {name: b"x"})
    with pytest.raises(BackupError, match="refusing"):
        restore_backup(archive, tmp_path / "t" / "master", tmp_path / "t" / "state", tmp_path / "t" / "mart")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "t").exists()


def test_restore_refuses_links_and_bad_checksums(tmp_path: Path) -> None:
    link = tmp_path / "link.tar.gz"
    with tarfile.open(link, "w:gz") as tar:
        info = tarfile.TarInfo("state/audit.log")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(BackupError, match="link"):
        restore_backup(link, tmp_path / "m", tmp_path / "s", tmp_path / "a")
    bad = _archive(tmp_path / "bad.tar.gz", {"state/x.txt": b"changed"},
                   manifest=b'{"files": {"state/x.txt": {"bytes": 7, "sha256": "00"}}}')
    with pytest.raises(BackupError, match="checksum"):
        restore_backup(bad, tmp_path / "m", tmp_path / "s", tmp_path / "a")
    assert not (tmp_path / "s").exists()


def test_cli_backup_and_restore(tmp_path: Path) -> None:
    from mdm.cli import app

    src = tmp_path / "src"
    src.mkdir()
    _world(src)
    config = write_config(src)
    runner = CliRunner()
    out = tmp_path / "b.tar.gz"
    result = runner.invoke(app, ["backup", "--config", str(config), "--out", str(out), "--user", "ops"])
    assert result.exit_code == 0, result.output
    refused = runner.invoke(app, ["restore", str(out), "--config", str(config)])
    assert refused.exit_code != 0 and isinstance(refused.exception, BackupError)
    dst = tmp_path / "dst"
    dst.mkdir()
    config2 = write_config(dst)
    result = runner.invoke(app, ["restore", str(out), "--config", str(config2), "--user", "ops"])
    assert result.exit_code == 0, result.output
    assert _tree(src, ("master", "mart")) == _tree(dst, ("master", "mart"))
    log = AuditLog.for_state(dst / "state")
    assert log.verify().ok and [e["action"] for e in log.entries()] == ["publish", "restore"]
    assert [e["action"] for e in AuditLog.for_state(src / "state").entries()] == ["publish", "backup"]
