"""The hash-chained audit trail: tampering of any kind is detected."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mdm.audit import AuditLog
from tests.test_mart_query import write_config


def _log(tmp_path: Path, n: int = 5) -> AuditLog:
    log = AuditLog.for_state(tmp_path / "state")
    for i in range(n):
        log.append(f"user{i}", "search", "customers", {"kind": "name", "results": i})
    return log


def _lines(log: AuditLog) -> list[str]:
    return log.path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_intact_log_verifies(tmp_path: Path) -> None:
    log = _log(tmp_path)
    result = log.verify()
    assert result.ok and result.entries == 5
    assert [e["seq"] for e in log.entries()] == [1, 2, 3, 4, 5]


def test_pii_in_details_is_redacted(tmp_path: Path) -> None:
    log = AuditLog.for_state(tmp_path)
    entry = log.append("ana", "query", "mart", {"sql": "WHERE id = '110101199003071234' OR m = '13800138000'"})
    text = log.path.read_text(encoding="utf-8")
    assert "110101199003071234" not in text and "13800138000" not in text
    assert entry["details"]["sql"].startswith("WHERE id = '110101")


def test_edited_field_is_detected(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    entry = json.loads(lines[2])
    entry["actor"] = "someone_else"
    lines[2] = json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n"
    log.path.write_text("".join(lines), encoding="utf-8")
    result = log.verify()
    assert not result.ok and result.bad_line == 3 and "edited" in (result.problem or "")


def test_deleted_line_is_detected(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    del lines[1]
    log.path.write_text("".join(lines), encoding="utf-8")
    result = log.verify()
    assert not result.ok and result.bad_line == 2


def test_swapped_lines_are_detected(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    lines[1], lines[2] = lines[2], lines[1]
    log.path.write_text("".join(lines), encoding="utf-8")
    result = log.verify()
    assert not result.ok and result.bad_line == 2


def test_inserted_line_is_detected(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    lines.insert(3, lines[3])
    log.path.write_text("".join(lines), encoding="utf-8")
    assert not log.verify().ok


def test_truncated_tail_is_detected(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    log.path.write_text("".join(lines[:3]), encoding="utf-8")
    result = log.verify()
    assert not result.ok and result.entries == 3 and "removed from the end" in (result.problem or "")
    # appending after a truncation does not hide it
    log.append("x", "search", "customers", {})
    assert not log.verify().ok


def test_keyed_log_cannot_be_rewritten_without_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MDM_AUDIT_KEY", "audit-secret-0123456789")
    log = _log(tmp_path, 3)
    assert log.verify().ok
    monkeypatch.setenv("MDM_AUDIT_KEY", "another-key-0123456789")
    assert not log.verify().ok
    monkeypatch.delenv("MDM_AUDIT_KEY")
    assert "MDM_AUDIT_KEY" in (log.verify().problem or "")


def test_concurrent_writers_keep_one_chain(tmp_path: Path) -> None:
    log = AuditLog.for_state(tmp_path)

    def work(n: int) -> None:
        for i in range(10):
            AuditLog.for_state(tmp_path).append(f"t{n}", "search", "customers", {"i": i})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = log.verify()
    assert result.ok and result.entries == 40


def test_cli_verify_and_show(tmp_path: Path) -> None:
    from mdm.cli import app

    config = write_config(tmp_path)
    log = _log(tmp_path, 3)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify", "--config", str(config)])
    assert ok.exit_code == 0 and "OK: 3" in ok.output
    shown = runner.invoke(app, ["audit", "show", "--config", str(config), "--last", "2"])
    assert shown.exit_code == 0 and "user2" in shown.output and "user0" not in shown.output
    lines = _lines(log)
    log.path.write_text(lines[0] + lines[2], encoding="utf-8")
    bad = runner.invoke(app, ["audit", "verify", "--config", str(config)])
    assert bad.exit_code == 1 and "line 2" in bad.output
