"""Arrow string tools: text columns as Arrow arrays, rows by integer index, exact lookups without Python strings.

One job: let callers handle millions of short strings (record keys, golden IDs) as Arrow
arrays and integer positions, never as one Python ``str`` per value. Column conversion is
zero-copy for Arrow-backed pandas columns; ``take`` / ``gather`` move rows by index with -1
meaning null; :class:`Lookup` and :func:`repeated` find equal strings through 64-bit
fingerprints of fixed-width values (pandas' integer hash tables, a fraction of the time and
memory of Arrow's string memo tables at 10M rows), with every fingerprint hit checked byte
for byte, so answers are exact even when fingerprints collide.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "STRING_DTYPE",
    "Lookup",
    "arrow_strings",
    "concat",
    "gather",
    "repeated",
    "starts",
    "string_series",
    "take",
]

STRING_DTYPE = pd.ArrowDtype(pa.string())
"""The dtype of every text column of the golden-ID outputs (the master schema's ``string``: no cast on publish)."""

_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio): multiplying by it is a bijection
_BLOCK = 1 << 20  # needles checked byte for byte per step (bounds the temporaries)


def arrow_strings(values: pd.Series | pa.Array | pa.ChunkedArray | np.ndarray | Sequence[str | None]) -> pa.Array:
    """``values`` as one Arrow ``string`` array: zero-copy for an Arrow-backed column, one conversion otherwise.

    One array, not chunks: consumers take ``pa.array(column)`` as an Array. An all-null column
    read back from Parquet comes as Arrow ``null``, pandas' ``string[pyarrow]`` as
    ``large_string`` and a categorical as ``dictionary``: all are cast, so every column of a
    run has one type.
    """
    if isinstance(values, pd.Series) and isinstance(values.array, pd.arrays.ArrowExtensionArray):
        values = pa.array(values.array)
    elif isinstance(values, pd.Series):
        values = values.to_numpy(dtype=object)
    elif not isinstance(values, (pa.Array, pa.ChunkedArray, np.ndarray)):
        values = np.asarray(values, dtype=object)
    if isinstance(values, np.ndarray):
        try:
            values = pa.array(values, type=pa.string(), from_pandas=True)
        except (pa.ArrowTypeError, pa.ArrowInvalid):  # not text: Arrow infers the type, then a cast
            values = pa.array(values, from_pandas=True)
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return arr if arr.type == pa.string() else arr.cast(pa.string())


def string_series(arr: pa.Array) -> pd.Series:
    """An Arrow-backed string Series over ``arr`` (no copy)."""
    return pd.Series(pd.arrays.ArrowExtensionArray(arr), copy=False)


def _indices(index: np.ndarray) -> pa.Array:
    """``index`` as Arrow take indices; negative entries become null (taking null gives null)."""
    missing = index < 0
    return pa.array(index, mask=missing) if missing.any() else pa.array(index)


def concat(arrays: Sequence[pa.Array]) -> pa.Array:
    """The arrays one after the other; no copy when all but one are empty."""
    non_empty = [a for a in arrays if len(a)]
    if len(non_empty) <= 1:
        return non_empty[0] if non_empty else arrays[0]
    return pa.concat_arrays(non_empty)


def take(source: pa.Array, index: np.ndarray) -> pa.Array:
    """Rows ``index`` of ``source`` (-1: null)."""
    index = np.asarray(index)
    if len(index) and index.max() < 0:  # e.g. no event of a first run has a related ID
        return pa.nulls(len(index), source.type)
    return source.take(_indices(index))


def gather(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values[rows]``, -1 where ``rows`` is -1 (int32: values are codes below 2**31)."""
    out = np.full(len(rows), -1, dtype=np.int32)
    hit = rows >= 0
    out[hit] = values[rows[hit]]
    return out


def starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Mask of the first row of each run of equal values in ``sorted_keys``."""
    first = np.ones(len(sorted_keys), dtype=bool)
    first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return first


def _fixed_width(arr: pa.Array) -> np.ndarray | None:
    """The bytes of ``arr`` as an ``(n, width)`` uint8 view of its data buffer, when no value is null
    and every value has the same byte width (golden IDs); otherwise None."""
    n = len(arr)
    if n == 0 or arr.null_count or arr.type != pa.string():
        return None
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=n + 1, offset=4 * arr.offset)
    width = int(offsets[-1] - offsets[0]) // n
    if width == 0 or (np.diff(offsets) != width).any():
        return None
    return np.frombuffer(arr.buffers()[2], dtype=np.uint8, count=n * width, offset=int(offsets[0])).reshape(n, width)


def _words(chars: np.ndarray) -> list[np.ndarray]:
    """Little-endian 64-bit words that together cover every byte of each row (the last may overlap)."""
    n, width = chars.shape
    if width < 8:
        padded = np.zeros((n, 8), dtype=np.uint8)
        padded[:, :width] = chars
        return [padded.view("<u8")[:, 0]]
    starts = [*range(0, width - 7, 8), *([width - 8] if width % 8 else [])]
    return [chars[:, k : k + 8].view("<u8")[:, 0] for k in starts]


def _fingerprints(chars: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of bytes, vectorized over rows (equal strings, equal fingerprints).

    Hashing millions of short strings in Arrow's memo tables costs seconds and gigabytes at 10M;
    the same strings as integers go through pandas' integer hash tables in a fraction of both.
    """
    h = np.full(len(chars), chars.shape[1], dtype=np.uint64) * _MIX
    for word in _words(chars):
        h ^= word
        h *= _MIX
        h ^= h >> np.uint64(29)
    return h


class Lookup:
    """Positions of strings in ``haystack`` (distinct strings, e.g. the registry's golden IDs).

    Fixed-width values (golden IDs) go by fingerprint through a pandas integer index and every
    hit is checked byte for byte, so the answer is exact; anything else uses Arrow's hash lookup.
    """

    def __init__(self, haystack: pa.Array) -> None:
        self.haystack = haystack
        self.chars = _fixed_width(haystack)
        self.index: pd.Index | None = None
        if self.chars is not None:
            index = pd.Index(_fingerprints(self.chars))
            self.index = index if index.is_unique else None  # a collision (or a repeated ID): exact path

    def positions(self, needles: pa.Array) -> np.ndarray:
        """Row of ``haystack`` equal to each needle; -1 when absent or null."""
        out = np.full(len(needles), -1, dtype=np.int64)
        if len(needles) == 0 or len(self.haystack) == 0:
            return out
        valid: np.ndarray | None = None
        if needles.null_count:
            valid = np.flatnonzero(np.asarray(needles.is_valid().to_numpy(zero_copy_only=False)))
            if len(valid) == 0:
                return out
            needles = needles.take(pa.array(valid))
        found = self._fast(needles)
        if found is None:
            found = np.asarray(pc.index_in(needles, value_set=self.haystack).fill_null(-1).to_numpy()).astype(np.int64)
        if valid is None:
            return found
        out[valid] = found
        return out

    def _fast(self, needles: pa.Array) -> np.ndarray | None:
        chars = _fixed_width(needles)
        if self.index is None or self.chars is None or chars is None:
            return None
        if chars.shape[1] != self.chars.shape[1]:
            return np.full(len(needles), -1, dtype=np.int64)  # strings of another width never match
        found = np.asarray(self.index.get_indexer(pd.Index(_fingerprints(chars)))).astype(np.int64, copy=False)
        for lo in range(0, len(needles), _BLOCK):  # exact check of every hit, in blocks (bounded memory)
            at = found[lo : lo + _BLOCK]
            hit = at >= 0
            mine = needles.slice(lo, len(at)).filter(pa.array(hit))
            if not pc.all(pc.equal(mine, self.haystack.take(pa.array(at[hit]))), min_count=0).as_py():
                return None  # a fingerprint collision: let Arrow answer exactly
        return found


def repeated(values: pa.Array) -> np.ndarray:
    """Mask of values equal to (or, by fingerprint, possibly equal to) an earlier value; nulls count as repeats."""
    chars = _fixed_width(values)
    if chars is not None:
        fingerprints = _fingerprints(chars)
        ordered = np.sort(fingerprints)
        if not (ordered[1:] == ordered[:-1]).any():  # the usual answer, without a hash table
            return np.zeros(len(values), dtype=bool)
        return np.asarray(pd.Index(fingerprints).duplicated(keep="first"))
    codes = np.asarray(pc.dictionary_encode(values).indices.fill_null(-1).to_numpy())
    # codes are given in order of first appearance: a first occurrence exceeds every code before it
    running = np.maximum.accumulate(np.concatenate([[-1], codes]))[:-1]
    return ~(codes > running)
