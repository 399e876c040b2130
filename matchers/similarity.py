"""Character-level string similarity, vectorized over pairs of arrays.

Every function takes the left and right values of many pairs (Arrow arrays, numpy
arrays or lists of equal length) and returns an Arrow array of the same length, null
where either side is null. Characters are Unicode code points, so Chinese names are
compared by character (张三丰 vs 张三峰: one edit), unlike engine built-ins that count
UTF-8 bytes. Scoring runs in rapidfuzz's C++ ``cpdist`` with ``workers=1``: the engine
already runs its own threads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler, Levenshtein

ArrayLike: TypeAlias = pa.Array | pa.ChunkedArray | np.ndarray | Sequence[str | None]


def _prepare(left: ArrayLike, right: ArrayLike) -> tuple[list[str], list[str], np.ndarray]:
    """Nulls filled with '' and a mask of rows where either side is null."""
    la = _as_arrow(left)
    ra = _as_arrow(right)
    if len(la) != len(ra):
        raise ValueError(f"left and right differ in length ({len(la)} != {len(ra)})")
    null = pc.or_(pc.is_null(la), pc.is_null(ra)).to_numpy(zero_copy_only=False)
    return pc.fill_null(la, "").to_pylist(), pc.fill_null(ra, "").to_pylist(), null


def _as_arrow(values: ArrayLike) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = pa.array(list(values), type=pa.string())
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    return values


def _score(
    left: ArrayLike, right: ArrayLike, scorer: Callable[..., Any], dtype: pa.DataType, **kwargs: Any
) -> pa.Array:
    lv, rv, null = _prepare(left, right)
    if not lv:
        return pa.array([], type=dtype)
    np_dtype = np.float64 if pa.types.is_floating(dtype) else np.int64
    out = process.cpdist(lv, rv, scorer=scorer, workers=1, dtype=np_dtype, **kwargs)
    return pa.array(out, type=dtype, mask=null)


def levenshtein(left: ArrayLike, right: ArrayLike) -> pa.Array:
    """Levenshtein distance in characters (int64)."""
    return _score(left, right, Levenshtein.distance, pa.int64())


def damerau_levenshtein(left: ArrayLike, right: ArrayLike) -> pa.Array:
    """Damerau-Levenshtein distance in characters; an adjacent transposition costs 1 (int64)."""
    return _score(left, right, DamerauLevenshtein.distance, pa.int64())


def jaro_winkler(left: ArrayLike, right: ArrayLike) -> pa.Array:
    """Jaro-Winkler similarity in [0, 1] on characters (float64)."""
    return _score(left, right, JaroWinkler.normalized_similarity, pa.float64())


def _bigrams(s: str) -> frozenset[str]:
    if len(s) < 2:
        return frozenset([s]) if s else frozenset()
    return frozenset(s[i : i + 2] for i in range(len(s) - 1))


def jaccard_bigram(left: ArrayLike, right: ArrayLike) -> pa.Array:
    """Jaccard similarity of the sets of character bigrams (a one-character string is its own gram).

    Computed once per distinct (left, right) pair; two empty strings score 1.0.
    """
    lv, rv, null = _prepare(left, right)
    if not lv:
        return pa.array([], type=pa.float64())
    pair_codes, uniques = _factorize_pairs(lv, rv)
    scores = np.empty(len(uniques), dtype=np.float64)
    for i, (a, b) in enumerate(uniques):
        ga, gb = _bigrams(a), _bigrams(b)
        union = len(ga | gb)
        scores[i] = 1.0 if union == 0 else len(ga & gb) / union
    return pa.array(scores[pair_codes], type=pa.float64(), mask=null)


def _factorize_pairs(lv: list[str], rv: list[str]) -> tuple[np.ndarray, list[tuple[str, str]]]:
    index: dict[tuple[str, str], int] = {}
    codes = np.fromiter((index.setdefault(p, len(index)) for p in zip(lv, rv, strict=True)), dtype=np.int64)
    return codes, list(index)


VECTOR_FUNCTIONS: dict[str, tuple[Callable[[ArrayLike, ArrayLike], pa.Array], pa.DataType]] = {
    "levenshtein": (levenshtein, pa.int64()),
    "damerau": (damerau_levenshtein, pa.int64()),
    "jaro_winkler": (jaro_winkler, pa.float64()),
    "jaccard_bigram": (jaccard_bigram, pa.float64()),
}
"""Functions every engine registers, by the keys of :data:`matchers.dialect.UDF_NAMES`."""
