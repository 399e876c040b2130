"""Code-like text columns of the master: dictionary-encoded in memory, plain text on disk."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdm.crypto import DuckDBFileWriter, read_parquet_any, write_parquet_sealed
from schemas.master import MASTER_TABLES, conform_table, plain_schema, plain_values

KEY = b"k" * 32
XREF = MASTER_TABLES["customer_xref"]


def _xref(systems: list[str | None], links: pa.Array | None = None) -> pa.Table:
    n = len(systems)
    return pa.table(
        {
            "source_system": pa.array(systems, pa.string()),
            "source_record_id": [str(i) for i in range(n)],
            "record_key": [f"k{i}" for i in range(n)],
            "golden_id": [f"G{i % 3}" for i in range(n)],
            "link_type": links if links is not None else pa.array(["auto"] * n),
            "link_weight": [1.0] * n,
        }
    )


def test_conform_encodes_the_declared_code_columns_and_leaves_the_others_plain() -> None:
    table = conform_table(XREF, _xref(["card", "loan", None, "card"]))
    assert table.schema.field("source_system").type == pa.dictionary(pa.int32(), pa.string())
    assert table.schema.field("link_type").type == pa.dictionary(pa.int32(), pa.string())
    assert table.schema.field("golden_id").type == pa.string()
    assert table["source_system"].to_pylist() == ["card", "loan", None, "card"]
    again = conform_table(XREF, table)
    assert again.schema.equals(table.schema) and plain_values(again).equals(plain_values(table))


def test_conform_accepts_encoded_text_and_refuses_encoded_numbers_for_a_text_column() -> None:
    links = pa.array(["auto", "must_link"]).dictionary_encode().cast(pa.dictionary(pa.int8(), pa.large_string()))
    table = conform_table(XREF, _xref(["card", "card"], links))
    assert table.schema.field("link_type").type == pa.dictionary(pa.int32(), pa.string())
    assert table["link_type"].to_pylist() == ["auto", "must_link"]
    numbers = pa.array([1, 2]).dictionary_encode()
    from mdm.errors import PublishError

    with pytest.raises(PublishError, match="link_type"):
        conform_table(XREF, _xref(["card", "card"], numbers))


def test_an_all_null_code_column_conforms_once_and_for_all() -> None:
    spec = MASTER_TABLES["golden_id_registry"]
    table = pa.table(
        {
            "golden_id": ["G1"],
            "status": ["active"],
            "merged_into": pa.nulls(1),
            "created_run_id": ["r1"],
            "retired_run_id": pa.nulls(1),
            "issued_seq": [1],
        }
    )
    once = conform_table(spec, table)
    assert once.schema.field("retired_run_id").type == pa.dictionary(pa.int32(), pa.string())
    assert conform_table(spec, once).schema.equals(once.schema)


def test_golden_lineage_columns_are_codes_by_pattern() -> None:
    spec = MASTER_TABLES["golden_customer"]
    assert spec.is_code("name_source_system") and spec.is_code("province")
    assert not spec.is_code("name_source_record_id") and not spec.is_code("golden_id")


@pytest.mark.parametrize("key", [KEY, None])
def test_parquet_stores_code_columns_as_plain_text(tmp_path: Path, key: bytes | None, monkeypatch) -> None:
    monkeypatch.setattr("mdm.crypto._ROW_GROUP", 3)  # several row groups, each decoded on its own
    table = conform_table(XREF, _xref(["card", "loan", None, "card", "deposit", "loan", "card"]))
    path = tmp_path / "xref.parquet"
    write_parquet_sealed(table, path, key)
    back = read_parquet_any(path, key)
    assert back.schema.equals(plain_schema(table.schema))
    assert back.equals(plain_values(table))


def test_duckdb_loads_code_columns_as_text(tmp_path: Path) -> None:
    table = conform_table(XREF, _xref(["card", None, "loan"]))
    path = tmp_path / "m.duckdb"
    with DuckDBFileWriter(path, None) as writer:
        writer.add("customer_xref", table, ("record_key",))
        writer.commit()
    con = duckdb.connect(str(path), read_only=True)
    try:
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns").fetchall())
        rows = con.execute("SELECT source_system FROM customer_xref ORDER BY record_key").fetchall()
    finally:
        con.close()
    assert types["source_system"] == "VARCHAR" and types["link_type"] == "VARCHAR"
    assert [r[0] for r in rows] == ["card", None, "loan"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["card", "loan", "deposit", "卡", "'; DROP"])), max_size=40))
def test_encoding_keeps_every_value(systems: list[str | None]) -> None:
    table = conform_table(XREF, _xref(systems))
    assert table["source_system"].to_pylist() == systems
    assert plain_values(table)["source_system"].type == pa.string()
