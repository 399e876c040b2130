"""Encryption at rest: keys, encrypted DuckDB and Parquet files, wrong keys, rotation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from mdm.crypto import (
    _HEADER,
    connect_duckdb,
    is_encrypted,
    load_key,
    read_parquet_encrypted,
    write_duckdb_tables,
    write_parquet_encrypted,
)
from mdm.errors import SecurityError
from tests.test_mart_query import RAW_IDS, RAW_NAMES, RAW_PHONES, master_tables, write_config

KEY = b"old-master-key-0123456789"
NEW = b"new-master-key-9876543210"
PII = [s.encode() for s in (*RAW_IDS, *RAW_PHONES, *RAW_NAMES)]


def test_load_key_from_env_and_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MDM_MASTER_KEY", KEY.decode())
    assert load_key() == KEY
    monkeypatch.delenv("MDM_MASTER_KEY")
    monkeypatch.delenv("MDM_MASTER_KEY_BLOCK", raising=False)
    assert load_key(required=False) is None
    with pytest.raises(SecurityError, match="MDM_MASTER_KEY"):
        load_key()
    monkeypatch.setenv("MDM_MASTER_KEY", "short")
    with pytest.raises(SecurityError, match="too short"):
        load_key()


def test_encrypted_duckdb_has_no_plaintext_and_needs_the_key(tmp_path: Path) -> None:
    tables = master_tables()
    plain = write_duckdb_tables(tmp_path / "plain.duckdb", tables, None)
    assert any(p in plain.read_bytes() for p in PII)  # control: the scan can see plaintext
    enc = write_duckdb_tables(tmp_path / "master.duckdb", tables, KEY)
    data = enc.read_bytes()
    assert all(p not in data for p in PII)
    assert is_encrypted(enc) and not is_encrypted(plain)
    with pytest.raises(duckdb.Error):
        duckdb.connect(str(enc), read_only=True)
    with pytest.raises(SecurityError, match="set MDM_MASTER_KEY"):
        connect_duckdb(enc, None)
    with pytest.raises(SecurityError, match="cannot be decrypted with the key in MDM_MASTER_KEY"):
        connect_duckdb(enc, NEW)
    con = connect_duckdb(enc, KEY)
    assert con.execute("SELECT id_number FROM golden_customer ORDER BY 1").fetchall() == [(i,) for i in RAW_IDS]
    con.close()


def test_encrypted_parquet_roundtrip_wrong_key_and_tamper(tmp_path: Path) -> None:
    table = master_tables()["golden_customer"]
    path = write_parquet_encrypted(table, tmp_path / "golden_customer.parquet", KEY)
    assert is_encrypted(path) and all(p not in path.read_bytes() for p in PII)
    assert read_parquet_encrypted(path, KEY).equals(table)
    with pytest.raises(SecurityError, match="cannot be decrypted with the key in MDM_MASTER_KEY"):
        read_parquet_encrypted(path, NEW)
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(SecurityError, match="integrity"):
        read_parquet_encrypted(path, KEY)


def test_large_file_spans_segments_and_truncation_is_detected(tmp_path: Path) -> None:
    table = pa.table({"x": [os.urandom(8).hex() for _ in range(200_000)]})  # incompressible: several segments
    path = write_parquet_encrypted(table, tmp_path / "big.parquet", KEY)
    assert read_parquet_encrypted(path, KEY).num_rows == 200_000
    data = path.read_bytes()
    assert len(data) > (1 << 20) + 1000
    path.write_bytes(data[: _HEADER.size + (1 << 20) + 16])  # header + exactly one whole sealed segment
    with pytest.raises(SecurityError):
        read_parquet_encrypted(path, KEY)


def _encrypted_master(root: Path) -> Path:
    folder = root / "master" / "versions" / "r1"
    folder.mkdir(parents=True)
    tables = master_tables()
    for name, table in tables.items():
        write_parquet_encrypted(table, folder / f"{name}.parquet", KEY)
    write_duckdb_tables(folder / "master.duckdb", tables, KEY)
    import hashlib

    files = {f.name: {"bytes": f.stat().st_size, "sha256": hashlib.sha256(f.read_bytes()).hexdigest()}
             for f in folder.iterdir()}
    (folder / "manifest.json").write_text(json.dumps({"run_id": "r1", "sequence": 1, "files": files}))
    (root / "master" / "CURRENT").write_text("r1\n")
    (root / "state").mkdir()
    write_parquet_encrypted(tables["quarantine"], root / "state" / "held.parquet", KEY)
    return folder


def test_rotation_keeps_data_readable_with_new_key_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mdm.cli import app
    from pipelines.publish import verify_version

    folder = _encrypted_master(tmp_path)
    config = write_config(tmp_path)
    monkeypatch.setenv("MDM_MASTER_KEY", KEY.decode())
    monkeypatch.setenv("MDM_MASTER_KEY_NEW", NEW.decode())
    runner = CliRunner()
    assert runner.invoke(app, ["keys", "check", "--config", str(config)]).exit_code == 0
    result = runner.invoke(app, ["keys", "rotate", "--config", str(config), "--user", "ops"])
    assert result.exit_code == 0, result.output
    assert "re-encrypted 8 file" in result.output  # 6 Parquet + master.duckdb + state file
    for file in [*folder.glob("*.parquet"), tmp_path / "state" / "held.parquet"]:
        assert read_parquet_encrypted(file, NEW).equals(master_tables()[file.stem] if file.stem != "held"
                                                        else master_tables()["quarantine"])
        with pytest.raises(SecurityError):
            read_parquet_encrypted(file, KEY)
    con = connect_duckdb(folder / "master.duckdb", NEW)
    assert con.execute("SELECT count(*) FROM source_records").fetchone() == (3,)
    con.close()
    with pytest.raises(SecurityError):
        connect_duckdb(folder / "master.duckdb", KEY)
    verify_version(folder)  # manifest checksums were refreshed
    assert runner.invoke(app, ["keys", "check", "--config", str(config)]).exit_code == 1  # old key no longer opens
    monkeypatch.setenv("MDM_MASTER_KEY", NEW.decode())
    assert runner.invoke(app, ["keys", "check", "--config", str(config)]).exit_code == 0
    again = runner.invoke(app, ["keys", "rotate", "--config", str(config)])  # resumable: nothing left to do
    assert again.exit_code != 0 or "re-encrypted 0" in again.output


def test_sort_for_zone_maps_orders_rows_by_the_key_and_keeps_sorted_tables_as_they_are() -> None:
    from mdm.crypto import sort_for_zone_maps

    table = pa.table({"golden_id": ["G3", None, "G1", "G2"], "n": [3, 0, 1, 2]})
    ordered = sort_for_zone_maps(table, "golden_id")
    assert ordered.to_pydict() == {"golden_id": ["G1", "G2", "G3", None], "n": [1, 2, 3, 0]}  # rows kept whole
    assert sort_for_zone_maps(ordered, "golden_id") is not ordered  # a null before the end is not "sorted" ...
    done = ordered.slice(0, 3)
    assert sort_for_zone_maps(done, "golden_id") is done  # ... a sorted column is left alone (no copy)
    chunked = pa.concat_tables([pa.table({"k": ["a", "c"]}), pa.table({"k": ["b"]})])
    assert sort_for_zone_maps(chunked, "k")["k"].to_pylist() == ["a", "b", "c"]


def test_writer_loads_tables_from_several_threads_into_one_encrypted_file(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mdm.crypto import DuckDBFileWriter

    tables = master_tables()
    big = pa.table({"golden_id": [f"G{i:07d}" for i in range(300_000, 0, -1)], "n": list(range(300_000))})
    with DuckDBFileWriter(tmp_path / "m.duckdb", KEY) as writer, ThreadPoolExecutor(3) as pool:
        jobs = [pool.submit(writer.add, name, table) for name, table in tables.items()]
        jobs.append(pool.submit(writer.add, "big", big, ("n",), "golden_id"))
        for job in jobs:
            job.result()
        path = writer.commit()
    assert all(p not in path.read_bytes() for p in PII)
    con = connect_duckdb(path, KEY)
    try:
        for name, table in tables.items():
            assert con.execute(f'SELECT count(*) FROM "{name}"').fetchone() == (table.num_rows,)
        assert con.execute("SELECT id_number FROM golden_customer ORDER BY 1").fetchall() == [(i,) for i in RAW_IDS]
        assert con.execute("SELECT count(*), count(DISTINCT golden_id) FROM big").fetchone() == (300_000, 300_000)
        assert con.execute("SELECT index_name FROM duckdb_indexes()").fetchall() == [("idx_big_n",)]
    finally:
        con.close()
    assert not list(tmp_path.glob(".*.tmp*"))


def _row_groups_per_key(path: Path, table: str, probes: list[str]) -> list[int]:
    """For each probe key: how many row groups' (min, max) range of golden_id holds it (what a zone map reads)."""
    con = connect_duckdb(path, KEY)
    try:
        ranges = con.execute(
            f"SELECT min(golden_id), max(golden_id) FROM {table} GROUP BY rowid // 122880"
        ).fetchall()
    finally:
        con.close()
    return [sum(lo <= key <= hi for lo, hi in ranges) for key in probes]


def test_writer_loads_a_table_in_key_order_so_zone_maps_can_skip_row_groups(tmp_path: Path) -> None:
    """Sorted before loading, a key falls in at most one row group per loading thread (DuckDB loads
    row groups in parallel and does not keep the input order across threads); unsorted, in nearly all."""
    from mdm.crypto import DuckDBFileWriter

    n = 1_228_800  # ten row groups
    keys = np.random.default_rng(5).permutation(n)
    big = pa.table({"golden_id": [f"G{i:07d}" for i in keys], "n": np.arange(n)})
    with DuckDBFileWriter(tmp_path / "m.duckdb", KEY) as writer:
        writer.add("sorted", big, (), "golden_id")
        writer.add("unsorted", big, (), None)
        path = writer.commit()
    con = connect_duckdb(path, KEY)
    try:
        threads = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
        assert con.execute("SELECT count(*) FROM sorted").fetchone() == (n,)
    finally:
        con.close()
    probes = [f"G{i:07d}" for i in range(n // 97, n - n // 97, n // 97)]  # not the extremes
    in_sorted = _row_groups_per_key(path, "sorted", probes)
    in_unsorted = _row_groups_per_key(path, "unsorted", probes)
    assert max(in_sorted) <= min(threads, 9)
    assert min(in_unsorted) >= 9


def test_an_index_larger_than_the_loading_limit_is_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader's small buffer pool would refuse an ART index (built in memory); index builds
    get a share of RAM, and the loading limit is back afterwards."""
    import mdm.crypto as crypto
    from mdm.crypto import DuckDBFileWriter

    keys = pa.table({"record_key": pa.array([f"deposit:{i:012d}" for i in range(2_000_000)])})
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    with monkeypatch.context() as m:  # with no more than the loading limit the index does not fit
        m.setattr(crypto, "INDEX_MEMORY_SHARE", 32 * 2**20 / ram)
        with pytest.raises(duckdb.OutOfMemoryException), DuckDBFileWriter(tmp_path / "a.duckdb", None, "32MB") as w:
            w.add("x", keys, ("record_key",))
            w.commit()  # the indexes are built at commit, once every table is loaded
    assert not (tmp_path / "a.duckdb").exists()
    with DuckDBFileWriter(tmp_path / "b.duckdb", None, "32MB") as w:
        w.add("x", keys, ("record_key",))
        assert w._con is not None
        assert w._con.execute("SELECT count(*) FROM duckdb_indexes()").fetchone() == (0,)  # not yet
        w._build_indexes()
        limit = w._con.execute("SELECT current_setting('memory_limit')").fetchone()
        w.commit()
    assert limit is not None and limit[0].replace(" ", "") in {"32.0MiB", "30.5MiB", "32.0MB", "32MB"}
    with duckdb.connect(str(tmp_path / "b.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM duckdb_indexes() WHERE table_name = 'x'").fetchone() == (1,)


def _read_back(path: Path, *queries: str) -> list[list[tuple[Any, ...]]]:
    """Every row of each query, read from the encrypted master database at ``path``."""
    con = connect_duckdb(path, KEY)
    try:
        return [con.execute(sql).fetchall() for sql in queries]
    finally:
        con.close()


def test_a_load_reads_full_row_groups_whatever_the_columns_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mdm import crypto
    from mdm.crypto import DuckDBFileWriter, row_group_batches, scan_batches

    monkeypatch.setattr(crypto, "_SCAN_BATCH", 10)
    n = 47
    table = pa.table(
        {
            "n": pa.chunked_array([list(range(0, 13)), list(range(13, 14)), list(range(14, n))]),
            "text": pa.chunked_array([[f"t{i}" for i in range(0, 30)], [f"t{i}" for i in range(30, n)]]),
            "system": pa.chunked_array(  # a dictionary per chunk, cut elsewhere than the other columns
                [
                    pa.DictionaryArray.from_arrays(pa.array([i % 2 for i in range(5)], pa.int32()), ["card", "loan"]),
                    pa.DictionaryArray.from_arrays(
                        pa.array([i % 3 for i in range(5, n)], pa.int32()), ["deposit", "card", "loan"]
                    ),
                ]
            ),
        }
    )
    reader = row_group_batches(table)
    assert isinstance(reader, pa.RecordBatchReader)
    batches = list(reader)
    assert [b.num_rows for b in batches] == [10, 10, 10, 10, 7]
    assert pa.Table.from_batches(batches).to_pylist() == table.to_pylist()
    cut = scan_batches(table)  # the copy-free cut, for a load beside the run's memory peak
    assert [b.num_rows for b in cut.to_batches()] == [5, 8, 1, 10, 6, 10, 7]  # at every chunk boundary
    with DuckDBFileWriter(tmp_path / "m.duckdb", KEY) as writer:
        writer.add("t", table)
        writer.add("u", table, whole_row_groups=False)
        path = writer.commit()
    rows, copy_free = _read_back(
        path, "SELECT n, text, system FROM t ORDER BY n", "SELECT n, text, system FROM u ORDER BY n"
    )
    assert rows == copy_free == [(r["n"], r["text"], r["system"]) for r in table.to_pylist()]


def test_a_code_column_with_a_dictionary_per_chunk_loads_its_values(tmp_path: Path) -> None:
    from mdm.crypto import DuckDBFileWriter

    chunks = [
        pa.DictionaryArray.from_arrays(pa.array([0, 1, None, 1], pa.int32()), pa.array(["card", "loan"])),
        pa.DictionaryArray.from_arrays(pa.array([1, 0, 2], pa.int32()), pa.array(["deposit", "card", "loan"])),
        pa.DictionaryArray.from_arrays(pa.array([0], pa.int32()), pa.array(["x"])),
    ]
    column = pa.chunked_array(chunks)
    table = pa.table({"n": pa.chunked_array([[0, 1, 2, 3], [4, 5, 6], [7]]), "system": column})
    with DuckDBFileWriter(tmp_path / "m.duckdb", KEY) as writer:
        writer.add("t", table)
        path = writer.commit()
    rows, kind = _read_back(
        path,
        "SELECT n, system FROM t ORDER BY n",
        "SELECT data_type FROM duckdb_columns() WHERE column_name = 'system'",
    )
    assert rows == list(enumerate(["card", "loan", None, "loan", "card", "deposit", "loan", "x"]))
    assert kind == [("VARCHAR",)]


def test_each_load_is_checkpointed_unless_another_write_is_under_way(tmp_path: Path) -> None:
    from mdm.crypto import DuckDBFileWriter

    n = 50_000  # small: DuckDB alone would keep it in the write-ahead log until some later statement
    table = pa.table({"record_key": [f"card:{i:012d}" for i in range(n)], "n": np.arange(n)})
    with DuckDBFileWriter(tmp_path / "m.duckdb", KEY) as writer:
        wal = writer._tmp.with_name(writer._tmp.name + ".wal")
        writer.add("first", table, ("record_key",))
        assert not wal.exists() or wal.stat().st_size == 0  # in the file itself already
        assert writer._con is not None
        other = writer._con.cursor()  # another thread's load, still writing
        other.execute(f'USE "{writer._catalog}"')
        other.execute("BEGIN TRANSACTION")
        other.execute("CREATE TABLE other AS SELECT 1 AS x")
        writer.add("second", table.slice(0, 1000))  # its checkpoint is refused, the load stands
        assert wal.exists() and wal.stat().st_size > 0
        other.execute("COMMIT")
        other.close()
        path = writer.commit()
    assert _read_back(
        path,
        "SELECT count(*), max(n) FROM first",
        "SELECT count(*) FROM second",
        "SELECT count(*) FROM other",
        "SELECT index_name FROM duckdb_indexes()",
    ) == [[(n, n - 1)], [(1000,)], [(1,)], [("idx_first_record_key",)]]


def test_the_writer_drops_its_cache_between_loads_but_never_under_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mdm.crypto import DuckDBFileWriter

    n = 400_000
    big = pa.table({"record_key": [f"deposit:{i:012d}" for i in range(n)], "n": np.arange(n)})
    during: list[bool] = []
    with DuckDBFileWriter(tmp_path / "m.duckdb", KEY, "256MB") as writer:
        original = DuckDBFileWriter._load

        def load(self: DuckDBFileWriter, name: str, data: pa.Table) -> None:
            during.append(self.shrink_cache())  # another thread asking while this load runs
            original(self, name, data)

        monkeypatch.setattr(DuckDBFileWriter, "_load", load)
        writer.add("first", big, ("record_key",))
        assert writer._con is not None
        used = writer._con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()
        assert writer.shrink_cache()
        after = writer._con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()
        limit = writer._con.execute("SELECT current_setting('memory_limit')").fetchone()
        writer.add("second", big.slice(0, 1000))
        path = writer.commit()
    assert during == [False, False]
    assert used is not None and after is not None and after[0] <= used[0]
    assert limit is not None and limit[0].replace(" ", "") in {"256.0MiB", "244.1MiB", "256MB"}  # restored
    con = connect_duckdb(path, KEY)
    try:
        assert con.execute("SELECT count(*), max(n) FROM first").fetchone() == (n, n - 1)
        assert con.execute("SELECT count(*) FROM second").fetchone() == (1000,)
        assert con.execute("SELECT index_name FROM duckdb_indexes()").fetchall() == [("idx_first_record_key",)]
    finally:
        con.close()
    with DuckDBFileWriter(tmp_path / "unbounded.duckdb", None, None) as unbounded:
        unbounded.add("x", big.slice(0, 10))
        assert not unbounded.shrink_cache()  # no limit to lower
