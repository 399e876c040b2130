"""The chunked standardize: the same Arrow table as the whole-table standardize, whatever the chunk size.

The one rule across records (an ID number held by more than ``max_names_per_id`` names is a
placeholder) must see every chunk: IDs shared across chunks are the cases that matter.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from validators import standardize_chunks
from validators.resident_id import ric_check_char
from validators.standardize import StandardizeRules, standardize, standardize_table

REPO = Path(__file__).resolve().parent.parent
COLUMNS = ["source_system", "source_record_id", "customer_no", "name", "name_latin", "id_type_raw",
           "id_type_declared", "id_number_raw", "gender_raw", "gender_declared", "birth_date_raw", "mobile_raw",
           "phone_raw", "address_raw", "email_raw", "updated_at_raw", "source_file"]


def make_id(region: str, born: date, seq: int) -> str:
    body = f"{region}{born:%Y%m%d}{seq:03d}"
    return body + ric_check_char(body)


SHARED_ID = "110105198001010016"  # held by four names, one per chunk of three
SHARED_ID_15 = "110105800101001"  # its 15-digit form: same key, an ID flag of its own (ID_LEGACY_UPGRADED)
PAIR_ID = make_id("310115", date(1975, 6, 1), 12)  # held by two names in neighbouring rows
OWN_ID = make_id("440305", date(1990, 3, 9), 41)  # one name, many rows: never shared
JUNK_ID = "111111111111111111"  # a placeholder of its own, whatever the rule


def canonical(rows: list[dict[str, object]]) -> pa.Table:
    data: dict[str, list[object]] = {c: [r.get(c) for r in rows] for c in COLUMNS}
    data["source_system"] = [r.get("source_system", "deposit") for r in rows]
    data["source_record_id"] = [str(i) for i in range(len(rows))]
    data["id_type_declared"] = [r.get("id_type_declared", "RESIDENT_ID") for r in rows]
    data["source_line"] = list(range(1, len(rows) + 1))
    data["source_trust"] = [50] * len(rows)
    return pa.table({c: pa.array(v, pa.int64() if c == "source_line" else None) for c, v in data.items()})


ROWS: list[dict[str, object]] = [
    {"name": "张伟", "id_number_raw": SHARED_ID, "mobile_raw": "13800138000"},
    {"name": "陈静", "id_number_raw": OWN_ID},
    {"name": "黄磊", "id_number_raw": None},
    {"name": "李娜", "id_number_raw": SHARED_ID_15, "mobile_raw": "not a phone", "birth_date_raw": "19800101"},
    {"name": "周杰", "id_number_raw": PAIR_ID, "email_raw": "zj@example.com"},
    {"name": "吴昊", "id_number_raw": PAIR_ID, "gender_declared": "F", "name_latin": "WU HAO"},
    {"name": "王芳", "id_number_raw": SHARED_ID, "email_raw": "broken@", "gender_declared": "F"},
    {"name": "陈静", "id_number_raw": OWN_ID, "address_raw": "北京市朝阳区建国路88号3栋2单元1203室"},
    {"name": "赵敏", "id_number_raw": JUNK_ID},
    {"name": "刘洋", "id_number_raw": SHARED_ID, "birth_date_raw": "1950-01-01", "phone_raw": "010-12345678"},
    {"name": "孙丽", "id_number_raw": JUNK_ID, "name_latin": "SUN LI"},
    {"name": None, "id_number_raw": SHARED_ID},
    {"name": "马超", "id_number_raw": PAIR_ID, "source_system": "card"},
]


def whole_table(table: pa.Table, rules: StandardizeRules) -> pa.Table:
    """The whole table standardized at once: the canonical columns as given, then the columns added."""
    frame = standardize(table, rules)
    added = [c for c in frame.columns if c not in table.column_names]
    assert list(frame.columns) == table.column_names + added  # the canonical columns lead, in their order
    expected = pa.Table.from_pandas(frame, columns=added, preserve_index=False)
    for name, column in zip(expected.column_names, expected.columns, strict=True):
        table = table.append_column(expected.schema.field(name), column)
    return table.replace_schema_metadata(None)


def assert_same(chunked: pa.Table, whole: pa.Table) -> None:
    assert chunked.schema.remove_metadata().equals(whole.schema.remove_metadata()), (chunked.schema, whole.schema)
    assert chunked.equals(whole)
    pd.testing.assert_frame_equal(chunked.to_pandas(), whole.to_pandas())  # with or without pandas metadata


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 5, 12])
def test_an_id_shared_across_chunks_is_a_placeholder_as_in_the_whole_table(chunk_rows: int) -> None:
    table = canonical(ROWS)
    rules = StandardizeRules(workers=1)
    # the test means something: no chunk of three records sees SHARED_ID held by more than three names
    for start in range(0, table.num_rows, 3):
        alone = standardize(table.slice(start, 3), rules)
        assert not alone.loc[alone["id_number"] == SHARED_ID, "id_placeholder"].any()

    whole = whole_table(table, rules)
    chunked = standardize_table(table, rules, chunk_rows=chunk_rows)
    assert_same(chunked, whole)

    records = chunked.to_pylist()
    for i in (0, 3, 6, 9, 11):
        assert records[i]["id_number"] == SHARED_ID
        assert records[i]["id_placeholder"] is True and records[i]["id_key"] is None
    assert records[3]["quality_flags"][:2] == ["ID_LEGACY_UPGRADED", "ID_PLACEHOLDER"]
    assert records[3]["quality_flags"].index("ID_PLACEHOLDER") < records[3]["quality_flags"].index("PHONE_INVALID")
    assert records[0]["quality_flags"][0] == "ID_PLACEHOLDER"
    assert records[6]["quality_flags"][0] == "ID_PLACEHOLDER" and "EMAIL_INVALID" in records[6]["quality_flags"]
    for i in (4, 5, 12):  # three names: not more than three
        assert records[i]["id_placeholder"] is False and records[i]["id_key"] == f"RESIDENT_ID:{PAIR_ID}"
    assert records[1]["id_key"] == records[7]["id_key"] == f"RESIDENT_ID:{OWN_ID}"
    assert [r["rid"] for r in records] == list(range(len(ROWS)))


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 4, 6])
def test_ids_shared_within_and_across_chunks_with_a_low_limit(chunk_rows: int) -> None:
    table = canonical(ROWS)
    rules = StandardizeRules(workers=1, max_names_per_id=1)
    whole = whole_table(table, rules)
    assert_same(standardize_table(table, rules, chunk_rows=chunk_rows), whole)
    records = whole.to_pylist()
    for i in (4, 5, 12):  # PAIR_ID: rows 4 and 5 share a chunk of 2, 3, 4 or 6 records
        assert records[i]["id_placeholder"] is True and records[i]["id_key"] is None
        assert records[i]["quality_flags"].count("ID_PLACEHOLDER") == 1
    assert records[1]["id_placeholder"] is False  # one name on many rows is not shared
    assert records[8]["quality_flags"].count("ID_PLACEHOLDER") == 1  # junk: flagged once, by the ID check


def test_a_column_with_no_value_in_one_chunk_takes_the_whole_tables_type() -> None:
    rows: list[dict[str, object]] = [{"name": "张伟", "id_number_raw": None}] * 3  # a first chunk with no ID,
    rows += ROWS  # e-mail, phone or latin name
    table = canonical(rows)
    rules = StandardizeRules(workers=1)
    assert_same(standardize_table(table, rules, chunk_rows=3), whole_table(table, rules))


def test_one_chunk_is_the_whole_table_path() -> None:
    table = canonical(ROWS)
    rules = StandardizeRules(workers=1, chunk_rows=len(ROWS))
    whole = whole_table(table, rules)
    one = standardize_table(table, rules)
    assert one.schema.equals(whole.schema, check_metadata=True) and one.equals(whole)
    with pytest.raises(ValueError):
        standardize_table(table, rules, chunk_rows=0)


def test_the_temporary_columns_never_reach_the_result() -> None:
    out = standardize_table(canonical(ROWS), StandardizeRules(workers=1), chunk_rows=4)
    assert not set(standardize_chunks.TEMPORARY_COLUMNS) & set(out.column_names)


# ------------------------------------------------------------------ a generated sample


@pytest.fixture(scope="module")
def generated_canonical(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    from pipelines.extract import extract_source
    from pipelines.generator import generate
    from schemas.sources import SourcesFile

    out = tmp_path_factory.mktemp("chunks-sample")
    generate(persons=2000, out_dir=out, seed=7)
    sources = SourcesFile.model_validate(yaml.safe_load((REPO / "data/config/sources.yaml").read_text("utf-8")))
    tables = [extract_source(src, out, "CHUNKS").canonical for src in sources.sources]
    return pa.concat_tables(tables, promote_options="default")


@pytest.mark.parametrize("max_names", [3, 1])
def test_generated_sample_gives_the_same_table_for_any_chunk_size(
    generated_canonical: pa.Table, max_names: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = generated_canonical
    sources = yaml.safe_load((REPO / "data/config/sources.yaml").read_text("utf-8"))["sources"]
    rules = StandardizeRules(
        date_formats={s["system"]: s.get("date_formats", []) for s in sources}, workers=1, max_names_per_id=max_names
    )
    whole = whole_table(table, rules)
    fixed: list[int] = []
    mark = standardize_chunks._mark_placeholders

    def counting_mark(t: pa.Table, rows: np.ndarray) -> pa.Table:
        fixed.append(len(rows))
        return mark(t, rows)

    monkeypatch.setattr(standardize_chunks, "_mark_placeholders", counting_mark)
    n = table.num_rows
    for chunk_rows in (n - 1, n // 2 + 1, 997):  # chunks of equal size: n - 1 gives two halves
        assert_same(standardize_table(table, rules, chunk_rows=chunk_rows), whole)
    if max_names == 1:  # IDs typed under two spellings of a name across chunks: the global pass had work to do
        assert sum(fixed) > 0


# ------------------------------------------------------------------ property


NAMES = ["张伟", "張偉", "李娜", "王芳", "刘洋", None, "Zhang Wei", ""]
IDS = [SHARED_ID, SHARED_ID_15, PAIR_ID, OWN_ID, JUNK_ID, None, "12345", "G12345678"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {"name": st.sampled_from(NAMES), "id_number_raw": st.sampled_from(IDS),
             "name_latin": st.sampled_from([None, "ZHANG WEI", "LI NA"]),
             "mobile_raw": st.sampled_from([None, "13800138000", "bad"])}
        ),
        min_size=1,
        max_size=14,
    ),
    max_names=st.integers(0, 3),
    chunk_rows=st.integers(1, 6),
)
def test_chunked_equals_whole_table(rows: list[dict[str, object]], max_names: int, chunk_rows: int) -> None:
    table = canonical(rows)
    rules = StandardizeRules(workers=1, max_names_per_id=max_names)
    assert_same(standardize_table(table, rules, chunk_rows=chunk_rows), whole_table(table, rules))


def test_arrow_shared_rule_agrees_with_the_pandas_one() -> None:
    from validators.resident_id import shared_id_numbers

    ids = ["a", "a", "a", None, "b", "b", "c", "a", "b", ""]
    names = ["x", "y", "x", "x", None, "z", "q", "w", "y", "v"]
    for limit in (0, 1, 2, 3):
        expected = shared_id_numbers(pd.Series(ids), pd.Series(names), limit).tolist()
        got = standardize_chunks.shared_ids(pa.chunked_array([ids]), pa.chunked_array([names]), limit)
        assert got.to_pylist() == expected


def test_chunks_are_of_equal_size_so_no_small_last_chunk_is_left(monkeypatch: pytest.MonkeyPatch) -> None:
    import validators.standardize as std_module

    sizes: list[int] = []
    real = std_module._standardize

    def spy(canonical: pa.Table, rules: StandardizeRules, **kwargs: Any) -> object:
        sizes.append(canonical.num_rows)
        return real(canonical, rules, **kwargs)

    monkeypatch.setattr(std_module, "_standardize", spy)
    table = canonical(ROWS * 3)
    standardize_table(table, StandardizeRules(workers=1), chunk_rows=table.num_rows - 1)
    assert len(sizes) == 2 and max(sizes) - min(sizes) <= 1 and sum(sizes) == table.num_rows
