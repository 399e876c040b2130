"""The command line: help, one-line errors, user management."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from mdm.cli import app
from tests.conftest import make_workspace

runner = CliRunner()


def _mdm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mdm.cli", *args], capture_output=True, text=True, check=False)


def test_help_lists_every_command():
    out = runner.invoke(app, ["--help"]).output
    for command in ("run", "generate", "serve", "query", "review", "users", "audit", "keys", "backup", "restore",
                    "rollback", "versions"):
        assert command in out


def test_bad_arguments_give_one_line_errors_not_tracebacks(tmp_path):
    for args, expected in (
        (["generate", "--persons", "0", "--out", str(tmp_path / "x")], "at least 1"),
        (["run", "--config", str(tmp_path / "missing.yaml")], "not found"),
        (["run", "--business-date", "2026-02-30"], "YYYY-MM-DD"),
    ):
        result = _mdm(*args)
        assert result.returncode != 0
        assert expected in result.stderr
        assert "Traceback" not in result.stderr + result.stdout
        assert len(result.stderr.strip().splitlines()) <= 2


def test_users_add_list_and_refusals(tmp_path):
    ws = make_workspace(tmp_path / "ws", generate=False)
    cfg = ["--config", str(ws.config_path)]
    ok = runner.invoke(app, ["users", "add", "alice", "--role", "steward", "--password", "a long password", *cfg])
    assert ok.exit_code == 0, ok.output
    listing = runner.invoke(app, ["users", "list", *cfg])
    assert "alice" in listing.output and "steward" in listing.output
    bad_role = _mdm("users", "add", "bob", "--role", "king", "--password", "a long password", *cfg)
    assert bad_role.returncode != 0 and "unknown role" in bad_role.stderr
    short = _mdm("users", "add", "carol", "--password", "short", *cfg)
    assert short.returncode != 0 and "at least" in short.stderr
