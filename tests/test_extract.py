"""Extract of the three demo formats and SQL, code tables, the fast/slow path agreement, landing."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import os
import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdm.errors import ConfigError, MdmError, SourceError
from pipelines.extract import delimited as delimited_module
from pipelines.extract import extract_source
from pipelines.extract.codes import map_codes
from pipelines.landing import RunFolder, find_last_good_landing, read_manifest
from schemas.canonical import CANONICAL_SCHEMA, QUARANTINE_SCHEMA, truncate_utf8
from schemas.sources import CANONICAL_TEXT_FIELDS, SourceConfig, SourcesFile

DEMO = SourcesFile.model_validate(
    yaml.safe_load((Path(__file__).resolve().parent.parent / "data/config/sources.yaml").read_text("utf-8"))
)
SRC = {s.system: s for s in DEMO.sources}


def write_deposit(folder: Path, rows: list[list[str]]) -> None:
    header = ["KHH", "KHMC", "ZJLX", "ZJHM", "XB", "CSRQ", "SJHM", "LXDH", "TXDZ", "GXRQ"]
    text = "\n".join("|".join(r) for r in [header, *rows]) + "\n"
    (folder / "deposit.dat").write_bytes(text.encode("gb18030"))


def write_card(folder: Path, rows: list[list[str]]) -> None:
    header = ["cust_id", "name_cn", "embossed_name", "id_type", "id_no", "gender", "birth_date", "mobile"]
    header += ["home_phone", "bill_address", "email", "last_update"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    writer.writerows(rows)
    (folder / "card.csv").write_bytes(buf.getvalue().encode("utf-8-sig"))


DEPOSIT_ROWS = [
    ["D1", "张三", "01", "110105194912310021", "1", "19491231", "13800138000", "", "北京市朝阳区", "20240101"],
    ["D2", "李四", " 04 ", "H12345678", "2", "19500101", "", "010-12345678", "上海市", "20240102"],
    ["D3", "王五", "77", "X", "9", "", "", "", "", ""],
    ["D4", "赵六", "", "", "", "", "", "", "", ""],
]


def test_deposit_fast_path_and_code_tables(tmp_path: Path) -> None:
    write_deposit(tmp_path, DEPOSIT_ROWS)
    result = extract_source(SRC["deposit"], tmp_path, "r1")
    assert result.files[0].fast_path
    assert result.canonical.schema.equals(CANONICAL_SCHEMA)
    rows = result.canonical.to_pylist()
    assert [r["id_type_declared"] for r in rows] == ["RESIDENT_ID", "HK_MACAU_PERMIT", "UNKNOWN", None]
    assert [r["gender_declared"] for r in rows] == ["M", "F", None, None]
    assert rows[1]["id_type_raw"] == " 04 "  # raw kept as read
    assert rows[0]["name"] == "张三" and rows[0]["customer_no"] == "D1" and rows[0]["name_latin"] is None
    assert rows[0]["phone_raw"] is None  # blank -> null
    assert [r["source_line"] for r in rows] == [2, 3, 4, 5]
    assert {r["source_trust"] for r in rows} == {80} and {r["source_file"] for r in rows} == {"deposit.dat"}
    assert result.quarantine.schema.equals(QUARANTINE_SCHEMA)


def test_card_quoted_crlf_bom(tmp_path: Path) -> None:
    rows = [
        ["C1", "張三", "ZHANG SAN", "I", "110105194912310021", "M", "1949-12-31", "", "", "北京\n朝阳", "a@b.cn", ""],
        ["C2", "李四", "LI, SI", "i", "X", "f", "1950-01-01", "", "", 'say "hi"', "", ""],
    ]
    write_card(tmp_path, rows)
    result = extract_source(SRC["card"], tmp_path, "r1")
    out = result.canonical.to_pylist()
    assert result.files[0].fast_path
    assert out[0]["address_raw"] == "北京\n朝阳" and out[1]["source_line"] == 4
    assert out[1]["name_latin"] == "LI, SI" and out[1]["address_raw"] == 'say "hi"'
    assert [r["id_type_declared"] for r in out] == ["RESIDENT_ID", "RESIDENT_ID"]  # case-insensitive fallback
    assert [r["gender_declared"] for r in out] == ["M", "F"]
    assert out[0]["email_raw"] == "a@b.cn" and out[0]["name"] == "張三"


def test_loan_parquet_typed_values_become_text(tmp_path: Path) -> None:
    table = pa.table(
        {
            "borrower_id": pa.array([1001, 1002, 1003], pa.int64()),
            "customer_name": pa.array(["张三", None, "王五"]).dictionary_encode(),
            "cert_type": ["ID_CARD", "PASSPORT", "??"],
            "cert_no": ["110105194912310021", "E12345678", ""],
            "gender": ["男", "女", None],
            "birth_date": pa.array([dt.date(1949, 12, 31), None, dt.date(2000, 2, 29)]),
            "mobile_phone": pa.array([13800138000.0, None, 1.5]),
            "contact_address": pa.array([decimal.Decimal("1.20"), None, None], pa.decimal128(5, 2)),
            "email": pa.array([None, None, None], pa.string()),
            "updated_at": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 987654), None, None], pa.timestamp("us")),
        }
    )
    pq.write_table(table, tmp_path / "loan.parquet", row_group_size=2)
    result = extract_source(SRC["loan"], tmp_path, "r1")
    rows = result.canonical.to_pylist()
    assert [r["source_record_id"] for r in rows] == ["1001", "1002", "1003"]
    assert rows[0]["birth_date_raw"] == "1949-12-31" and rows[2]["birth_date_raw"] == "2000-02-29"
    assert rows[0]["updated_at_raw"] == "2024-01-02 03:04:05"
    assert rows[0]["mobile_raw"] == "13800138000" and rows[2]["mobile_raw"] == "1.5"
    assert rows[0]["address_raw"] == "1.20"
    assert [r["id_type_declared"] for r in rows] == ["RESIDENT_ID", "PASSPORT_CN", "UNKNOWN"]
    assert [r["gender_declared"] for r in rows] == ["M", "F", None]
    assert [r["source_line"] for r in rows] == [1, 2, 3]
    assert rows[1]["name"] is None and rows[2]["id_number_raw"] is None


def test_glob_location_reads_every_file_and_finds_cross_file_duplicates(tmp_path: Path) -> None:
    (tmp_path / "parts").mkdir()
    for i, rows in enumerate([DEPOSIT_ROWS[:2], DEPOSIT_ROWS[1:3]]):
        write_deposit(tmp_path, rows)
        (tmp_path / "deposit.dat").rename(tmp_path / "parts" / f"deposit_{i}.dat")
    src = SRC["deposit"].model_copy(update={"location": "parts/deposit_*.dat"})
    result = extract_source(src, tmp_path, "r1")
    assert [f.path for f in result.files] == ["parts/deposit_0.dat", "parts/deposit_1.dat"]
    assert result.canonical["source_record_id"].to_pylist() == ["D1", "D2", "D3"]
    q = result.quarantine.to_pylist()
    assert [(r["source_file"], r["reason"]) for r in q] == [("parts/deposit_1.dat", "DUPLICATE_RECORD_ID")]


def sql_source(env: str = "MDM_TEST_WEALTH_URL") -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "system": "wealth",
            "format": {"kind": "sql", "url_env": env, "query": "SELECT * FROM clients ORDER BY cid"},
            "columns": {"source_record_id": "cid", "name": "nm", "id_type_raw": "t", "birth_date_raw": "dob"},
            "code_tables": {"id_type": {"1": "RESIDENT_ID"}},
        }
    )


def test_sqlite_source_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "wealth.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE clients (cid INTEGER, nm TEXT, t TEXT, dob)")
        rows = [(i, f"客户{i}", "1", "1990-01-01" if i % 2 else 19900101.0) for i in range(1, 60_001)]
        rows.append((None, "无号", "1", None))  # type: ignore[arg-type]
        conn.executemany("INSERT INTO clients VALUES (?,?,?,?)", rows)
    monkeypatch.setenv("MDM_TEST_WEALTH_URL", f"sqlite:///{db}")
    result = extract_source(sql_source(), tmp_path, "r1")
    assert result.rows_in == 60_001 and result.rows_canonical == 60_000
    first = result.canonical.slice(0, 2).to_pylist()
    assert first[0]["birth_date_raw"] == "1990-01-01" and first[1]["birth_date_raw"] == "19900101"
    assert first[0]["source_record_id"] == "1" and first[0]["id_type_declared"] == "RESIDENT_ID"
    assert result.quarantine["reason"].to_pylist() == ["NO_RECORD_ID"]
    assert result.files[0].path == "sql:MDM_TEST_WEALTH_URL"


def test_sql_errors_never_show_the_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MDM_TEST_WEALTH_URL", raising=False)
    with pytest.raises(ConfigError, match="MDM_TEST_WEALTH_URL is not set"):
        extract_source(sql_source(), tmp_path, "r1")
    secret_url = f"sqlite:///{tmp_path}/s3cretpw.sqlite"
    monkeypatch.setenv("MDM_TEST_WEALTH_URL", secret_url)
    with pytest.raises(SourceError) as err:
        extract_source(sql_source(), tmp_path, "r1")
    assert "s3cretpw" not in str(err.value) and "no such table" in str(err.value)
    monkeypatch.setenv("MDM_TEST_WEALTH_URL", "nosuchdriver://user:s3cretpw@host/db")
    with pytest.raises(ConfigError) as err2:
        extract_source(sql_source(), tmp_path, "r1")
    assert "s3cretpw" not in str(err2.value)


def test_map_codes_rules() -> None:
    raw = pa.chunked_array([["01", " 01", "x", "", None, "  ", "A"]])
    assert map_codes(raw, {"01": "RESIDENT_ID", "a": "OTHER"}, "UNKNOWN").to_pylist() == [
        "RESIDENT_ID",
        "RESIDENT_ID",
        "UNKNOWN",
        None,
        None,
        None,
        "OTHER",
    ]
    # keys differing only by case keep their own meaning: no case folding
    assert map_codes(pa.chunked_array([["m", "M", "X"]]), {"m": "F", "M": "M"}, None).to_pylist() == ["F", "M", None]


def test_truncate_utf8_keeps_whole_characters() -> None:
    assert truncate_utf8("张" * 2000, 4096) == "张" * 1365
    assert truncate_utf8("abc", 4096) == "abc"


def test_canonical_schema_covers_every_text_field() -> None:
    assert set(CANONICAL_TEXT_FIELDS) <= set(CANONICAL_SCHEMA.names)


_text = (
    st.lists(st.sampled_from([*'ab张三,"\n\r |=+@', "\r\n"]), min_size=1, max_size=12)
    .map("".join)
    .filter(lambda s: s.strip() != "")
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_text, _text), min_size=1, max_size=25))
def test_fast_and_slow_paths_agree(tmp_path_factory: pytest.TempPathFactory, values: list[tuple[str, str]]) -> None:
    folder = tmp_path_factory.mktemp("card")
    rows = [[f"C{i}", a, b, "I", "X", "M", "", "", "", "", "", ""] for i, (a, b) in enumerate(values)]
    write_card(folder, rows)
    fast = extract_source(SRC["card"], folder, "r1")
    original = delimited_module._fast
    delimited_module._fast = lambda *a, **k: None  # type: ignore[assignment]
    try:
        slow = extract_source(SRC["card"], folder, "r1")
    finally:
        delimited_module._fast = original
    assert fast.files[0].fast_path and not slow.files[0].fast_path
    assert fast.canonical.equals(slow.canonical)
    got = [(r["name"], r["name_latin"]) for r in fast.canonical.to_pylist()]
    assert got == [(a, b) for a, b in values]


# -- landing -------------------------------------------------------------------------------


def _landed(tmp_path: Path, run_id: str) -> tuple[RunFolder, Path]:
    write_deposit(tmp_path, DEPOSIT_ROWS)
    result = extract_source(SRC["deposit"], tmp_path, run_id)
    folder = RunFolder.create(tmp_path / "runs", run_id, dt.date(2026, 11, 23))
    return folder, folder.write_landing(result, {"passed": True})


def test_landing_is_immutable_with_checksummed_manifest(tmp_path: Path) -> None:
    folder, path = _landed(tmp_path, "R20261123-010000-aaaa")
    assert {p.name for p in folder.root.iterdir()} == {"landing", "quarantine", "quality", "report"}
    manifest = read_manifest(folder.manifest_path("deposit"))
    import hashlib

    assert manifest["landing"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    src_sha = hashlib.sha256((tmp_path / "deposit.dat").read_bytes()).hexdigest()
    assert manifest["source_files"] == [
        {
            "path": "deposit.dat",
            "sha256": src_sha,
            "size_bytes": (tmp_path / "deposit.dat").stat().st_size,
            "rows_read": 4,
        }
    ]
    assert manifest["run_id"] == "R20261123-010000-aaaa" and manifest["business_date"] == "2026-11-23"
    assert (manifest["rows_in"], manifest["rows_canonical"], manifest["rows_quarantined"]) == (4, 4, 0)
    assert pq.read_table(path).equals(extract_source(SRC["deposit"], tmp_path, "x").canonical)
    assert not os.access(path, os.W_OK) or os.geteuid() == 0
    assert oct(path.stat().st_mode & 0o777) == "0o444"
    with pytest.raises(MdmError, match="immutable"):
        folder.write_landing(extract_source(SRC["deposit"], tmp_path, "x"))
    q = folder.write_quarantine([QUARANTINE_SCHEMA.empty_table()])
    assert q.num_rows == 0 and oct((folder.quarantine_dir / "quarantine.parquet").stat().st_mode & 0o777) == "0o444"
    with pytest.raises(MdmError, match="immutable"):
        folder.write_quarantine([])


def test_unsafe_run_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        RunFolder.create(tmp_path, "../escape", dt.date(2026, 1, 1))


def test_find_last_good_landing(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert find_last_good_landing(runs, "deposit", None) is None
    _, first = _landed(tmp_path, "R20261121-010000-aaaa")
    _, second = _landed(tmp_path, "R20261122-010000-bbbb")
    RunFolder.create(runs, "R20261123-010000-cccc", dt.date(2026, 11, 23))  # tonight: nothing landed
    assert find_last_good_landing(runs, "deposit", "R20261123-010000-cccc") == second
    assert find_last_good_landing(runs, "deposit", "R20261122-010000-bbbb") == first
    assert find_last_good_landing(runs, "deposit", None) == second
    assert find_last_good_landing(runs, "card", None) is None
    # a landing whose bytes no longer match its manifest is not good
    os.chmod(second, 0o644)
    second.write_bytes(second.read_bytes() + b"x")
    assert find_last_good_landing(runs, "deposit", None) == first
    # a landing without a manifest is not good either
    first.with_name("deposit.manifest.json").unlink()
    assert find_last_good_landing(runs, "deposit", None) is None
    assert json.loads((runs / "R20261122-010000-bbbb/landing/deposit.manifest.json").read_text())["quality"] == {
        "passed": True
    }
