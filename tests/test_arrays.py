"""mdm.arrays: sorted_unique gives what np.unique gives; take_rows is take, cut into chunks; like_pandas
types a column as pa.Table.from_pandas types the same values held as objects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mdm import arrays
from mdm.arrays import like_pandas, sorted_unique, take_rows

INTEGER_DTYPES = st.sampled_from([np.int8, np.int32, np.int64, np.uint16, np.uint64, np.bool_])


@given(hnp.arrays(INTEGER_DTYPES, hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=40)))
def test_integers_give_what_np_unique_gives(values: np.ndarray) -> None:
    got = sorted_unique(values)
    want = np.unique(values)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@given(hnp.arrays(np.float64, st.integers(0, 40), elements=st.floats(allow_nan=True, width=64)))
def test_floats_keep_np_uniques_handling_of_nan(values: np.ndarray) -> None:
    np.testing.assert_array_equal(sorted_unique(values), np.unique(values))


def test_a_list_and_a_single_value() -> None:
    assert sorted_unique([3, 1, 3, 2]).tolist() == [1, 2, 3]
    assert sorted_unique(np.array([7])).tolist() == [7]
    assert sorted_unique(np.array([], dtype=np.int64)).tolist() == []


@given(st.lists(st.sampled_from(["a", "bc", None, ""]), min_size=1, max_size=5), st.data())
def test_take_rows_is_take_in_chunks(values: list[str | None], data: st.DataObject) -> None:
    indices = np.array(data.draw(st.lists(st.integers(0, len(values) - 1), max_size=30)), dtype=np.int64)
    rows = data.draw(st.integers(1, 8))
    array = pa.array(values, pa.string())
    got = take_rows(array, indices, rows)
    assert got.type == array.type
    assert all(len(chunk) <= rows for chunk in got.chunks)
    assert got.to_pylist() == array.take(pa.array(indices, pa.int64())).to_pylist()


def test_the_standardized_table_is_the_same_in_small_take_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Columns taken from distinct values come in chunks of TAKE_ROWS rows (Arrow's 2 GiB limit per
    array): the table must not depend on where the chunks are cut."""
    from tests.test_offload import _canonical
    from validators.standardize import StandardizeRules, standardize_table

    table = _canonical(60)
    whole = standardize_table(table, StandardizeRules(workers=1))
    monkeypatch.setattr(arrays, "TAKE_ROWS", 7)
    chunked = standardize_table(table, StandardizeRules(workers=1))
    assert any(column.num_chunks > 1 for column in chunked.columns)
    assert chunked.schema == whole.schema and chunked.equals(whole)


@given(
    st.lists(st.one_of(st.none(), st.lists(st.sampled_from(["A", "B"]), max_size=2)), max_size=12),
    st.integers(1, 5),
)
def test_like_pandas_types_lists_as_pandas_does(cells: list[list[str] | None], rows: int) -> None:
    column = take_rows(pa.array(cells, pa.list_(pa.string())), np.arange(len(cells)), rows)
    expected = pa.Table.from_pandas(pd.DataFrame({"c": pd.Series(cells, dtype=object)}), preserve_index=False)
    got = like_pandas(column)
    assert got.type == expected.column(0).type
    assert got.to_pylist() == expected.column(0).to_pylist()


@given(st.lists(st.one_of(st.none(), st.sampled_from(["x", ""])), max_size=12))
def test_like_pandas_types_text_as_pandas_does(cells: list[str | None]) -> None:
    expected = pa.Table.from_pandas(pd.DataFrame({"c": pd.Series(cells, dtype=object)}), preserve_index=False)
    got = like_pandas(pa.array(cells, pa.string()))
    assert got.type == expected.column(0).type and got.to_pylist() == expected.column(0).to_pylist()
