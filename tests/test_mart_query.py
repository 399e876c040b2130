"""The analyst mart (no raw PII in any byte) and read-only `mdm query`."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mdm.audit import AuditLog
from mdm.errors import SecurityError
from mdm.mart import build_mart, current_mart
from mdm.query import check_sql, run_query
from schemas.masking import DEFAULT_MASKING

REPO = Path(__file__).resolve().parent.parent
TOKEN_KEY = b"t" * 32
RAW_IDS = ["110101199003071234", "440305198512120018"]
RAW_PHONES = ["13800138000", "13912345678", "1062345678"]
RAW_NAMES = ["张三丰", "欧阳娜娜", "Zhang Sanfeng"]
RAW_EMAILS = ["zhangsanfeng@example.com"]
RAW_ADDRESS = "建国路88号院3号楼"
SECRETS = [*RAW_IDS, *RAW_PHONES, *RAW_NAMES, *RAW_EMAILS, RAW_ADDRESS]


def master_tables() -> dict[str, pa.Table]:
    """A tiny hand-made master: two golden customers, three source records, one quarantined row."""
    golden = pa.table(
        {
            "golden_id": ["G000001", "G000002"],
            "name": ["张三丰", "欧阳娜娜"],
            "name_pinyin": ["zhang sanfeng", "ouyang nana"],
            "id_type": ["RESIDENT_ID", "RESIDENT_ID"],
            "id_number": RAW_IDS,
            "gender": ["M", "F"],
            "mobile": ["+8613800138000", "+8613912345678"],
            "all_phones": [["+8613800138000", "+861062345678"], ["+8613912345678"]],
            "all_id_numbers": [[RAW_IDS[0]], [RAW_IDS[1]]],
            "all_names": [["张三丰", "Zhang Sanfeng"], ["欧阳娜娜"]],
            "email": ["zhangsanfeng@example.com", None],
            "all_emails": [["zhangsanfeng@example.com"], []],
            "address_norm": ["北京市朝阳区建国路88号院3号楼", None],
            "province": ["北京市", None],
            "district": ["朝阳区", None],
            "n_records": [2, 1],
            "systems": [["card", "deposit"], ["loan"]],
            "n_deposit": [1, 0],
            "mobile_source_system": ["deposit", "loan"],
            "mobile_source_record_id": ["D1", "L1"],
            "favourite_colour": ["red", "blue"],  # unclassified: must not reach the mart
        }
    )
    xref = pa.table(
        {
            "source_system": ["deposit", "card", "loan"],
            "source_record_id": ["D1", "C1", "L1"],
            "record_key": ["deposit:D1", "card:C1", "loan:L1"],
            "golden_id": ["G000001", "G000001", "G000002"],
            "link_type": ["deterministic", "auto", "singleton"],
            "link_weight": [20.0, 12.5, 0.0],
        }
    )
    quarantine = pa.table(
        {
            "source_system": ["card"],
            "source_file": ["card.csv"],
            "source_line": [7],
            "raw_text": [f"C9,{RAW_NAMES[0]},{RAW_IDS[0]},{RAW_PHONES[0]}"],
            "reason": ["COLUMN_COUNT"],
            "detail": [f"bad row {RAW_IDS[0]}"],
        }
    )
    source_records = pa.table(
        {
            "record_key": ["deposit:D1", "card:C1", "loan:L1"],
            "source_system": ["deposit", "card", "loan"],
            "name": ["张三丰", "Zhang Sanfeng", "欧阳娜娜"],
            "id_number_raw": [RAW_IDS[0], RAW_IDS[0].replace("1234", "123 4"), RAW_IDS[1]],
            "id_number": [RAW_IDS[0], RAW_IDS[0], RAW_IDS[1]],
            "mobile_raw": ["138-0013-8000", "+86 138 0013 8000", "13912345678"],
            "phone_raw": ["010-62345678", None, None],
            "email_raw": ["ZhangSanFeng@Example.com", None, None],
            "address_raw": ["北京市朝阳区建国路88号院3号楼", None, None],
            "customer_no": ["600012345", "C-77", "L-1"],
            "id_key": [f"RESIDENT_ID:{RAW_IDS[0]}", f"RESIDENT_ID:{RAW_IDS[0]}", f"RESIDENT_ID:{RAW_IDS[1]}"],
            "name_fuzzy": ["zangsanfen", "zangsanfen", "ouyangnana"],
        }
    )
    events = pa.table(
        {
            "run_id": ["r1"],
            "golden_id": ["G000001"],
            "event_type": ["created"],
            "related_golden_id": [None],
            "record_key": ["deposit:D1"],
            "reason": ["new"],
        }
    )
    run_log = pa.table({"run_id": ["r1"], "status": ["published"]})
    return {
        "golden_customer": golden,
        "customer_xref": xref,
        "quarantine": quarantine,
        "source_records": source_records,
        "golden_id_events": events,
        "run_log": run_log,
    }


def make_master(master_dir: Path, version: str = "r1") -> Path:
    """Write the tiny master as a published version (Parquet + master.duckdb + manifest + CURRENT)."""
    folder = master_dir / "versions" / version
    folder.mkdir(parents=True)
    tables = master_tables()
    con = duckdb.connect(str(folder / "master.duckdb"))
    for name, table in tables.items():
        pq.write_table(table, folder / f"{name}.parquet", compression="none")
        con.register("src", table)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM src")
        con.unregister("src")
    con.close()
    (folder / "manifest.json").write_text(json.dumps({"run_id": version, "sequence": 1, "files": {}}))
    (master_dir / "CURRENT").write_text(version + "\n")
    return folder


def write_config(root: Path) -> Path:
    config = {
        "sources": str(REPO / "data" / "config" / "sources.yaml"),
        "paths": {
            "sample": str(root / "sample"),
            "runs": str(root / "runs"),
            "master": str(root / "master"),
            "mart": str(root / "mart"),
            "state": str(root / "state"),
        },
    }
    path = root / "run.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _all_text(folder: Path) -> str:
    """Every value of every table of the mart, as text (Parquet and DuckDB decoded)."""
    parts: list[str] = []
    for file in folder.glob("*.parquet"):
        parts.append(json.dumps(pq.read_table(file).to_pylist(), ensure_ascii=False, default=str))
    con = duckdb.connect(str(folder / "mart.duckdb"), read_only=True)
    for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
        parts.append(json.dumps(con.execute(f'SELECT * FROM "{name}"').fetchall(), ensure_ascii=False, default=str))
    con.close()
    return "\n".join(parts)


@pytest.fixture
def mart(tmp_path: Path) -> Path:
    version = make_master(tmp_path / "master")
    build_mart(version, tmp_path / "mart", DEFAULT_MASKING, TOKEN_KEY)
    return tmp_path / "mart"


def test_mart_files_hold_no_raw_pii(mart: Path) -> None:
    folder = current_mart(mart)
    files = [f for f in folder.iterdir() if f.is_file()]
    expected = {"golden_customer.parquet", "mart.duckdb", "manifest.json", "customer_360.parquet"}
    assert {f.name for f in files} >= expected
    text = _all_text(folder)
    for secret in SECRETS:
        for file in files:
            assert secret.encode() not in file.read_bytes(), (secret, file.name)
        assert secret not in text, secret
    assert "110101********1234" in text and "138****8000" in text and "张*" in text


def test_mart_contract_columns(mart: Path) -> None:
    folder = current_mart(mart)
    golden = pq.read_table(folder / "golden_customer.parquet")
    cols = set(golden.column_names)
    assert {"id_number_token", "mobile_token", "name_token", "all_phones_tokens", "n_deposit", "systems"} <= cols
    assert "favourite_colour" not in cols and "name_fuzzy" not in cols
    assert pq.read_table(folder / "quarantine.parquet").column_names == [
        "source_system",
        "source_file",
        "source_line",
        "reason",
    ]
    src = pq.read_table(folder / "source_records.parquet")
    assert "id_key" not in src.column_names and "customer_no" not in src.column_names
    # tokens join across tables and spellings
    assert len(set(src.column("id_number_raw_token").to_pylist()[:2])) == 1
    assert src.column("mobile_raw_token")[1] == golden.column("mobile_token")[0]
    c360 = pq.read_table(folder / "customer_360.parquet").to_pylist()
    assert c360[0]["golden_id"] == "G000001" and c360[0]["n_records"] == 2 and c360[0]["n_card"] == 1
    manifest = json.loads((folder / "manifest.json").read_text())
    assert "favourite_colour" in manifest["dropped_columns"]["golden_customer"]


def test_mart_rebuild_switches_current(tmp_path: Path) -> None:
    version = make_master(tmp_path / "master")
    first = build_mart(version, tmp_path / "mart", DEFAULT_MASKING, TOKEN_KEY)
    second = build_mart(version, tmp_path / "mart", DEFAULT_MASKING, TOKEN_KEY)
    assert first != second and current_mart(tmp_path / "mart") == second


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO golden_customer (golden_id) VALUES ('x')",
        "UPDATE golden_customer SET gender = 'M'",
        "DELETE FROM golden_customer",
        "CREATE TABLE t AS SELECT 1",
        "DROP TABLE golden_customer",
        "COPY golden_customer TO '/tmp/out.csv'",
        "ATTACH '/tmp/x.duckdb' AS x",
        "INSTALL httpfs",
        "LOAD httpfs",
        "PRAGMA database_list",
        "SET enable_external_access = true",
        "CALL pragma_version()",
        "EXPORT DATABASE '/tmp/x'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_csv_auto('/etc/passwd')",
        "SELECT * FROM read_parquet('/tmp/x.parquet')",
        "SELECT * FROM read_json('/tmp/x.json')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM query('SELECT 1')",
        "SELECT * FROM duckdb_secrets()",
        "SELECT 1; SELECT 2",
        "WITH x AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM x",
        "SELECT (SELECT count(*) FROM read_text('/etc/passwd'))",
    ],
)
def test_guard_refuses(sql: str) -> None:
    with pytest.raises(SecurityError):
        check_sql(sql)


def test_query_select_works_and_is_audited(mart: Path, tmp_path: Path) -> None:
    audit = AuditLog.for_state(tmp_path / "state")
    result = run_query(
        "SELECT golden_id, id_number, n_records FROM golden_customer ORDER BY golden_id", mart, "ana", audit
    )
    assert result.table.to_pylist()[0] == {"golden_id": "G000001", "id_number": "110101********1234", "n_records": 2}
    with pytest.raises(SecurityError):
        run_query("SELECT * FROM read_csv('/etc/passwd')", mart, "ana", audit)
    entries = audit.tail(2)
    assert [e["action"] for e in entries] == ["query", "query"]
    assert entries[0]["actor"] == "ana" and entries[0]["details"]["rows"] == 2
    assert "refused" in entries[1]["details"]
    assert audit.verify().ok


def test_cli_query_csv_neutralizes_formulas(tmp_path: Path) -> None:
    from mdm.cli import app

    config = write_config(tmp_path)
    build_mart(make_master(tmp_path / "master"), tmp_path / "mart", DEFAULT_MASKING, TOKEN_KEY)
    runner = CliRunner()
    out = tmp_path / "out.csv"
    sql = "SELECT '=cmd|'' /C calc''!A0' AS evil, golden_id FROM golden_customer ORDER BY golden_id"
    result = runner.invoke(app, ["query", sql, "--config", str(config), "--csv", str(out), "--user", "ana"])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8-sig")
    assert "\"'=cmd|" in text and '"=cmd' not in text
    pq_out = tmp_path / "out.parquet"
    result = runner.invoke(
        app, ["query", "SELECT count(*) AS n FROM customer_xref", "--config", str(config), "--parquet", str(pq_out)]
    )
    assert result.exit_code == 0 and pq.read_table(pq_out).column("n").to_pylist() == [3]
    result = runner.invoke(app, ["query", "SELECT golden_id FROM golden_customer", "--config", str(config)])
    assert result.exit_code == 0 and "G000002" in result.output
    for bad in ("DELETE FROM golden_customer", "SELECT * FROM read_csv('/etc/passwd')", "ATTACH 'x' AS y"):
        refused = runner.invoke(app, ["query", bad, "--config", str(config)])
        assert refused.exit_code != 0 and isinstance(refused.exception, SecurityError)
    assert AuditLog.for_state(tmp_path / "state").verify().entries == 6


# --------------------------------------------------------------------------- chunked build


def _mart_values(folder: Path, key: bytes | None = None) -> dict[str, object]:
    """Every table of a mart version by source: Parquet rows in file order, DuckDB rows sorted."""
    from mdm.crypto import connect_duckdb, read_parquet_any

    values: dict[str, object] = {}
    for file in sorted(folder.glob("*.parquet")):
        table = read_parquet_any(file, key)
        values[f"parquet:{file.stem}"] = (table.schema, table.to_pylist())
    con = connect_duckdb(folder / "mart.duckdb", key)
    try:
        names = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() ORDER BY 1"
        ).fetchall()
        for (name,) in names:
            table = con.execute(f'SELECT * FROM "{name}"').to_arrow_table()
            rows = sorted(json.dumps(r, ensure_ascii=False, default=str, sort_keys=True) for r in table.to_pylist())
            values[f"duckdb:{name}"] = (table.schema, rows)
    finally:
        con.close()
    return values


def _manifest_tables(folder: Path) -> tuple[object, object]:
    manifest = json.loads((folder / "manifest.json").read_text())
    return manifest["tables"], manifest["dropped_columns"]


@pytest.mark.parametrize("chunk_rows", [1, 2])
def test_a_mart_built_in_small_chunks_equals_one_built_in_one_chunk(tmp_path: Path, chunk_rows: int) -> None:
    version = make_master(tmp_path / "master")
    whole = build_mart(version, tmp_path / "whole", DEFAULT_MASKING, TOKEN_KEY, chunk_rows=1_000_000)
    small = build_mart(version, tmp_path / "small", DEFAULT_MASKING, TOKEN_KEY, chunk_rows=chunk_rows)
    assert _mart_values(small) == _mart_values(whole)
    assert _manifest_tables(small) == _manifest_tables(whole)
    # the chunks really were written one by one: a row group each
    assert pq.ParquetFile(small / "source_records.parquet").num_row_groups == -(-3 // chunk_rows)
    assert not list((tmp_path / "small").glob(".spill-*"))


def test_manifest_digests_are_those_of_the_files(mart: Path) -> None:
    import hashlib

    folder = current_mart(mart)
    files = json.loads((folder / "manifest.json").read_text())["files"]
    assert "source_records.parquet" in files and "customer_360.parquet" in files
    for name, entry in files.items():
        data = (folder / name).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}, name


def test_an_encrypted_mart_holds_the_same_values(tmp_path: Path) -> None:
    import hashlib

    from mdm.crypto import is_encrypted

    mart_key = b"m" * 32
    version = make_master(tmp_path / "master")
    plain = build_mart(version, tmp_path / "plain", DEFAULT_MASKING, TOKEN_KEY)
    sealed = build_mart(version, tmp_path / "sealed", DEFAULT_MASKING, TOKEN_KEY, mart_key=mart_key, chunk_rows=2)
    assert all(is_encrypted(f) for f in sealed.glob("*.parquet")) and is_encrypted(sealed / "mart.duckdb")
    assert _mart_values(sealed, mart_key) == _mart_values(plain)
    files = json.loads((sealed / "manifest.json").read_text())["files"]
    data = (sealed / "golden_customer.parquet").read_bytes()
    assert files["golden_customer.parquet"] == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    for secret in SECRETS:
        for file in sealed.iterdir():
            assert secret.encode() not in file.read_bytes(), (secret, file.name)


class _Boom(Exception):
    pass


def test_a_chunk_that_fails_leaves_no_mart_and_raises_its_own_error(tmp_path: Path, monkeypatch) -> None:
    import mdm.mart as mart_module

    real = mart_module.mask_chunks

    def second_chunk_fails(table, config, key, chunk_rows):  # type: ignore[no-untyped-def]
        chunks = real(table, config, key, chunk_rows)
        yield next(chunks)
        if table.num_rows > chunk_rows:
            raise _Boom("masking failed")
        yield from chunks

    monkeypatch.setattr(mart_module, "mask_chunks", second_chunk_fails)
    version = make_master(tmp_path / "master")
    with pytest.raises(_Boom):
        build_mart(version, tmp_path / "mart", DEFAULT_MASKING, TOKEN_KEY, chunk_rows=1)
    assert not (tmp_path / "mart" / "CURRENT").exists()
    assert not list((tmp_path / "mart").glob(".spill-*"))


def test_a_write_that_fails_raises_its_own_error(tmp_path: Path, monkeypatch) -> None:
    import mdm.mart as mart_module

    real = mart_module._ParquetOut.write

    def third_write_fails(self, chunk):  # type: ignore[no-untyped-def]
        if self.rows >= 2:
            raise _Boom("disk full")
        real(self, chunk)

    monkeypatch.setattr(mart_module._ParquetOut, "write", third_write_fails)
    version = make_master(tmp_path / "master")
    with pytest.raises(_Boom):
        build_mart(version, tmp_path / "mart", DEFAULT_MASKING, TOKEN_KEY, chunk_rows=1)
    assert not (tmp_path / "mart" / "CURRENT").exists()


_REFERENCE_360 = """SELECT golden_id, count(*) AS n_records, count(DISTINCT source_system) AS n_systems,
                          list(DISTINCT source_system ORDER BY source_system) AS systems{per_system}
                   FROM x GROUP BY golden_id ORDER BY golden_id"""


def _reference_360(xref: pa.Table) -> pa.Table:
    """customer_360 as first written: distinct aggregates straight over the xref (the specification)."""
    import re

    con = duckdb.connect()
    try:
        con.register("x", xref)
        systems = [r[0] for r in con.execute("SELECT DISTINCT source_system FROM x ORDER BY 1").fetchall() if r[0]]
        per_system = "".join(
            f', count(*) FILTER (WHERE source_system = ?) AS "n_{re.sub("[^a-z0-9_]+", "_", s.lower())}"'
            for s in systems
        )
        return con.execute(_REFERENCE_360.format(per_system=per_system), systems).to_arrow_table()
    finally:
        con.close()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.sampled_from(["G1", "G2", "G3", "G10"])),
            st.one_of(st.none(), st.sampled_from(["deposit", "card", "Loan-X", "", "卡"])),
        ),
        max_size=30,
    )
)
def test_customer_360_equals_the_distinct_aggregates(rows: list[tuple[str | None, str | None]]) -> None:
    from mdm.mart import customer_360

    xref = pa.table(
        {
            "golden_id": pa.array([g for g, _ in rows], pa.string()),
            "source_system": pa.array([s for _, s in rows], pa.string()),
            "record_key": pa.array([f"k{i}" for i in range(len(rows))], pa.string()),
        }
    )
    mine, reference = customer_360(xref), _reference_360(xref)
    assert mine.schema == reference.schema
    assert mine.to_pylist() == reference.to_pylist()


def test_chunk_rows_follow_the_row_size() -> None:
    from mdm.mart import chunk_rows_for

    wide = pa.table({"a": ["x" * 96] * 1000})  # 100 bytes a row (96 characters, a 4-byte offset)
    assert chunk_rows_for(wide, chunk_bytes=10_000) == 100
    assert chunk_rows_for(wide, chunk_bytes=10) == 1
    assert chunk_rows_for(pa.table({"a": list(range(1000))}), chunk_bytes=10**9, most=500) == 500
    assert chunk_rows_for(pa.table({"a": pa.array([], pa.string())}), chunk_bytes=10) >= 1
