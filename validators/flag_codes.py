"""Reason-code columns held as integer codes into their few distinct flag combinations.

A flag column of a million rows holds only a few hundred distinct lists. :class:`FlagCodes`
keeps one code per row and the distinct combinations once, so the field normalizers and
the merge of :func:`validators.standardize.merge_flags` never build a Python list per row
until the very end (:meth:`FlagCodes.to_lists`, :func:`merge_flag_codes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from mdm.arrays import like_pandas, take_rows

Combo = tuple[str, ...]
Codes = npt.NDArray[np.int64]


@dataclass(frozen=True)
class FlagCodes:
    """Row ``i`` carries the reason codes ``combos[codes[i]]``."""

    codes: Codes
    combos: tuple[Combo, ...]

    def __len__(self) -> int:
        return len(self.codes)

    def to_lists(self) -> npt.NDArray[np.object_]:
        """One fresh list per row (rows never share a mutable list)."""
        per_combo = _object_array([list(c) for c in self.combos])
        return np.fromiter(map(list.copy, per_combo[self.codes]), dtype=object, count=len(self.codes))

    def take(self, rows: npt.ArrayLike) -> FlagCodes:
        return FlagCodes(self.codes[np.asarray(rows, dtype=np.int64)], self.combos)


def encode_combos(per_distinct: Iterable[Sequence[str]]) -> tuple[Codes, tuple[Combo, ...]]:
    """Codes of distinct flag sequences (each one's combination, in order) and the combinations."""
    index: dict[Combo, int] = {}
    codes = np.fromiter((index.setdefault(tuple(f), len(index)) for f in per_distinct), dtype=np.int64)
    return codes, tuple(index)


def from_distinct(codes: npt.ArrayLike, per_distinct: Iterable[Sequence[str]], missing: Combo = ()) -> FlagCodes:
    """Flags of rows given as codes into per-distinct-value flag sequences; code -1 takes ``missing``."""
    distinct_codes, combos = encode_combos(per_distinct)
    combos = (*combos, missing)
    lookup = np.append(distinct_codes, len(combos) - 1)  # code -1 picks the trailing ``missing`` combination
    return FlagCodes(lookup[np.asarray(codes, dtype=np.int64)], combos)


def from_mask(mask: npt.ArrayLike, code: str) -> FlagCodes:
    """``code`` on the rows where ``mask`` holds."""
    return FlagCodes(np.asarray(mask, dtype=bool).astype(np.int64), ((), (code,)))


def from_series(values: pd.Series) -> FlagCodes:
    """A Series of flag lists (None for none) or of single flag strings (None for none).

    Only the rows holding something are looked at one by one: a column of a million rows with
    a few flags (or none) costs one vectorized null check, not a tuple per row.
    """
    arr = values.to_numpy(dtype=object)
    present = np.flatnonzero(pd.notna(arr))
    codes = np.zeros(len(arr), dtype=np.int64)  # code 0: no flag
    if not len(present):
        return FlagCodes(codes, ((),))
    held = arr[present]
    if pd.api.types.infer_dtype(held, skipna=True) == "string":
        local, uniques = pd.factorize(held)
        codes[present] = np.asarray(local, dtype=np.int64) + 1
        return FlagCodes(codes, ((), *((str(u),) for u in uniques)))
    keys = np.fromiter((_as_combo(v) for v in held), dtype=object, count=len(held))
    local, combos = pd.factorize(keys)
    codes[present] = np.asarray(local, dtype=np.int64) + 1
    return FlagCodes(codes, ((), *combos))


def _as_combo(value: object) -> Combo:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ()
    return tuple(value)  # type: ignore[call-overload,arg-type]


def _object_array(items: Sequence[object]) -> npt.NDArray[np.object_]:
    # fromiter keeps sequences as single objects (np.array would make a 2-D array of equal-length lists)
    return np.fromiter(items, dtype=object, count=len(items))


def merge_flag_codes(n: int, sources: Sequence[FlagCodes]) -> list[list[str]]:
    """One fresh list per row: every source's codes in source order, duplicates and nulls removed."""
    merged = merge_codes(n, sources)
    per_combo = _object_array(merged.combos)
    return list(map(list, per_combo[merged.codes]))


def merge_codes(n: int, sources: Sequence[FlagCodes]) -> FlagCodes:
    """:func:`merge_flag_codes` as codes: each row's combination of every source's codes, in source order,
    duplicates and nulls removed (combinations numbered in order of first appearance)."""
    key = np.zeros(n, dtype=np.int64)
    width = 1
    for src in sources:
        if len(src) != n:
            raise ValueError(f"a flag source has {len(src)} rows, expected {n}")
        size = max(len(src.combos), 1)
        if width * size >= 2**62:  # keep the mixed-radix key in int64: renumber what we have so far
            codes, uniques = pd.factorize(key)
            key, width = np.asarray(codes, dtype=np.int64), len(uniques)
        key = key * size + src.codes
        width *= size
    row_combo, uniques = pd.factorize(key)
    row_combo = np.asarray(row_combo, dtype=np.int64)
    # factorize numbers combinations in order of first appearance: each one first shows where the running max grows
    running = np.maximum.accumulate(row_combo) if n else row_combo
    first = np.flatnonzero(np.diff(running, prepend=-1) > 0)
    merged: list[Combo] = []
    for row in first.tolist():
        flags = (f for src in sources for f in src.combos[src.codes[row]] if isinstance(f, str))
        merged.append(tuple(dict.fromkeys(flags)))
    return FlagCodes(row_combo, tuple(merged))


def to_arrow(flags: FlagCodes) -> pa.Array | pa.ChunkedArray:
    """One list of reason codes per row as an Arrow ``list<string>`` array, taken from the few combinations
    (no list object per row), of the type ``pa.Table.from_pandas`` gives :meth:`FlagCodes.to_lists`
    (``list<null>`` when no row has a code, ``null`` when there is no row)."""
    return like_pandas(take_rows(pa.array([list(c) for c in flags.combos], pa.list_(pa.string())), flags.codes))
