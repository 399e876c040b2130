"""The analyst mart built from master tables held in memory equals the one built by streaming them from the
published, encrypted Parquet files."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mdm.crypto as crypto
import mdm.mart as mart_module
from mdm.errors import SecurityError
from mdm.mart import build_mart, chunk_rows_for, chunk_rows_for_file
from pipelines.publish import conform_tables, publish_master
from schemas.masking import DEFAULT_MASKING
from tests.test_mart_query import TOKEN_KEY, _manifest_tables, _mart_values

KEY = b"mart-stream-master-key-0123456789"
MART_KEY = b"m" * 32
SURNAMES = ["张", "欧阳", "李", "王", "陈", "刘"]
GIVEN = ["三丰", "娜娜", "伟", "芳", "秀英", "建国"]
PLACES = [("北京市", "朝阳区"), ("上海市", "浦东新区"), ("广东省", "南山区"), (None, None)]
SYSTEMS = ["deposit", "card", "loan"]


def _maybe(rng: random.Random, value: Any, p_null: float = 0.15) -> Any:
    return None if rng.random() < p_null else value


def _records(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """``n`` source records of ``n * 2 // 3`` customers, with names, ID numbers, phones, e-mails and addresses."""
    out = []
    for i in range(n):
        person = i * 2 // 3
        province, district = PLACES[person % len(PLACES)]
        out.append(
            {
                "record_key": f"{SYSTEMS[i % 3]}:{6100000 + i}",
                "source_system": SYSTEMS[i % 3],
                "source_record_id": str(6100000 + i),
                "golden_id": f"G{person:07d}",
                "name": _maybe(rng, rng.choice(SURNAMES) + rng.choice(GIVEN)),
                "id_number": _maybe(rng, f"{110101 + person % 7}19{rng.randrange(50, 99)}0307{person % 9999:04d}"),
                "mobile": _maybe(rng, f"+86139{rng.randrange(10**8):08d}"),
                "email": _maybe(rng, f"user{person}@example.com", 0.5),
                "address": None if province is None else f"{province}{district}建国路{person % 90}号",
                "province": province,
                "district": district,
                "birth_date": _maybe(rng, dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20000))),
            }
        )
    return out


def _master(n: int, seed: int = 5) -> dict[str, pa.Table]:
    """A master of ``n`` source records: every table the mart masks (one of them empty)."""
    rng = random.Random(seed)
    recs = _records(n, rng)
    col = lambda name: [r[name] for r in recs]  # noqa: E731
    golden = {r["golden_id"]: r for r in recs}
    gids = sorted(golden)
    g = lambda name: [golden[x][name] for x in gids]  # noqa: E731
    systems: dict[str, set[str]] = {}
    for r in recs:
        systems.setdefault(r["golden_id"], set()).add(r["source_system"])
    return {
        "golden_customer": pa.table(
            {
                "golden_id": gids,
                "n_records": [len(systems[x]) for x in gids],  # a customer's records are in different systems
                "systems": [sorted(systems[x]) for x in gids],
                "all_phones": [[p] if p else [] for p in g("mobile")],
                "all_id_numbers": [[p] if p else [] for p in g("id_number")],
                "all_names": [[p] if p else [] for p in g("name")],
                "all_emails": [[p] if p else [] for p in g("email")],
                "quality_flags": [["NAME_VARIANT"] if i % 5 == 0 else [] for i in range(len(gids))],
                "first_seen_run": ["r0"] * len(gids),
                "first_seen_date": pa.array([dt.date(2026, 1, 1)] * len(gids)),
                "last_seen_run": ["r1"] * len(gids),
                "last_seen_date": pa.array([dt.date(2026, 1, 2)] * len(gids)),
                "name": g("name"),
                "id_type": ["RESIDENT_ID"] * len(gids),
                "id_number": g("id_number"),
                "gender": [rng.choice(["M", "F", None]) for _ in gids],
                "birth_date": pa.array(g("birth_date"), pa.date32()),
                "mobile": g("mobile"),
                "email": g("email"),
                "address_norm": g("address"),
                "province": g("province"),
                "district": g("district"),
            }
        ),
        "customer_xref": pa.table(
            {
                "source_system": col("source_system"),
                "source_record_id": col("source_record_id"),
                "record_key": col("record_key"),
                "golden_id": col("golden_id"),
                "link_type": ["deterministic" if i % 3 else "singleton" for i in range(n)],
                "link_weight": [float(i % 21) for i in range(n)],
            }
        ),
        "golden_id_registry": pa.table(
            {
                "golden_id": gids,
                "status": ["active"] * len(gids),
                "merged_into": pa.nulls(len(gids), pa.string()),
                "created_run_id": ["r0"] * len(gids),
                "retired_run_id": pa.nulls(len(gids), pa.string()),
                "issued_seq": list(range(1, len(gids) + 1)),
            }
        ),
        "source_records": pa.table(
            {
                "record_key": col("record_key"),
                "source_system": col("source_system"),
                "source_record_id": col("source_record_id"),
                "source_file": [f"{s}.dat" for s in col("source_system")],
                "source_line": list(range(n)),
                "name": col("name"),
                "id_number_raw": col("id_number"),
                "id_type": ["RESIDENT_ID"] * n,
                "id_number": col("id_number"),
                "id_valid": [x is not None for x in col("id_number")],
                "name_norm": col("name"),
                "name_latin": pa.nulls(n, pa.string()),
                "name_pinyin": pa.nulls(n, pa.string()),
                "name_latin_key": pa.nulls(n, pa.string()),
                "gender": [rng.choice(["M", "F", None]) for _ in range(n)],
                "birth_date": pa.array(col("birth_date"), pa.date32()),
                "mobile": col("mobile"),
                "phones": [[p] if p else [] for p in col("mobile")],
                "email": col("email"),
                "address_norm": col("address"),
                "province": col("province"),
                "updated_at": pa.array([dt.datetime(2026, 1, 1, 8, 0, i % 60) for i in range(n)], pa.timestamp("us")),
                "quality_flags": [[] for _ in range(n)],
            }
        ),
        "quarantine": pa.table(
            {
                "source_system": ["card"] * 3,
                "source_file": ["card.csv"] * 3,
                "source_line": [7, 9, 11],
                "raw_text": ["C9,张三,110101199003071234"] * 3,
                "reason": ["COLUMN_COUNT"] * 3,
                "detail": ["bad row"] * 3,
            }
        ),
        "run_log": pa.table(
            {
                "run_id": ["r0", "r1"],
                "business_date": [dt.date(2026, 1, 1), dt.date(2026, 1, 2)],
                "started_at": pa.array([dt.datetime(2026, 1, 1, 1), dt.datetime(2026, 1, 2, 1)], pa.timestamp("us")),
                "status": ["published", "published"],
            }
        ),
    }  # review_queue, match_links, golden_id_events, customer_systems: published empty


def _publish(root: Path, tables: dict[str, pa.Table]) -> Path:
    """``tables`` published (encrypted) in row groups of 250 rows, so a file's row groups and the mart's
    chunks do not line up."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(crypto, "_ROW_GROUP", 250)
        return publish_master(root / "master", "r1", dict(tables), keep_versions=3, key=KEY)


@pytest.mark.parametrize(("chunk_rows", "mart_key"), [(97, None), (None, MART_KEY)])
def test_a_mart_streamed_from_the_files_equals_one_built_from_tables_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_rows: int | None, mart_key: bytes | None
) -> None:
    tables = _master(1200)
    version = _publish(tmp_path, tables)
    held = conform_tables(tables)  # as published, in memory (code columns dictionary-encoded)
    from_memory = build_mart(
        version, tmp_path / "held", DEFAULT_MASKING, TOKEN_KEY,
        master_key=KEY, mart_key=mart_key, master_tables=held, chunk_rows=chunk_rows,
    )
    assert held == {}  # consumed
    read_whole: list[str] = []
    real_read = mart_module.read_parquet_any

    def read(path: Path, *args: Any, **kwargs: Any) -> pa.Table:
        read_whole.append(Path(path).stem)
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(mart_module, "read_parquet_any", read)
    streamed = build_mart(
        version, tmp_path / "streamed", DEFAULT_MASKING, TOKEN_KEY,
        master_key=KEY, mart_key=mart_key, chunk_rows=chunk_rows,
    )
    assert read_whole == ["customer_xref"]  # every other table was streamed
    assert _mart_values(streamed, mart_key) == _mart_values(from_memory, mart_key)
    assert _manifest_tables(streamed) == _manifest_tables(from_memory)
    tables_of = json.loads((streamed / "manifest.json").read_text())["tables"]
    assert tables_of["source_records"]["rows"] == 1200 and tables_of["review_queue"]["rows"] == 0
    assert tables_of["customer_360"]["rows"] == 800
    if chunk_rows is not None:  # cut where the held table is cut: a row group per chunk
        for folder in (streamed, from_memory):
            file = crypto.open_parquet(folder / "source_records.parquet", mart_key)
            with file:
                assert file.num_row_groups == -(-1200 // chunk_rows)


def test_a_streamed_table_is_read_a_chunk_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    version = _publish(tmp_path, _master(600))
    sizes: dict[str, list[int]] = {}
    real = mart_module.iter_parquet_batches

    def batches(path: Path, key: bytes | None, batch_rows: int, *args: Any) -> Any:
        for batch in real(path, key, batch_rows, *args):
            sizes.setdefault(Path(path).stem, []).append(batch.num_rows)
            yield batch

    monkeypatch.setattr(mart_module, "iter_parquet_batches", batches)
    build_mart(version, tmp_path / "mart", DEFAULT_MASKING, TOKEN_KEY, master_key=KEY, chunk_rows=64)
    assert sizes["source_records"] == [64] * 9 + [24]
    assert "customer_xref" not in sizes and "review_queue" not in sizes  # read whole; empty


def test_chunk_rows_of_a_file_follow_its_row_size(tmp_path: Path) -> None:
    rng = random.Random(1)
    wide = pa.table({"a": [f"{rng.getrandbits(384):096x}" for _ in range(1000)]})  # 100 bytes a row, as in memory
    path = tmp_path / "wide.parquet"
    crypto.write_parquet_sealed(wide, path, KEY)
    assert chunk_rows_for(wide, chunk_bytes=10_000) == 100
    assert 95 <= chunk_rows_for_file(path, KEY, chunk_bytes=10_000) <= 105
    assert chunk_rows_for_file(path, KEY, chunk_bytes=10**9, most=500) == 500
    # repetitive text weighs its length once read, not the few bytes of its dictionary code in the file
    codes = pa.table({"a": wide.column("a"), "system": ["deposit-account-system"] * 1000})
    crypto.write_parquet_sealed(codes, path, KEY)
    assert abs(chunk_rows_for_file(path, KEY, chunk_bytes=100_000) - chunk_rows_for(codes, chunk_bytes=100_000)) <= 10
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"a": pa.array([], pa.string())}), empty)
    assert chunk_rows_for_file(empty, None, chunk_bytes=10) >= 1


def _open_fds_under(folder: Path) -> list[str]:
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:
            continue
        if str(target).startswith(str(folder)):
            found.append(str(target))
    return found


def test_a_damaged_master_file_stops_the_build_and_leaves_no_mart(tmp_path: Path) -> None:
    version = _publish(tmp_path, _master(300))
    data = bytearray((version / "source_records.parquet").read_bytes())
    data[len(data) // 2] ^= 1
    (version / "source_records.parquet").write_bytes(bytes(data))
    with pytest.raises(SecurityError, match=r"source_records.parquet fails its integrity check"):
        build_mart(version, tmp_path / "mart", DEFAULT_MASKING, TOKEN_KEY, master_key=KEY, chunk_rows=50)
    assert not (tmp_path / "mart" / "CURRENT").exists() and not list((tmp_path / "mart").glob(".spill-*"))
    assert _open_fds_under(version) == []


def test_a_stream_that_fails_midway_closes_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    version = _publish(tmp_path, _master(600))
    real = mart_module.iter_parquet_batches

    def two_then_fail(path: Path, key: bytes | None, batch_rows: int, *args: Any) -> Any:
        for i, batch in enumerate(real(path, key, batch_rows, *args)):
            if i == 2:
                assert _open_fds_under(version) == [str(path)]  # the file is read in place, not whole
                raise SecurityError(f"{path} fails its integrity check (segment 3)")
            yield batch

    monkeypatch.setattr(mart_module, "iter_parquet_batches", two_then_fail)
    with pytest.raises(SecurityError, match="segment 3"):
        build_mart(version, tmp_path / "mart", DEFAULT_MASKING, TOKEN_KEY, master_key=KEY, chunk_rows=64)
    assert not (tmp_path / "mart" / "CURRENT").exists() and not list((tmp_path / "mart").glob(".spill-*"))
    assert _open_fds_under(version) == []
