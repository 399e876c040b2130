"""Backup and restore of what a bank cannot rebuild from the extracts alone.

An archive (``.tar.gz``) holds ``master/`` (``CURRENT`` and the current version, registry
included), ``mart/`` (``CURRENT`` and its current version, when built), ``state/`` (steward
decisions, users, the audit log and its head) and ``manifest.json`` with the size and
SHA-256 of every file. SQLite databases are copied with SQLite's online backup and the
audit log under its writer lock, so a running web app does not tear them.

Restore refuses a non-empty target unless forced, refuses any member that is not a plain
file under those three folders (absolute paths, ``..``, links, devices), checks every
checksum while unpacking into a staging folder, and only then moves files into place;
``CURRENT`` pointers are switched last.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import os
import shutil
import sqlite3
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mdm.audit import AUDIT_FILE, HEAD_FILE, LOCK_FILE, AuditLog
from mdm.errors import MdmError

log = logging.getLogger(__name__)

__all__ = ["BackupError", "BackupReport", "create_backup", "restore_backup"]

MANIFEST = "manifest.json"
ROOTS = ("master", "mart", "state")
_SKIP_STATE = (LOCK_FILE, ".lock")
_SKIP_SUFFIXES = ("-wal", "-shm", "-journal", ".tmp")


class BackupError(MdmError):
    """A backup cannot be written, or an archive cannot be restored (damaged, unsafe, target not empty)."""


@dataclass(frozen=True)
class BackupReport:
    archive: Path
    files: int
    bytes: int
    master_version: str | None
    mart_version: str | None


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _current(folder: Path) -> str | None:
    try:
        name = (folder / "CURRENT").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name or None


def _versioned_files(folder: Path, root: str) -> Iterator[tuple[str, Path]]:
    name = _current(folder)
    if name is None:
        return
    version = folder / "versions" / name
    if not version.is_dir():
        raise BackupError(f"{folder / 'CURRENT'} names {name}, which does not exist; nothing consistent to back up")
    yield f"{root}/CURRENT", folder / "CURRENT"
    for file in sorted(version.rglob("*")):
        if file.is_file():
            yield f"{root}/versions/{name}/{file.relative_to(version).as_posix()}", file


def _read_sqlite(path: Path) -> bytes:
    """A consistent copy of a live SQLite database.

    With no pending write-ahead log the file is copied byte for byte while a write lock
    keeps writers out; otherwise SQLite's online backup makes a logically equal copy.
    """
    wal = path.with_name(path.name + "-wal")
    con = sqlite3.connect(path, timeout=30)
    try:
        con.execute("BEGIN IMMEDIATE")
        try:
            if not wal.exists() or wal.stat().st_size == 0:
                return path.read_bytes()
        finally:
            con.rollback()
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "copy.sqlite"
            dst = sqlite3.connect(copy)
            try:
                con.backup(dst)
            finally:
                dst.close()
            return copy.read_bytes()
    finally:
        con.close()


def _read_state_file(path: Path, audit_files: dict[str, bytes]) -> bytes:
    if path.name in audit_files:
        return audit_files[path.name]
    if path.suffix in (".sqlite", ".sqlite3", ".db"):
        return _read_sqlite(path)
    return path.read_bytes()


def create_backup(master_dir: Path, state_dir: Path, mart_dir: Path | None, out: Path) -> BackupReport:
    """Write a backup archive of the current master, the mart and the state folder to ``out``."""
    master_dir, state_dir, out = Path(master_dir), Path(state_dir), Path(out)
    members: list[tuple[str, bytes]] = []
    for arcname, file in _versioned_files(master_dir, "master"):
        members.append((arcname, file.read_bytes()))
    if mart_dir is not None:
        for arcname, file in _versioned_files(Path(mart_dir), "mart"):
            members.append((arcname, file.read_bytes()))
    if state_dir.is_dir():
        audit = AuditLog.for_state(state_dir)
        with audit._locked():  # a consistent log + head pair
            audit_files = {n: (state_dir / n).read_bytes() for n in (AUDIT_FILE, HEAD_FILE) if (state_dir / n).exists()}
        for file in sorted(state_dir.rglob("*")):
            if not file.is_file() or file.name in _SKIP_STATE or file.name.endswith(_SKIP_SUFFIXES):
                continue
            members.append((f"state/{file.relative_to(state_dir).as_posix()}", _read_state_file(file, audit_files)))
    if not members:
        raise BackupError(f"nothing to back up: no master under {master_dir} and no state under {state_dir}")
    master_version = _current(master_dir)
    mart_version = _current(Path(mart_dir)) if mart_dir is not None else None
    manifest = {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "master_version": master_version,
        "mart_version": mart_version,
        "files": {name: {"bytes": len(data), "sha256": _sha256_bytes(data)} for name, data in members},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for name, data in [(MANIFEST, json.dumps(manifest, indent=2).encode()), *members]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            info.mtime = int(dt.datetime.now(dt.UTC).timestamp())
            tar.addfile(info, io.BytesIO(data))
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, out)
    total = sum(len(d) for _, d in members)
    log.info("backup %s: %d files, %d bytes", out.name, len(members), total)
    return BackupReport(out, len(members), total, master_version, mart_version)


# --------------------------------------------------------------------------- restore


def _safe_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or not path.parts:
        raise BackupError(f"archive member {name!r} has an unsafe path; refusing the whole archive")
    if name != MANIFEST and path.parts[0] not in ROOTS:
        raise BackupError(f"archive member {name!r} is outside master/, mart/ and state/; refusing the archive")
    return path


def _not_empty(folder: Path) -> bool:
    return folder.is_dir() and any(p.name not in (".lock", LOCK_FILE) for p in folder.iterdir())


def _read_members(tar: tarfile.TarFile, data: dict[str, bytes]) -> None:
    for member in tar:
        _safe_name(member.name)
        if member.isdir():
            continue
        if not member.isfile():
            raise BackupError(f"archive member {member.name!r} is a link or device; refusing the archive")
        if member.name in data:
            raise BackupError(f"archive member {member.name!r} appears twice; refusing the archive")
        handle = tar.extractfile(member)
        if handle is None:
            raise BackupError(f"archive member {member.name!r} cannot be read")
        data[member.name] = handle.read()


def _read_archive(archive: Path) -> tuple[dict[str, dict[str, object]], dict[str, bytes]]:
    data: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            _read_members(tar, data)
    except (OSError, tarfile.TarError, EOFError) as e:
        raise BackupError(f"{archive} is not a readable backup archive ({type(e).__name__})") from e
    if MANIFEST not in data:
        raise BackupError(f"{archive} has no {MANIFEST}; it is not a backup of this product")
    files = json.loads(data.pop(MANIFEST)).get("files", {})
    if set(files) != set(data):
        raise BackupError(f"{archive}: the files do not match the manifest (missing or extra members)")
    for name, meta in files.items():
        if len(data[name]) != meta["bytes"] or _sha256_bytes(data[name]) != meta["sha256"]:
            raise BackupError(f"{archive}: {name} does not match its checksum; the archive is damaged")
    return files, data


def _place(staging: Path, rel: PurePosixPath, target_root: Path) -> None:
    dest = target_root.joinpath(*rel.parts[1:])
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_dir():
        shutil.rmtree(dest)
    shutil.move(staging / rel, dest)  # a rename on one file system; CURRENT pointers are placed last


def restore_backup(
    archive: Path, master_dir: Path, state_dir: Path, mart_dir: Path | None, force: bool = False
) -> BackupReport:
    """Restore ``archive`` into the given folders (which must be empty unless ``force``)."""
    master_dir, state_dir = Path(master_dir), Path(state_dir)
    targets = {"master": master_dir, "state": state_dir, "mart": Path(mart_dir) if mart_dir is not None else None}
    if not force:
        busy = [str(p) for p in (master_dir, state_dir, targets["mart"]) if p is not None and _not_empty(p)]
        if busy:
            raise BackupError(f"refusing to restore over non-empty {', '.join(busy)}; use --force to overwrite")
    files, data = _read_archive(Path(archive))
    if any(name.startswith("mart/") for name in files) and targets["mart"] is None:
        raise BackupError("the archive holds an analyst mart but no mart folder was given")
    master_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=master_dir.parent, prefix=".restore-") as tmp:
        staging = Path(tmp)
        for name, content in data.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            if _sha256_bytes(path.read_bytes()) != files[name]["sha256"]:
                raise BackupError(f"{name} did not unpack correctly; nothing was restored")
        ordered = sorted(data, key=lambda n: n.endswith("/CURRENT"))  # pointers last
        for name in ordered:
            rel = _safe_name(name)
            root = targets[rel.parts[0]]
            assert root is not None
            _place(staging, rel, root)
    total = sum(len(d) for d in data.values())
    log.info("restored %d files from %s", len(data), Path(archive).name)
    mart_version = _current(targets["mart"]) if targets["mart"] is not None else None
    return BackupReport(Path(archive), len(data), total, _current(master_dir), mart_version)
