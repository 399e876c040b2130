"""Flag columns as codes: round trips, and the merge against the former row-by-row merge as an oracle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from validators.flag_codes import FlagCodes, encode_combos, from_distinct, from_mask, from_series, merge_flag_codes
from validators.standardize import merge_flags


def _reference_merge(n: int, *sources: object) -> list[list[str]]:
    """merge_flags as it was before flag codes: (row, flag) pairs, nulls and duplicates dropped, stable by row."""
    rows_parts, vals_parts = [], []
    for source in sources:
        if isinstance(source, tuple):
            mask, code = source
            rows = np.flatnonzero(np.asarray(mask, dtype=bool))
            rows_parts.append(rows.astype(np.int64))
            vals_parts.append(np.full(len(rows), code, dtype=object))
            continue
        assert isinstance(source, pd.Series)
        values = source.to_numpy(dtype=object)
        if len(values) and pd.api.types.infer_dtype(values, skipna=True) == "string":
            rows = np.flatnonzero(pd.notna(values))
            rows_parts.append(rows.astype(np.int64))
            vals_parts.append(values[rows])
            continue
        if not len(values):
            continue
        arr = pa.array(values, type=pa.list_(pa.string()), from_pandas=True)
        rows_parts.append(np.asarray(pc.list_parent_indices(arr).to_numpy(), dtype=np.int64))
        vals_parts.append(np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=object))
    rows = np.concatenate(rows_parts) if rows_parts else np.empty(0, np.int64)
    vals = np.concatenate(vals_parts) if vals_parts else np.empty(0, object)
    frame = pd.DataFrame({"p": rows, "v": vals}).dropna().drop_duplicates().sort_values("p", kind="stable")
    counts = np.bincount(frame["p"].to_numpy(dtype=np.int64), minlength=n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), pa.array(frame["v"].to_numpy(), type=pa.string()))
    return lists.to_pylist()


_CODES = st.sampled_from(["A", "B", "C", "D"])


@st.composite
def _sources(draw: st.DrawFn, n: int) -> object:
    kind = draw(st.sampled_from(["lists", "single", "mask", "codes"]))
    if kind == "lists":
        cell = st.one_of(st.none(), st.lists(st.one_of(_CODES, st.none()), max_size=3))
        return pd.Series(draw(st.lists(cell, min_size=n, max_size=n)), dtype=object)
    if kind == "single":
        return pd.Series(draw(st.lists(st.one_of(st.none(), _CODES), min_size=n, max_size=n)), dtype=object)
    if kind == "mask":
        return pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n))), draw(_CODES)
    combos = draw(st.lists(st.lists(_CODES, max_size=3).map(tuple), min_size=1, max_size=4))
    codes = draw(st.lists(st.integers(0, len(combos) - 1), min_size=n, max_size=n))
    return FlagCodes(np.array(codes, dtype=np.int64), tuple(combos))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 12).flatmap(lambda n: st.tuples(st.just(n), st.lists(_sources(n), max_size=5))))
def test_merge_same_as_the_row_by_row_merge(case: tuple[int, list[object]]) -> None:
    n, sources = case
    as_reference = [pd.Series(s.to_lists(), dtype=object) if isinstance(s, FlagCodes) else s for s in sources]
    out = merge_flags(n, *sources)  # type: ignore[arg-type]
    assert out.tolist() == _reference_merge(n, *as_reference)
    assert isinstance(out.index, pd.RangeIndex) and len(out) == n
    assert len({id(v) for v in out}) == n  # every row owns its list


def test_to_lists_gives_each_row_its_own_list() -> None:
    flags = from_distinct(np.array([0, 1, -1, 0]), [["A"], []])
    lists = flags.to_lists()
    assert lists.tolist() == [["A"], [], [], ["A"]]
    lists[0].append("Z")
    assert lists[3] == ["A"]


def test_from_distinct_missing_and_encode() -> None:
    codes, combos = encode_combos([["A", "B"], [], ["A", "B"], ("B",)])
    assert codes.tolist() == [0, 1, 0, 2] and combos == (("A", "B"), (), ("B",))
    flags = from_distinct(np.array([2, -1]), [[], [], ["X"]], missing=("M",))
    assert flags.to_lists().tolist() == [["X"], ["M"]]


def test_from_mask_and_from_series() -> None:
    assert from_mask([True, False], "D").to_lists().tolist() == [["D"], []]
    assert from_series(pd.Series(["A", None, "A"])).to_lists().tolist() == [["A"], [], ["A"]]
    assert from_series(pd.Series([["A", "B"], None, float("nan")])).to_lists().tolist() == [["A", "B"], [], []]


def test_merge_of_many_wide_sources_stays_exact() -> None:
    # more combinations than fit one int64 key: the merge renumbers on the way
    rng = np.random.default_rng(7)
    combos = tuple((f"F{i}",) for i in range(2**16))  # 5 sources: 2**80 combinations
    sources = [FlagCodes(rng.integers(0, 2**16, 50), combos) for _ in range(5)]
    expected = [[f"F{s.codes[r]}" for s in sources] for r in range(50)]
    assert [list(dict.fromkeys(e)) for e in expected] == merge_flag_codes(50, sources)


def test_to_arrow_types_as_pandas_would() -> None:
    """to_arrow gives the array pa.Table.from_pandas gives the same flags as lists, types included."""
    from validators.flag_codes import to_arrow

    cases = [
        FlagCodes(np.array([0, 1, 1, 0]), ((), ("A", "B"))),
        FlagCodes(np.array([0, 0]), ((), ("A",))),  # a code no row uses: still no flag at all
        FlagCodes(np.array([0, 0]), ((),)),
        FlagCodes(np.array([], dtype=np.int64), ((),)),
    ]
    for flags in cases:
        expected = pa.Table.from_pandas(pd.DataFrame({"f": flags.to_lists()}), preserve_index=False).column(0)
        got = to_arrow(flags)
        assert got.type == expected.type and got.to_pylist() == expected.to_pylist()
