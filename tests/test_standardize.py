"""The standardize step: cross-field rules, and the same output with and without the second process."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from validators.standardize import StandardizeRules, merge_flags, standardize


def _canonical(rows: list[dict[str, object]]) -> pa.Table:
    cols = ["source_system", "source_record_id", "customer_no", "name", "name_latin", "id_type_raw",
            "id_type_declared", "id_number_raw", "gender_raw", "gender_declared", "birth_date_raw", "mobile_raw",
            "phone_raw", "address_raw", "email_raw", "updated_at_raw", "source_file"]
    data = {c: [r.get(c) for r in rows] for c in cols}
    data["source_line"] = list(range(1, len(rows) + 1))
    data["source_trust"] = [50] * len(rows)
    return pa.table(data)


ROWS = [
    {"source_system": "deposit", "source_record_id": "1", "name": "张 伟", "id_type_declared": "RESIDENT_ID",
     "id_number_raw": "110105800101001", "gender_declared": "M", "birth_date_raw": "19800101",
     "mobile_raw": "138-0013-8000", "address_raw": "北京市朝阳区建国路88号3栋2单元1203室",
     "email_raw": "ZW@Example.com"},
    {"source_system": "card", "source_record_id": "9", "name": "張偉", "name_latin": "ZHANG WEI",
     "id_type_declared": "RESIDENT_ID", "id_number_raw": "110105198001010016", "gender_declared": "F",
     "birth_date_raw": "1950-01-01", "phone_raw": "010-12345678", "address_raw": "上海市浦东新区世纪大道100号"},
    {"source_system": "loan", "source_record_id": "7", "name": "李娜", "id_type_declared": "PASSPORT_CN",
     "id_number_raw": None, "mobile_raw": "not a phone", "email_raw": "broken@"},
]


def test_cross_field_rules_and_record_keys():
    std = standardize(_canonical(ROWS), StandardizeRules(date_formats={"deposit": ["%Y%m%d"]}))
    assert list(std["record_key"]) == ["deposit:1", "card:9", "loan:7"]
    assert std.loc[0, "id_number"] == std.loc[1, "id_number"] == "110105198001010016"
    assert "DOB_CONFLICTS_WITH_ID" in std.loc[1, "quality_flags"]
    assert "GENDER_CONFLICTS_WITH_ID" in std.loc[1, "quality_flags"]
    assert std.loc[0, "name_norm"] == std.loc[1, "name_norm"] == "张伟"
    assert std.loc[0, "mobile"] == "+8613800138000"
    assert std.loc[1, "phones"] == ["+861012345678"]
    assert std.loc[2, "mobile"] is None and "PHONE_INVALID" in std.loc[2, "quality_flags"]
    assert std.loc[0, "email"] == "zw@example.com" and std.loc[2, "email"] is None


def test_second_process_gives_the_same_records():
    table = _canonical(ROWS * 20)
    table = table.set_column(1, "source_record_id", pa.array([str(i) for i in range(table.num_rows)]))
    one = standardize(table, StandardizeRules(workers=1))
    two = standardize(table, StandardizeRules(workers=2, min_rows_for_workers=0))
    pd.testing.assert_frame_equal(one, two)


def test_merge_flags_keeps_order_and_drops_duplicates():
    lists = pd.Series([["A", "B"], None, ["B"]])
    single = pd.Series([None, "C", "B"])
    out = merge_flags(3, lists, single, (pd.Series([True, False, True]), "D"))
    assert list(out) == [["A", "B", "D"], ["C"], ["B", "D"]]


def test_dataframe_and_table_input_give_the_same_records():
    table = _canonical(ROWS * 5)
    from_table = standardize(table, StandardizeRules(workers=1))
    from_frame = standardize(table.to_pandas().set_index(pd.Index(range(100, 115))), StandardizeRules(workers=1))
    pd.testing.assert_frame_equal(from_table, from_frame)


def test_table_conversion_same_as_to_pandas():
    from validators.standardize import _to_pandas

    repeated = ["a", "b", None] * 4000
    table = pa.table(
        {
            "repeated": repeated,
            "distinct": [f"v{i}" if i % 7 else None for i in range(12000)],
            "number": list(range(12000)),
            "maybe": [None if i % 3 else i for i in range(12000)],
        }
    )
    for t in (table, table.slice(0, 0), pa.Table.from_pandas(table.to_pandas().set_index("number"))):
        pd.testing.assert_frame_equal(_to_pandas(t), t.to_pandas().reset_index(drop=True))


def test_arrow_and_pandas_factorization_agree():
    import numpy as np

    from validators.offload import distinct_values

    column = pa.chunked_array([["x", None, "y"], ["y", "z", None, "x"], []])
    for source in (column, column.to_pandas(), pa.chunked_array([], type=pa.string())):
        codes, distinct = distinct_values(source)
        texts = distinct.to_pylist() if isinstance(distinct, pa.Array) else list(distinct)
        assert len(set(texts)) == len(texts) and None not in texts
        values = np.array([*texts, None], dtype=object)[codes]  # rows with no value point past the last one
        expected = source.to_pylist() if isinstance(source, pa.ChunkedArray) else source.tolist()
        assert [None if pd.isna(v) else v for v in values] == [None if pd.isna(v) else v for v in expected]


def test_paused_gc_restores_the_callers_setting():
    import gc

    import pytest

    from validators.gc_pause import paused_gc

    assert gc.isenabled()
    with pytest.raises(RuntimeError), paused_gc():
        assert not gc.isenabled()
        raise RuntimeError
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_columns_sent_to_the_second_process_pickle_compactly():
    import pickle

    from validators.offload import _compact

    big = pa.chunked_array([pa.array([f"address {i}" for i in range(50_000)])])
    sliced = pa.chunked_array([big.chunk(0).slice(i, 10_000) for i in range(0, 50_000, 10_000)])
    compact = _compact(sliced)
    assert compact.equals(sliced) and compact.type == sliced.type
    assert len(pickle.dumps(compact)) * 3 < len(pickle.dumps(sliced))


def test_no_records_give_an_empty_table_with_every_column():
    table = _canonical(ROWS)
    whole = standardize(table)
    empty = standardize(table.slice(0, 0))
    assert len(empty) == 0 and list(empty.columns) == list(whole.columns)
