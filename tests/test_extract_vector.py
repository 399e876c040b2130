"""Fast column paths of extract give exactly what the plain Arrow expressions they replace give."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.extract.codes import _map, map_codes
from pipelines.extract.convert import to_text
from pipelines.extract.rowchecks import duplicate_ids
from pipelines.extract.vector import map_distinct, null_if_empty

TEXT = st.one_of(st.none(), st.just(""), st.sampled_from([" ", "a", "甲", "\x00", "\u3000"]), st.text(max_size=6))


def _if_else_blank(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """What extract did before: a new array with empty strings replaced by null."""
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, values.type), values)


def _chunked(chunks: list[list[str | None]], cut: int) -> pa.ChunkedArray:
    """Chunks as the CSV reader makes them, the first one a slice (non-zero offset) when ``cut`` > 0."""
    arrays = [pa.array(c, pa.string()) for c in chunks]
    if arrays and cut:
        first = arrays[0]
        arrays[0] = pa.concat_arrays([pa.array(["x"] * cut, pa.string()), first]).slice(cut)
    return pa.chunked_array(arrays, pa.string())


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(st.lists(TEXT, max_size=12), max_size=4), cut=st.integers(0, 3))
def test_null_if_empty_matches_if_else(chunks: list[list[str | None]], cut: int) -> None:
    values = _chunked(chunks, cut)
    got = null_if_empty(values)
    assert got.type == pa.string()
    assert got.to_pylist() == _if_else_blank(values).to_pylist()
    assert got.null_count == sum(1 for c in chunks for v in c if v is None or v == "")
    got.validate(full=True)


def test_null_if_empty_shares_the_characters_and_keeps_other_types() -> None:
    values = pa.chunked_array([pa.array(["张三", "", None, "李四"])])
    got = null_if_empty(values)
    assert got.to_pylist() == ["张三", None, None, "李四"]
    assert got.chunk(0).buffers()[2].address == values.chunk(0).buffers()[2].address  # no copy of the text
    large = pa.chunked_array([pa.array(["", "x"], pa.large_string())])
    assert null_if_empty(large).to_pylist() == [None, "x"]
    assert null_if_empty(pa.chunked_array([], pa.string())).to_pylist() == []


CODES = st.one_of(st.none(), st.sampled_from(["", " ", "01", " 01 ", "1", "m", "M", "X", "x", "Ｍ", "99", "\t2"]))
TABLES = st.sampled_from(
    [
        {"01": "RESIDENT_ID", "1": "M", "2": "F"},
        {"M": "M", "F": "F"},
        {"m": "MALE", "M": "M"},  # keys that differ only by case: no case folding
        {},
    ]
)


@settings(max_examples=200, deadline=None)
@given(codes=st.lists(CODES, max_size=30), table=TABLES, unmapped=st.sampled_from([None, "UNKNOWN"]))
def test_map_codes_per_distinct_value_matches_per_row(
    codes: list[str | None], table: dict[str, str], unmapped: str | None
) -> None:
    raw = pa.chunked_array([pa.array(codes[:7], pa.string()), pa.array(codes[7:], pa.string())])
    assert map_codes(raw, table, unmapped).to_pylist() == _map(raw, table, unmapped).to_pylist()


def test_map_distinct_calls_once_per_distinct_value() -> None:
    seen: list[int] = []

    def upper(values: pa.ChunkedArray) -> pa.ChunkedArray:
        seen.append(len(values))
        return pc.utf8_upper(values)

    values = pa.chunked_array([pa.array(["a", "b", None, "a"]), pa.array(["b", "a"])])
    assert map_distinct(values, upper).to_pylist() == ["A", "B", None, "A", "B", "A"]
    assert seen == [2]
    assert map_distinct(pa.chunked_array([], pa.string()), upper).to_pylist() == []


def _strftime_text(column: pa.Array) -> list[str | None]:
    """What extract did before for dates and timestamps."""
    t = column.type
    if pa.types.is_date(t):
        return pc.strftime(column.cast(pa.date32()).cast(pa.timestamp("s")), format="%Y-%m-%d").to_pylist()
    seconds = column.cast(pa.timestamp("s", tz=t.tz), safe=False)
    return pc.strftime(seconds, format="%Y-%m-%d %H:%M:%S").to_pylist()


EDGE_SECONDS = [-62_135_596_800, 253_402_300_799, 0, -1, 1, -86_400, 951_782_400, -2_208_988_800, 1_700_000_000]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_timestamps_as_text_match_strftime(unit: str) -> None:
    rng = np.random.default_rng(7)
    scale = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    low, high = (-62_135_596_800, 253_402_300_799) if unit != "ns" else (-9_223_372_035, 9_223_372_035)
    seconds = np.concatenate([rng.integers(low, high, 5_000), [s for s in EDGE_SECONDS if low <= s <= high]])
    ticks = seconds * scale + rng.integers(0, scale, seconds.size)  # sub-second parts, negative times included
    column = pa.array([*ticks.tolist(), None], pa.int64()).cast(pa.timestamp(unit))
    assert to_text(column).to_pylist() == _strftime_text(column)


@pytest.mark.parametrize("date_type", [pa.date32(), pa.date64()])
def test_dates_as_text_match_strftime(date_type: pa.DataType) -> None:
    rng = np.random.default_rng(3)
    days = np.concatenate([rng.integers(-719_162, 2_932_896, 5_000), [-719_162, 2_932_896, 0, -1]])
    column = pa.array([*days.tolist(), None], pa.int32()).cast(pa.date32()).cast(date_type)
    assert to_text(column).to_pylist() == _strftime_text(column)


def test_out_of_range_and_zoned_timestamps_keep_strftime() -> None:
    far = pa.array([dt.datetime(2020, 1, 2, 3, 4, 5), None], pa.timestamp("s"))
    far = pa.concat_arrays([far, pa.array([253_402_300_800], pa.int64()).cast(pa.timestamp("s"))])  # year 10000
    assert to_text(far).to_pylist() == _strftime_text(far) == ["2020-01-02 03:04:05", None, "10000-01-01 00:00:00"]
    zoned = pa.array([dt.datetime(2020, 1, 1, 20, 0, tzinfo=dt.UTC)], pa.timestamp("ms", tz="Asia/Shanghai"))
    assert to_text(zoned).to_pylist() == _strftime_text(zoned) == ["2020-01-02 04:00:00"]
    assert to_text(pa.array([None, None], pa.timestamp("us"))).to_pylist() == [None, None]
    assert to_text(pa.array([], pa.date32())).to_pylist() == []


def test_duplicate_ids_with_and_without_rows_to_skip() -> None:
    table = pa.table(
        {
            "id": ["a", None, "b", None, "a", "c"],
            "name": ["x", "y", "z", "y", "x", "w"],
            "__file": ["f"] * 6,
            "__line": [2, 3, 4, 5, 6, 7],
        }
    )
    flags = duplicate_ids(table, "id", ["id", "name"], np.zeros(6, dtype=bool))
    assert [(f.index, f.reason.value, f.detail) for f in flags] == [
        (4, "DUPLICATE_RECORD_ID", "exact copy of the row at f line 2; kept once")
    ]  # null ids are not ids: missing_ids flags them
    skip = np.array([False, True, False, True, False, False])
    assert duplicate_ids(table, "id", ["id", "name"], skip) == flags
    unique = table.filter(pa.array([True, False, True, False, False, True]))
    assert duplicate_ids(unique, "id", ["id", "name"], np.zeros(3, dtype=bool)) == []
