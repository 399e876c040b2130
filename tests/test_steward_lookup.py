"""The steward lookup store: same pages as the master database, sealed at rest, rebuilt when stale."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mdm.errors import SecurityError
from steward import lookup_build
from steward import lookup_layout as layout
from steward import master as master_module
from steward.evidence import MasterEvidence
from steward.lookup import LookupStore
from steward.lookup_build import build_lookup
from steward.master import MasterReader
from steward.sealing import Sealer
from steward.views import search_lookups
from tests.conftest import make_workspace
from tests.steward_fixtures import HOSTILE, build_master, write_version

PAIRS = [
    ("deposit:2", "card:2"),
    ("card:3", "deposit:3"),
    ("deposit:1", "deposit:4"),
    ("deposit:4", "deposit:1"),
    ("deposit:1", "card:1"),
    ("nobody:1", "deposit:1"),
]
GOLDEN = ["GA", "GB", "GC", "GD", "GE", "GF", "GOLD", "GLOOP", "nope"]
SEARCHES = [
    ("name", "张伟"),
    ("name", "Zhang Wei"),
    ("name", "張偉"),
    ("name", "nobody"),
    ("name", HOSTILE),
    ("id_number", "11010519800101001x"),
    ("id_number", "110105198001010029"),
    ("phone", "138 0000 0001"),
    ("phone", "+8613800000003"),
    ("phone", "010-62345678"),
    ("golden_id", "GB"),
    ("golden_id", "GOLD"),
    ("golden_id", "G?"),
    ("name", ""),
]


@pytest.fixture()
def workspace(tmp_path):
    from schemas.settings import load_run_config

    ws = make_workspace(tmp_path / "ws", generate=False)
    build_master(ws.master_dir, ws.state_dir)
    _add_history(ws.master_dir)
    cfg = load_run_config(ws.config_path)
    return ws, cfg


def _tables_of(master_dir: Path, version: str) -> dict[str, pd.DataFrame]:
    """Every table of a written version, values as Python objects (lists as lists)."""
    from mdm.crypto import connect_duckdb, load_key

    con = connect_duckdb(master_dir / "versions" / version / "master.duckdb", load_key(required=False))
    try:
        names = [
            n
            for (n,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
            ).fetchall()
        ]
        tables = {}
        for name in names:
            table = con.execute(f'SELECT * FROM "{name}"').arrow().read_all()
            tables[name] = pd.DataFrame(table.to_pylist(), columns=table.column_names)
    finally:
        con.close()
    return tables


def _add_history(master_dir: Path) -> None:
    """Rewrite R1 with what the plain fixture lacks: retired IDs, ID events, a landline, an unlinked record."""
    tables = _tables_of(master_dir, "R1")
    tables["golden_id_registry"] = pd.concat(
        [
            tables["golden_id_registry"],
            pd.DataFrame(
                [
                    {
                        "golden_id": "GOLD",
                        "status": "merged",
                        "merged_into": "GA",
                        "created_run_id": "R0",
                        "retired_run_id": "R1",
                        "issued_seq": 90,
                    },
                    {
                        "golden_id": "GLOOP",
                        "status": "merged",
                        "merged_into": "GLOOP",
                        "created_run_id": "R0",
                        "retired_run_id": "R1",
                        "issued_seq": 91,
                    },
                ]
            ),
        ],
        ignore_index=True,
    )
    tables["golden_id_events"] = pd.DataFrame(
        [
            {
                "event_id": "E1",
                "run_id": "R1",
                "golden_id": "GOLD",
                "event_type": "merged",
                "related_golden_id": "GA",
                "record_key": None,
                "reason": "older ID survives",
            },
            {
                "event_id": "E2",
                "run_id": "R1",
                "golden_id": "GA",
                "event_type": "created",
                "related_golden_id": None,
                "record_key": "deposit:1",
                "reason": "new cluster",
            },
        ]
    )
    records = tables["source_records"]
    records["phones"] = [
        ["+861062345678"] if k == "card:3" else p for k, p in zip(records["record_key"], records["phones"], strict=True)
    ]
    records["quality_flags"] = [
        ["ID_LEGACY_UPGRADED", "PHONE_INVALID"] if k == "deposit:2" else f
        for k, f in zip(records["record_key"], records["quality_flags"], strict=True)
    ]
    extra = records[records["record_key"] == "card:3"].copy()
    extra["record_key"], extra["source_record_id"] = "card:99", "99"  # a record no golden customer holds
    tables["source_records"] = pd.concat([records, extra], ignore_index=True)
    folder = master_dir / "versions" / "R1"
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    write_version(master_dir, "R1", tables)


def _build(cfg) -> Path:
    path = build_lookup(cfg.master_dir / "versions" / "R1", cfg.master_key())
    assert path is not None
    return path


def test_lookup_answers_every_page_exactly_like_the_master(workspace):
    _, cfg = workspace
    _build(cfg)
    store = LookupStore.open(cfg.master_dir / "versions" / "R1", cfg.master_key())
    assert store is not None
    reader = MasterReader(cfg.master_dir, cfg.master_key())
    with reader.cursor() as con:
        master = MasterEvidence(con)
        for a, b in PAIRS:
            assert asdict(store.pair_evidence(a, b)) == asdict(master.pair_evidence(a, b)), (a, b)
        for gid in GOLDEN:
            mine, theirs = store.customer_view(gid), master.customer_view(gid)
            assert (asdict(mine) if mine else None) == (asdict(theirs) if theirs else None), gid
        for kind, q in SEARCHES:
            assert store.search(kind, q) == master.search(kind, q), (kind, q)
        assert store.cluster_members(["GA", "GC", "nope"]) == master.cluster_members(["GA", "GC", "nope"])
    reader.close()
    store.close()


def test_pages_show_what_the_fixture_holds(workspace):
    _, cfg = workspace
    _build(cfg)
    store = LookupStore.open(cfg.master_dir / "versions" / "R1", cfg.master_key())
    assert store is not None
    ev = store.pair_evidence("deposit:2", "card:2")
    assert (ev.golden_id_l, ev.golden_id_r, ev.match_weight, ev.decision, ev.rules) == (
        "GB",
        "GC",
        6.5,
        "review",
        "mobile",
    )
    assert [(c.comparison, c.level, c.weight) for c in ev.contributions] == [
        ("name", 3, 6.0),
        ("mobile", 2, 4.0),
        ("id", -1, 0.0),
        ("birth_date", 3, -3.5),
    ]
    assert ev.flags_l == ["ID_LEGACY_UPGRADED", "PHONE_INVALID"]
    birth = next(f for f in ev.fields if f.label == "Birth date")
    assert (birth.raw_l, birth.std_l, birth.same) == ("19800101", "1980-01-01", True)
    view = store.customer_view("GOLD")  # a retired ID opens its survivor
    assert view is not None and view.current_id == "GA"
    assert [m["record_key"] for m in view.records] == ["card:1", "deposit:1", "loan:1"]
    assert [e["event_id"] for e in view.events] == ["E1", "E2"]  # its own and the merged-in ID's
    assert store.customer_view("GLOOP") is None and store.customer_view("nope") is None
    assert [r["golden_id"] for r in store.search("phone", "010 6234 5678")] == ["GE"]  # a landline: phones lists
    assert [r["golden_id"] for r in store.search("name", "wei zhang")] == ["GA"]
    assert store.pair_evidence("card:99", "card:3").golden_id_l is None


def test_lookup_holds_no_personal_data_in_clear(workspace):
    ws, cfg = workspace
    path = _build(cfg)
    assert path.parent == ws.master_dir / "steward-lookup"
    assert not list(path.parent.glob("*journal*")) and not list(path.parent.glob("*.tmp"))
    data = path.read_bytes()
    for secret in (
        "11010519800101001X",
        "110105198001010029",
        "13800000001",
        "8613800000002",
        "62345678",
        "张伟",
        "李娜",
        "王芳",
        "建国路",
        HOSTILE,
    ):
        assert secret.encode() not in data, secret
    assert path.stat().st_mode & 0o077 == 0


def test_a_payload_moved_to_another_row_does_not_open(workspace):
    _, cfg = workspace
    path = _build(cfg)
    con = sqlite3.connect(path)
    blob = con.execute("SELECT payload FROM records WHERE record_key = 'card:1'").fetchone()[0]
    con.execute("UPDATE records SET payload = ? WHERE record_key = 'deposit:2'", (blob,))
    con.commit()
    con.close()
    store = LookupStore.open(cfg.master_dir / "versions" / "R1", cfg.master_key())
    assert store is not None
    with pytest.raises(SecurityError, match="integrity"):
        store.pair_evidence("deposit:2", "card:2")


def test_a_stale_store_is_not_used(workspace, monkeypatch):
    _, cfg = workspace
    version = cfg.master_dir / "versions" / "R1"
    path = _build(cfg)
    assert LookupStore.open(version, b"another key of at least 16 chars") is None  # e.g. after a key rotation
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = 'old' WHERE name = 'format'")
    con.commit()
    con.close()
    assert LookupStore.open(version, cfg.master_key()) is None
    first = path.stat().st_mtime_ns
    assert build_lookup(version, cfg.master_key()) == path  # rebuilt, and usable again
    assert path.stat().st_mtime_ns != first
    assert LookupStore.open(version, cfg.master_key()) is not None
    again = path.stat().st_mtime_ns
    build_lookup(version, cfg.master_key())  # a fitting store is left alone
    assert path.stat().st_mtime_ns == again


def test_stores_of_removed_versions_are_pruned(workspace):
    _, cfg = workspace
    old = _build(cfg)
    r1 = cfg.master_dir / "versions" / "R1"
    r2 = cfg.master_dir / "versions" / "R2"
    r2.mkdir()
    for file in r1.iterdir():
        (r2 / file.name).write_bytes(file.read_bytes())
    for file in r1.iterdir():
        file.unlink()
    r1.rmdir()
    new = build_lookup(r2, cfg.master_key())
    assert new is not None and new.exists() and not old.exists()
    assert not old.with_suffix(".lock").exists()


def test_reader_uses_the_master_until_the_store_is_built_in_the_background(workspace, monkeypatch):
    _, cfg = workspace
    monkeypatch.setattr(master_module, "RECHECK_SECONDS", 0.05)
    reader = MasterReader(cfg.master_dir, cfg.master_key(), build_lookups=True)
    try:
        with reader.evidence() as source:
            assert isinstance(source, MasterEvidence)
            assert source.customer_view("GA") is not None
        deadline = time.monotonic() + 120
        while reader.lookup() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        with reader.evidence() as source:
            assert isinstance(source, LookupStore)
            assert source.customer_view("GA") is not None
        assert layout.lookup_path(cfg.master_dir / "versions" / "R1").exists()
    finally:
        reader.close()


def test_reader_follows_a_new_version(workspace, monkeypatch):
    _, cfg = workspace
    monkeypatch.setattr(master_module, "RECHECK_SECONDS", 0.0)
    _build(cfg)
    reader = MasterReader(cfg.master_dir, cfg.master_key())
    try:
        first = reader.lookup()
        assert first is not None and first.version == "R1"
        tables = _tables_of(cfg.master_dir, "R1")
        tables["golden_customer"].loc[tables["golden_customer"]["golden_id"] == "GB", "name"] = "李娜娜"
        write_version(cfg.master_dir, "R2", tables)
        with reader.evidence() as source:  # no store for R2 yet: the master answers, with R2's data
            assert isinstance(source, MasterEvidence)
            view = source.customer_view("GB")
            assert view is not None and {a["value"] for a in view.attributes if a["attribute"] == "name"} == {"李娜娜"}
        build_lookup(cfg.master_dir / "versions" / "R2", cfg.master_key())
        second = reader.lookup()
        assert second is not None and second.version == "R2"
    finally:
        reader.close()


def test_search_normalizes_like_the_pipeline():
    assert search_lookups("name", "張偉") == [[("name_norm", "张伟"), ("name_latin_key", "wei zhang")]]
    assert search_lookups("id_number", "11010519800101001x") == [[("id_number", "11010519800101001X")]]
    assert search_lookups("phone", "138 0000 0001") == [[("mobile", "+8613800000001")], [("phones", "+8613800000001")]]
    assert search_lookups("golden_id", "GA") == [] and search_lookups("name", "  ") == []


def test_build_refuses_a_version_it_cannot_read(tmp_path):
    from steward.lookup_build import LookupBuildError

    version = tmp_path / "master" / "versions" / "R9"
    version.mkdir(parents=True)
    with pytest.raises(LookupBuildError, match="R9"):
        build_lookup(version, b"k" * 32)
    assert not list((tmp_path / "master" / "steward-lookup").glob("*.sqlite"))


def test_dates_read_as_dates(workspace):
    _, cfg = workspace
    _build(cfg)
    store = LookupStore.open(cfg.master_dir / "versions" / "R1", cfg.master_key())
    assert store is not None
    view = store.customer_view("GA")
    assert view is not None
    values = {a["attribute"]: a for a in view.attributes}
    assert values["birth_date"]["value"] == dt.date(1980, 1, 1).isoformat()
    assert values["systems"]["value"] == "card, deposit, loan" and values["n_records"]["value"] == "3"
    assert values["name"]["updated_at"] == "2026-11-01 00:00:00"
    assert values["name"]["source_system"] == "deposit"


def test_a_second_builder_does_not_wait_for_the_first(workspace, monkeypatch):
    from steward.lookup_build import BUSY_EXIT, _build_lock, main

    monkeypatch.setattr("mdm.logs.configure", lambda *a, **k: None)  # main() sets up logging for its process
    _, cfg = workspace
    version = cfg.master_dir / "versions" / "R1"
    path = layout.lookup_path(version)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(path.with_suffix(".lock"), wait=True):
        assert build_lookup(version, cfg.master_key(), wait=False) is None
        assert main(["--background", "--config", str(cfg.path), str(version)]) == BUSY_EXIT
    assert not path.exists()
    assert main(["--config", str(cfg.path)]) == 0 and path.exists()  # the current version by default


# --------------------------------------------------------------------------- bounded build


def _store_rows(path: Path, sealer: Sealer) -> dict[str, list[Any]]:
    """Every row of a store in its stored order, payloads opened (seals are random; what they hold is not)."""
    con = layout.connect_read_only(path)
    try:
        records = [
            (k, g, sealer.open(p, layout.RECORD_AAD.format(k).encode()))
            for k, g, p in con.execute("SELECT record_key, golden_id, payload FROM records ORDER BY rowid")
        ]
        links = [
            (a, b, sealer.open(p, layout.LINK_AAD.format(a, b).encode()))
            for a, b, p in con.execute("SELECT record_key_l, record_key_r, payload FROM links")
        ]
        customers = [
            (g, st, into, None if p is None else sealer.open(p, layout.CUSTOMER_AAD.format(g).encode()))
            for g, st, into, p in con.execute(
                "SELECT golden_id, status, merged_into, payload FROM customers ORDER BY rowid"
            )
        ]
        search = con.execute("SELECT token, golden_id FROM search").fetchall()
    finally:
        con.close()
    return {"records": records, "links": links, "customers": customers, "search": search}


@pytest.mark.parametrize("per_query", [1, 2, 3])
def test_customers_read_in_golden_id_ranges_equal_one_query(workspace, monkeypatch, per_query):
    _, cfg = workspace
    version = cfg.master_dir / "versions" / "R1"
    sealer = Sealer(cfg.master_key())
    whole = _store_rows(_build(cfg), sealer)
    assert len(whole["customers"]) >= 8 and any(payload for *_, payload in whole["customers"])
    monkeypatch.setattr(lookup_build, "CUSTOMERS_PER_QUERY", per_query)
    path = build_lookup(version, cfg.master_key(), force=True)
    assert path is not None
    assert _store_rows(path, sealer) == whole
    store = LookupStore.open(version, cfg.master_key())
    assert store is not None
    view = store.customer_view("GOLD")  # GA's events come from GOLD's range too
    assert view is not None and [e["event_id"] for e in view.events] == ["E1", "E2"]
    store.close()


def test_a_small_memory_limit_spills_inside_the_store_folder_and_cleans_up(workspace, monkeypatch):
    _, cfg = workspace
    sealer = Sealer(cfg.master_key())
    whole = _store_rows(_build(cfg), sealer)
    monkeypatch.setattr(lookup_build, "LOOKUP_DB_MEMORY", "64MB")
    monkeypatch.setattr(lookup_build, "_BATCH", 2)
    path = build_lookup(cfg.master_dir / "versions" / "R1", cfg.master_key(), force=True)
    assert path is not None and _store_rows(path, sealer) == whole
    assert not list(path.parent.glob("*.spill")) and not list(path.parent.glob("*.tmp"))


def test_golden_id_ranges_cover_every_id_once():
    import duckdb

    ids = ["G3", "G1", None, "G2", "G2", "G10", "G7", "G5", "G4"]
    con = duckdb.connect()
    con.execute("CREATE TABLE golden_id_registry (golden_id VARCHAR)")
    con.executemany("INSERT INTO golden_id_registry VALUES (?)", [(g,) for g in ids])
    for size in (1, 2, 3, 100):
        ranges = lookup_build._golden_ranges(con, size)
        assert ranges[0][0] is None and ranges[-1][1] is None
        assert len(ranges) == -(-8 // size)
        for g in {g for g in ids if g is not None}:
            inside = [(lo, hi) for lo, hi in ranges if (lo is None or g >= lo) and (hi is None or g < hi)]
            assert len(inside) == 1, (size, g)
    con.close()
    assert lookup_build._in_range("c", None, None) == "TRUE"
    assert lookup_build._in_range("c", "a", "b") == "TRUE AND c >= $low AND c < $high"


def test_out_of_duckdb_memory_is_retried_with_more_then_reported(workspace, monkeypatch, caplog):
    _, cfg = workspace
    version = cfg.master_dir / "versions" / "R1"
    sealer = Sealer(cfg.master_key())
    whole = _store_rows(_build(cfg), sealer)
    monkeypatch.setattr(lookup_build, "LOOKUP_DB_MEMORY", "1MB")  # too little for any query
    path = build_lookup(version, cfg.master_key(), force=True)
    assert path is not None and _store_rows(path, sealer) == whole
    assert "ran out of its 1MB" in caplog.text
    monkeypatch.setattr(lookup_build, "LOOKUP_DB_MEMORY_RETRY", "1MB")
    with pytest.raises(lookup_build.LookupBuildError, match="more DuckDB memory"):
        build_lookup(version, cfg.master_key(), force=True)
    assert not list(path.parent.glob("*.tmp")) and not list(path.parent.glob("*.spill"))
