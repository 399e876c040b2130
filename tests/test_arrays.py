"""mdm.arrays.sorted_unique: what np.unique gives, for every dtype the pipeline passes it."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mdm.arrays import sorted_unique

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
