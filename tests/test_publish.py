"""The versioned master: atomic publish, schema checks, rollback, retention, the lock, kill safety."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from mdm.crypto import FileDigest, plain_values
from mdm.errors import PublishError, RunLockedError
from pipelines import publish as pub
from pipelines import version_files as vf
from pipelines.publish import (
    MasterNotFoundError,
    current_version,
    list_versions,
    load_previous,
    master_lock,
    open_master,
    publish_master,
    rollback,
)

ROOT = Path(__file__).resolve().parent.parent


def make_tables(n: int, tag: str = "a") -> dict[str, pd.DataFrame]:
    gids = [f"G{tag.upper()}{i:08d}" for i in range(n)]
    golden = pd.DataFrame(
        {
            "golden_id": gids,
            "name_norm": [f"名{i}" for i in range(n)],
            "n_records": 1,
            "systems": [["deposit"]] * n,
            "all_phones": [[]] * n,
            "all_id_numbers": [[]] * n,
            "all_names": [[f"名{i}"] for i in range(n)],
            "all_emails": [[]] * n,
            "quality_flags": [[]] * n,
            "first_seen_run": tag,
            "first_seen_date": pd.Timestamp("2026-01-01"),
            "last_seen_run": tag,
            "last_seen_date": pd.Timestamp("2026-01-02"),
            "n_deposit": 1,
        }
    )
    xref = pd.DataFrame(
        {
            "source_system": "deposit",
            "source_record_id": [str(i) for i in range(n)],
            "record_key": [f"deposit:{i}" for i in range(n)],
            "golden_id": gids,
            "link_type": "deterministic",
            "link_weight": 20.0,
        }
    )
    registry = pd.DataFrame(
        {
            "golden_id": gids,
            "status": "active",
            "merged_into": None,
            "created_run_id": tag,
            "retired_run_id": None,
            "issued_seq": range(1, n + 1),
        }
    )
    run_log = pd.DataFrame(
        {
            "run_id": [tag],
            "business_date": [dt.date(2026, 1, 2)],
            "started_at": [pd.Timestamp("2026-01-02 01:00")],
            "status": ["ok"],
        }
    )
    return {"golden_customer": golden, "customer_xref": xref, "golden_id_registry": registry, "run_log": run_log}


def snapshot(master: Path) -> dict[str, str]:
    """sha256 of every file under the master folder (the lock file excluded)."""
    return {
        str(p.relative_to(master)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(master.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def test_publish_writes_a_complete_version_and_switches_current(tmp_path: Path) -> None:
    path = publish_master(tmp_path, "r1", make_tables(5), keep_versions=3)
    assert path == tmp_path / "versions" / "r1"
    assert (tmp_path / "CURRENT").read_text().strip() == "r1"
    assert current_version(tmp_path) == path
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["tables"]["golden_customer"]["rows"] == 5
    assert manifest["tables"]["review_queue"]["rows"] == 0  # optional tables are written empty
    for name, meta in manifest["files"].items():
        assert hashlib.sha256((path / name).read_bytes()).hexdigest() == meta["sha256"]
    assert {f"{t}.parquet" for t in pub.MASTER_TABLES} | {"master.duckdb"} == set(manifest["files"])
    with open_master(tmp_path) as con:
        assert con.execute("SELECT count(*) FROM golden_customer").fetchone() == (5,)
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name='golden_customer'"
            ).fetchall()
        )
        assert types["first_seen_date"] == "DATE" and types["systems"] == "VARCHAR[]"
        assert con.execute("SELECT count(*) FROM golden_id_events").fetchone() == (0,)
    assert not list((tmp_path / "versions").glob("*.partial"))


def test_load_previous_returns_the_current_tables(tmp_path: Path) -> None:
    assert load_previous(tmp_path) is None
    publish_master(tmp_path, "r1", make_tables(3), keep_versions=3)
    prev = load_previous(tmp_path)
    assert prev is not None and prev.version == "r1"
    assert list(prev.xref["record_key"]) == ["deposit:0", "deposit:1", "deposit:2"]
    assert list(prev.registry["issued_seq"]) == [1, 2, 3]
    assert prev.golden["first_seen_date"].iloc[0] == pd.Timestamp("2026-01-01")
    assert list(prev.run_log["run_id"]) == ["a"]
    # only what a run reads, and text as Arrow-backed columns (no Python strings per record)
    assert list(prev.xref.columns) == ["record_key", "golden_id"]
    assert list(prev.golden.columns) == ["golden_id", "first_seen_run", "first_seen_date"]
    for frame in (prev.xref, prev.registry, prev.golden):
        text = [c for c in frame.columns if frame[c].dtype == object]
        assert not text, text
    assert prev.xref["golden_id"].dtype == pd.ArrowDtype(pa.string())


def test_schema_mismatch_names_table_and_column_and_leaves_master_unchanged(tmp_path: Path) -> None:
    publish_master(tmp_path, "r1", make_tables(3), keep_versions=3)
    before = snapshot(tmp_path)
    bad = make_tables(3, "b")
    bad["customer_xref"]["link_weight"] = "high"
    with pytest.raises(PublishError, match="customer_xref: column link_weight has type string"):
        publish_master(tmp_path, "r2", bad, keep_versions=3)
    missing = make_tables(3, "b")
    missing["golden_id_registry"] = missing["golden_id_registry"].drop(columns=["merged_into"])
    with pytest.raises(PublishError, match=r"golden_id_registry lacks required column.*merged_into"):
        publish_master(tmp_path, "r2", missing, keep_versions=3)
    extra = make_tables(3, "b")
    extra["customer_xref"]["id_number"] = "x"
    with pytest.raises(PublishError, match=r"customer_xref has unexpected column.*id_number"):
        publish_master(tmp_path, "r2", extra, keep_versions=3)
    with pytest.raises(PublishError, match=r"unknown master table.*golden_customers"):
        publish_master(tmp_path, "r2", {**make_tables(3, "b"), "golden_customers": pd.DataFrame()}, keep_versions=3)
    without = make_tables(3, "b")
    del without["customer_xref"]
    with pytest.raises(PublishError, match=r"without table.*customer_xref"):
        publish_master(tmp_path, "r2", without, keep_versions=3)
    mixed = make_tables(3, "b")
    mixed["golden_customer"]["name_norm"] = pd.Series(["a", 1, 2.5], dtype=object)
    with pytest.raises(PublishError, match="golden_customer: column name_norm"):
        publish_master(tmp_path, "r2", mixed, keep_versions=3)
    assert snapshot(tmp_path) == before


def test_same_run_id_twice_and_bad_names_are_refused(tmp_path: Path) -> None:
    publish_master(tmp_path, "r1", make_tables(2), keep_versions=3)
    with pytest.raises(PublishError, match="already published"):
        publish_master(tmp_path, "r1", make_tables(2), keep_versions=3)
    with pytest.raises(PublishError, match="not a valid version name"):
        publish_master(tmp_path, "../evil", make_tables(2), keep_versions=3)


def test_retention_keeps_the_newest_versions(tmp_path: Path) -> None:
    for i in range(1, 6):
        publish_master(tmp_path, f"r{i}", make_tables(2, f"v{i}"), keep_versions=2)
    assert [v.name for v in list_versions(tmp_path)] == ["r4", "r5"]
    assert sorted(p.name for p in (tmp_path / "versions").iterdir()) == ["r4", "r5"]


def test_retention_never_removes_the_current_version(tmp_path: Path) -> None:
    for i in range(1, 4):
        publish_master(tmp_path, f"r{i}", make_tables(2, f"v{i}"), keep_versions=5)
    rollback(tmp_path, "r1")
    pub._prune(tmp_path, 1)
    assert [v.name for v in list_versions(tmp_path)] == ["r1", "r3"]
    assert current_version(tmp_path) == tmp_path / "versions" / "r1"


def test_rollback_to_previous_and_to_named_version(tmp_path: Path) -> None:
    with pytest.raises(MasterNotFoundError):
        rollback(tmp_path)
    for i in range(1, 4):
        publish_master(tmp_path, f"r{i}", make_tables(i, f"v{i}"), keep_versions=5)
    assert rollback(tmp_path).name == "r2"
    with open_master(tmp_path) as con:
        assert con.execute("SELECT count(*) FROM golden_customer").fetchone() == (2,)
    assert rollback(tmp_path).name == "r1"
    with pytest.raises(PublishError, match="oldest kept version"):
        rollback(tmp_path)
    assert rollback(tmp_path, "r3").name == "r3"
    with pytest.raises(PublishError, match="not a complete published version"):
        rollback(tmp_path, "r9")
    assert load_previous(tmp_path).version == "r3"  # type: ignore[union-attr]


def test_rollback_refuses_a_damaged_version_and_keeps_current(tmp_path: Path) -> None:
    publish_master(tmp_path, "r1", make_tables(2), keep_versions=5)
    publish_master(tmp_path, "r2", make_tables(2, "b"), keep_versions=5)
    with (tmp_path / "versions" / "r1" / "golden_customer.parquet").open("ab") as f:
        f.write(b"garbage")
    with pytest.raises(PublishError, match=r"golden_customer.parquet .*checksum"):
        rollback(tmp_path, "r1")
    assert current_version(tmp_path).name == "r2"  # type: ignore[union-attr]


def test_current_naming_a_missing_version_is_reported(tmp_path: Path) -> None:
    publish_master(tmp_path, "r1", make_tables(2), keep_versions=5)
    (tmp_path / "CURRENT").write_text("gone\n")
    with pytest.raises(MasterNotFoundError, match="mdm rollback"):
        open_master(tmp_path)


def test_leftover_partial_folders_are_cleaned_by_the_next_publish(tmp_path: Path) -> None:
    publish_master(tmp_path, "r1", make_tables(2), keep_versions=5)
    junk = tmp_path / "versions" / "r2.partial"
    junk.mkdir()
    (junk / "golden_customer.parquet").write_bytes(b"half")
    (tmp_path / "versions" / "r0.deleting").mkdir()
    assert [v.name for v in list_versions(tmp_path)] == ["r1"]
    publish_master(tmp_path, "r2", make_tables(2, "b"), keep_versions=5)
    assert sorted(p.name for p in (tmp_path / "versions").iterdir()) == ["r1", "r2"]


def _spawn(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_lock_refuses_a_second_holder_and_names_the_first(tmp_path: Path) -> None:
    holder = _spawn(
        f"""
        import sys, time
        from pathlib import Path
        from pipelines.publish import master_lock
        with master_lock(Path({str(tmp_path)!r})):
            print("locked", flush=True)
            time.sleep(60)
        """
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with (
            pytest.raises(RunLockedError, match=rf"pid {holder.pid}, started .* wait for it to finish"),
            master_lock(tmp_path),
        ):
            pass
        with pytest.raises(RunLockedError):
            publish_master(tmp_path, "r1", make_tables(2), keep_versions=2)
        assert not (tmp_path / "versions").exists()
    finally:
        holder.kill()
        holder.wait()
    # the kernel freed the dead holder's lock; the lock is re-entrant within one process
    with master_lock(tmp_path), master_lock(tmp_path):
        publish_master(tmp_path, "r1", make_tables(2), keep_versions=2)
    assert current_version(tmp_path) is not None


_BIG_PUBLISH = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_publish import make_tables
from pipelines.publish import publish_master
tables = make_tables({n}, "big")
print("ready", flush=True)
publish_master(Path({master!r}), "r2", tables, keep_versions=1)
"""


def _published_intact(master: Path, expected_rows: int, name: str) -> None:
    version = current_version(master)
    assert version is not None and version.name == name
    pub.verify_version(version)
    con = duckdb.connect(str(version / "master.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM golden_customer").fetchone() == (expected_rows,)
    finally:
        con.close()
    assert pd.read_parquet(version / "customer_xref.parquet").shape[0] == expected_rows


def test_sigkill_mid_publish_leaves_the_previous_master_intact(tmp_path: Path) -> None:
    publish_master(tmp_path, "r1", make_tables(50), keep_versions=1)
    before = snapshot(tmp_path)
    proc = _spawn(_BIG_PUBLISH.format(tests=str(ROOT / "tests"), n=300_000, master=str(tmp_path)))
    partial = tmp_path / "versions" / "r2.partial"
    deadline = time.monotonic() + 60
    while not partial.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the publish never started"
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert partial.exists()  # killed mid-publish
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("versions/r2.partial")} == before
    _published_intact(tmp_path, 50, "r1")
    # the next publish cleans the leftover and succeeds
    publish_master(tmp_path, "r3", make_tables(7, "c"), keep_versions=1)
    assert sorted(p.name for p in (tmp_path / "versions").iterdir()) == ["r3"]
    _published_intact(tmp_path, 7, "r3")


@pytest.mark.parametrize("delay", [0.4, 1.2])
def test_sigkill_at_any_moment_leaves_a_readable_master(tmp_path: Path, delay: float) -> None:
    publish_master(tmp_path, "r1", make_tables(50), keep_versions=1)
    proc = _spawn(_BIG_PUBLISH.format(tests=str(ROOT / "tests"), n=200_000, master=str(tmp_path)))
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    name = current_version(tmp_path).name  # type: ignore[union-attr]
    _published_intact(tmp_path, 50 if name == "r1" else 200_000, name)


def test_cli_versions_and_rollback(tmp_path: Path) -> None:
    from mdm.cli import app

    config = tmp_path / "run.yaml"
    config.write_text(
        f"name: t\nsources: {ROOT / 'data' / 'config' / 'sources.yaml'}\n"
        f"paths:\n  master: {tmp_path / 'master'}\n  state: {tmp_path / 'state'}\nkeep_versions: 3\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    result = runner.invoke(app, ["versions", "--config", str(config)])
    assert result.exit_code == 0 and "no master version" in result.output
    for i in (1, 2):
        publish_master(tmp_path / "master", f"r{i}", make_tables(i, f"v{i}"), keep_versions=3)
    result = runner.invoke(app, ["versions", "--config", str(config)])
    assert result.exit_code == 0 and "r1" in result.output and "r2" in result.output
    result = runner.invoke(app, ["rollback", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "r1 (was r2)" in result.output
    result = runner.invoke(app, ["rollback", "r2", "--config", str(config)])
    assert result.exit_code == 0 and current_version(tmp_path / "master").name == "r2"  # type: ignore[union-attr]
    from mdm.audit import AuditLog

    log = AuditLog.for_state(tmp_path / "state")
    entries = log.tail(2)
    assert [(e["action"], e["target"]) for e in entries] == [("rollback", "master:r1"), ("rollback", "master:r2")]
    assert entries[1]["details"]["from"] == "r1" and log.verify().ok


# --------------------------------------------------------------------------- the database layout, failures

KEY = b"test-master-key-0123456789"


def _shuffled_tables(n: int) -> dict[str, pd.DataFrame]:
    """make_tables with the golden-ID tables out of golden-ID order and events with a merge, as a later night has."""
    tables = make_tables(n, "s")
    order = list(range(n))[::-1]
    tables["golden_id_registry"] = tables["golden_id_registry"].iloc[order].reset_index(drop=True)
    gids = list(tables["golden_customer"]["golden_id"])
    tables["golden_id_events"] = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "run_id": "s",
            "golden_id": gids[::-1],
            "event_type": ["merged" if i == 0 else "issued" for i in range(n)],
            "related_golden_id": [gids[1] if i == 0 else None for i in range(n)],
            "record_key": [f"deposit:{i}" for i in range(n)][::-1],
            "reason": None,
        }
    )
    return tables


def _duckdb_rows(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[object, ...]]:
    return sorted(con.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)


def test_published_database_holds_exactly_the_parquet_tables(tmp_path: Path) -> None:
    tables = _shuffled_tables(40)
    conformed = pub.conform_tables(tables)  # before publishing: publish_master empties the dict it is given
    path = publish_master(tmp_path, "r1", tables, keep_versions=3, key=KEY)
    with open_master(tmp_path, key=KEY) as con:
        for name, expected in conformed.items():
            parquet = pub.read_parquet_any(path / f"{name}.parquet", KEY)
            # Parquet: the conformed table itself (code columns as plain text), rows in their order, schema included
            assert parquet.equals(plain_values(expected)), name
            # DuckDB: the same columns, types and rows (stored in its own order)
            con.register("expected", expected)
            try:
                assert con.execute(f'DESCRIBE "{name}"').fetchall() == con.execute(
                    "DESCRIBE SELECT * FROM expected"
                ).fetchall(), name
                assert _duckdb_rows(con, name) == sorted(
                    con.execute("SELECT * FROM expected").fetchall(), key=repr
                ), name
            finally:
                con.unregister("expected")


def test_database_layout_serves_the_stewards_lookups(tmp_path: Path) -> None:
    tables = _shuffled_tables(300)
    publish_master(tmp_path, "r1", dict(tables), keep_versions=3, key=KEY)  # a copy: publish empties the dict
    expected = {(t, f"idx_{t}_{c}") for t, layout in pub.DUCKDB_LAYOUT.items() for c in layout.indexes}
    with open_master(tmp_path, key=KEY) as con:
        indexes = set(con.execute("SELECT table_name, index_name FROM duckdb_indexes()").fetchall())
        # an index only where a record key (long shared prefix) or a second key is looked up
        assert indexes == expected
        assert ("source_records", "idx_source_records_name_norm") not in indexes
        # tables looked up by golden ID are stored in golden-ID order (zone maps), whatever order they came in
        for table in ("golden_customer", "golden_id_registry", "golden_id_events", "customer_systems"):
            stored = [g for (g,) in con.execute(f'SELECT golden_id FROM "{table}"').fetchall()]
            assert stored == sorted(stored), table
        # every look-up steward/evidence.py makes still finds its rows
        gid = str(tables["golden_customer"]["golden_id"].iloc[7])
        assert con.execute("SELECT count(*) FROM golden_customer WHERE golden_id = ?", [gid]).fetchone() == (1,)
        assert con.execute(
            "SELECT status FROM golden_id_registry WHERE golden_id = ?", [gid]
        ).fetchone() == ("active",)
        assert con.execute("SELECT record_key FROM customer_xref WHERE golden_id = ?", [gid]).fetchall() == [
            ("deposit:7",)
        ]
        assert con.execute(
            "SELECT golden_id FROM customer_xref WHERE record_key IN (?, ?) ORDER BY 1", ["deposit:7", "nope"]
        ).fetchall() == [(gid,)]
        related = str(tables["golden_customer"]["golden_id"].iloc[1])
        assert con.execute(
            "SELECT event_type FROM golden_id_events WHERE related_golden_id = ?", [related]
        ).fetchall() == [("merged",)]


def _fail_on(table: str, exc: Exception) -> Callable[..., None]:
    """DuckDBFileWriter.add, raising ``exc`` for ``table``."""
    original = vf.DuckDBFileWriter.add

    def add(self: vf.DuckDBFileWriter, name: str, *args: Any, **kwargs: Any) -> None:
        if name == table:
            raise exc
        return original(self, name, *args, **kwargs)

    return add


@pytest.mark.parametrize("where", ["duckdb", "parquet"])
def test_a_failure_mid_publish_leaves_the_previous_master_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    import threading

    publish_master(tmp_path, "r1", make_tables(20), keep_versions=3, key=KEY)
    before = snapshot(tmp_path)
    boom = OSError("disk full")
    if where == "duckdb":
        monkeypatch.setattr(vf.DuckDBFileWriter, "add", _fail_on("golden_id_registry", boom))
    else:
        original = vf.write_parquet_file

        def write(table: pa.Table, path: Path, key: bytes | None = None) -> FileDigest:
            if path.stem == "customer_xref":
                raise boom
            return original(table, path, key)

        monkeypatch.setattr(vf, "write_parquet_file", write)
    with pytest.raises(OSError, match="disk full"):
        publish_master(tmp_path, "r2", make_tables(30, "b"), keep_versions=3, key=KEY)
    assert not [t for t in threading.enumerate() if t.name.startswith("publish-duckdb")]  # the loader stopped
    partial = tmp_path / "versions" / "r2.partial"
    assert not partial.exists()  # the failed version's folder (its files, the database) is removed
    assert snapshot(tmp_path) == before
    assert current_version(tmp_path) == tmp_path / "versions" / "r1"
    pub.verify_version(tmp_path / "versions" / "r1")
    monkeypatch.undo()
    publish_master(tmp_path, "r2", make_tables(30, "b"), keep_versions=3, key=KEY)
    assert not partial.exists()
    with open_master(tmp_path, key=KEY) as con:
        assert con.execute("SELECT count(*) FROM golden_customer").fetchone() == (30,)


# --------------------------------------------------------------------------- publish frees the tables it is given


def _published_equals(path: Path, con: duckdb.DuckDBPyConnection, expected: dict[str, pa.Table]) -> None:
    """Every table of the version at ``path``: its Parquet file and its DuckDB table hold ``expected``."""
    manifest = json.loads((path / "manifest.json").read_text())
    assert set(manifest["tables"]) == set(expected)
    for name, table in expected.items():
        assert pub.read_parquet_any(path / f"{name}.parquet", KEY).equals(plain_values(table)), name
        assert manifest["tables"][name]["rows"] == table.num_rows, name
        assert manifest["tables"][name]["columns"] == table.column_names, name
        con.register("expected", table)
        try:
            assert _duckdb_rows(con, name) == sorted(con.execute("SELECT * FROM expected").fetchall(), key=repr), name
        finally:
            con.unregister("expected")


def test_a_dict_is_consumed_and_the_version_holds_every_table_whole(tmp_path: Path) -> None:
    expected = pub.conform_tables(_shuffled_tables(300))
    given = dict(pub.conform_tables(_shuffled_tables(300)))
    path = publish_master(tmp_path, "r1", given, keep_versions=3, key=KEY)
    assert given == {}  # the caller's references went with the publish
    with open_master(tmp_path, key=KEY) as con:
        _published_equals(path, con, expected)
    with pytest.raises(PublishError, match=r"no tables to publish.*needs the tables again"):
        publish_master(tmp_path, "r2", given, keep_versions=3, key=KEY)


def test_a_read_only_mapping_is_left_as_it_is(tmp_path: Path) -> None:
    from types import MappingProxyType

    tables = _shuffled_tables(20)
    given = MappingProxyType(tables)
    path = publish_master(tmp_path, "r1", given, keep_versions=3, key=KEY)
    assert set(given) == set(tables) and all(given[name] is tables[name] for name in tables)
    with open_master(tmp_path, key=KEY) as con:
        _published_equals(path, con, pub.conform_tables(tables))


def test_each_table_is_dropped_once_both_its_file_and_its_load_are_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str, bool]] = []
    held: list[vf._HeldTables] = []
    original_init, original_done = vf._HeldTables.__init__, vf._HeldTables.done

    def init(self: vf._HeldTables, tables: Any) -> None:
        original_init(self, tables)
        held.append(self)

    def done(self: vf._HeldTables, name: str, part: str) -> None:
        original_done(self, name, part)
        events.append((name, part, name in self._tables))

    monkeypatch.setattr(vf._HeldTables, "__init__", init)
    monkeypatch.setattr(vf._HeldTables, "done", done)
    given: dict[str, Any] = dict(make_tables(50))
    publish_master(tmp_path, "r1", given, keep_versions=3, key=KEY)
    assert given == {} and len(held) == 1 and held[0]._tables == {}
    for name in pub.MASTER_TABLES:
        mine = [(part, still_held) for n, part, still_held in events if n == name]
        assert sorted(part for part, _ in mine) == ["duckdb", "parquet"], name
        assert [still_held for _, still_held in mine] == [True, False], name  # dropped at the second, not before


def test_a_failure_after_the_dict_is_consumed_leaves_the_previous_master(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_master(tmp_path, "r1", make_tables(20), keep_versions=3, key=KEY)
    before = snapshot(tmp_path)
    monkeypatch.setattr(vf.DuckDBFileWriter, "add", _fail_on("customer_xref", OSError("disk full")))
    given: dict[str, Any] = dict(make_tables(30, "b"))
    with pytest.raises(OSError, match="disk full"):
        publish_master(tmp_path, "r2", given, keep_versions=3, key=KEY)
    assert given == {}
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("versions/r2.partial")} == before
    assert current_version(tmp_path) == tmp_path / "versions" / "r1"


def test_a_refused_publish_leaves_the_dict_as_it_was(tmp_path: Path) -> None:
    publish_master(tmp_path, "r1", make_tables(2), keep_versions=3)
    given: dict[str, Any] = dict(make_tables(2, "b"))
    with pytest.raises(PublishError, match="already published"):
        publish_master(tmp_path, "r1", given, keep_versions=3)
    assert set(given) == set(make_tables(2))
    given["customer_xref"] = given["customer_xref"].assign(link_weight="high")
    with pytest.raises(PublishError, match="customer_xref: column link_weight"):
        publish_master(tmp_path, "r2", given, keep_versions=3)
    assert set(given) == set(make_tables(2))


# --------------------------------------------------------------------------- tables staged ahead of the publish


def test_a_staged_table_is_written_in_the_background_and_published_with_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    tables = _shuffled_tables(200)
    expected = pub.conform_tables(tables)
    writers: dict[str, str] = {}
    published = threading.Event()
    original = vf.write_parquet_file

    def write(table: pa.Table, path: Path, key: bytes | None = None) -> FileDigest:
        writers[path.stem] = threading.current_thread().name + (" after" if published.is_set() else " before")
        return original(table, path, key)

    monkeypatch.setattr(vf, "write_parquet_file", write)
    with pub.PendingVersion(tmp_path, "r1", keep_versions=3, key=KEY) as version:
        version.stage("customer_xref", tables.pop("customer_xref"))
        version.stage("golden_id_events", tables.pop("golden_id_events"))
        assert version.staged == {"customer_xref", "golden_id_events"}
        deadline = time.monotonic() + 30
        while not (tmp_path / "versions" / "r1.partial" / "golden_id_events.parquet").exists():
            assert time.monotonic() < deadline, "the staged tables were not written before the publish"
            time.sleep(0.01)
        published.set()
        path = version.publish(tables)
    assert tables == {}
    assert writers["customer_xref"].startswith("publish-early") and writers["customer_xref"].endswith("before")
    assert writers["golden_customer"].endswith("after")
    assert not [t for t in threading.enumerate() if t.name.startswith("publish-")]
    with open_master(tmp_path, key=KEY) as con:
        _published_equals(path, con, expected)
        indexes = set(con.execute("SELECT table_name, index_name FROM duckdb_indexes()").fetchall())
    assert ("customer_xref", "idx_customer_xref_record_key") in indexes  # a staged table's indexes are built too
    pub.verify_version(path)
    assert list(json.loads((path / "manifest.json").read_text())["tables"]) == [
        n for n in pub.MASTER_TABLES if n in expected
    ]


def test_a_failed_staged_write_fails_the_publish_and_leaves_the_previous_master(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_master(tmp_path, "r1", make_tables(20), keep_versions=3, key=KEY)
    before = snapshot(tmp_path)
    monkeypatch.setattr(vf.DuckDBFileWriter, "add", _fail_on("customer_xref", OSError("disk full")))
    tables: dict[str, Any] = dict(make_tables(30, "b"))
    with pub.PendingVersion(tmp_path, "r2", keep_versions=3, key=KEY) as version:
        version.stage("customer_xref", tables.pop("customer_xref"))
        with pytest.raises(OSError, match="disk full"):
            version.publish(tables)
    assert snapshot(tmp_path) == before  # the .partial folder is gone as well
    assert current_version(tmp_path) == tmp_path / "versions" / "r1"
    monkeypatch.undo()
    publish_master(tmp_path, "r2", make_tables(30, "b"), keep_versions=3, key=KEY)  # the lock was released
    assert current_version(tmp_path) == tmp_path / "versions" / "r2"


def test_a_run_that_fails_after_staging_removes_its_version_and_releases_the_lock(tmp_path: Path) -> None:
    import threading

    publish_master(tmp_path, "r1", make_tables(20), keep_versions=3, key=KEY)
    before = snapshot(tmp_path)
    with (
        pytest.raises(RuntimeError, match="matching failed"),
        pub.PendingVersion(tmp_path, "r2", keep_versions=3, key=KEY) as version,
    ):
        version.stage("customer_xref", make_tables(500, "b")["customer_xref"])
        raise RuntimeError("matching failed")
    assert not [t for t in threading.enumerate() if t.name.startswith("publish-")]
    assert snapshot(tmp_path) == before
    assert current_version(tmp_path) == tmp_path / "versions" / "r1"
    publish_master(tmp_path, "r2", make_tables(30, "b"), keep_versions=3, key=KEY)


def test_staging_refuses_unknown_repeated_and_re_given_tables(tmp_path: Path) -> None:
    tables = make_tables(5)
    with pub.PendingVersion(tmp_path, "r1", keep_versions=3) as version:
        with pytest.raises(PublishError, match="unknown master table nope"):
            version.stage("nope", tables["customer_xref"])
        with pytest.raises(PublishError, match="customer_xref: column link_weight"):
            version.stage("customer_xref", tables["customer_xref"].assign(link_weight="high"))
        version.stage("customer_xref", tables["customer_xref"])
        with pytest.raises(PublishError, match="already staged"):
            version.stage("customer_xref", tables["customer_xref"])
        with pytest.raises(PublishError, match="customer_xref were staged already and are given again"):
            version.publish(tables)
        del tables["customer_xref"]
        with pytest.raises(PublishError, match=r"cannot publish without table.*golden_customer"):
            version.publish({k: v for k, v in tables.items() if k != "golden_customer"})
        path = version.publish(tables)
    assert json.loads((path / "manifest.json").read_text())["tables"]["customer_xref"]["rows"] == 5
    with pytest.raises(PublishError, match="already published"):
        pub.PendingVersion(tmp_path, "r1", keep_versions=3)
    with master_lock(tmp_path):  # the lock is free again (and re-entrant within one process)
        pass
