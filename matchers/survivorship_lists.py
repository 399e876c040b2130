"""Multi-valued golden attributes and customer-360 counts, built with sorts and bincounts.

Every list column is an Arrow ``list<string>`` built from offsets (never a Python list per
golden record); values with few distinct texts (systems, quality flags) are sorted and
deduplicated as integer codes. The list and flag columns of the records are exploded into
(record, value) pairs in Arrow.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from matchers.survivorship_rules import Records
from schemas.survivorship import ListRule

__all__ = [
    "Flags",
    "SystemCodes",
    "arrow_series",
    "as_strings",
    "coded_lists",
    "collect_list",
    "customer_systems",
    "explode_arrow",
    "explode_values",
    "flag_pairs",
    "group_lists",
    "has_any_flag",
    "list_array",
    "sorted_factorize",
    "system_codes",
    "system_counts",
    "systems_lists",
]


def as_strings(values: np.ndarray | pd.Series | pa.Array | pa.ChunkedArray) -> pa.Array:
    """``values`` as one Arrow string array (NaN and None are null; other scalars are cast to text).

    An Arrow-backed Series is read without a copy; an object one is converted once.
    """
    if isinstance(values, pd.Series) and not isinstance(values.dtype, np.dtype):
        values = pa.array(values.array)  # Arrow-backed or pandas string data: its Arrow array
    if isinstance(values, pa.ChunkedArray):
        arr: pa.Array = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    elif isinstance(values, pa.Array):
        arr = values
    else:
        arr = pa.array(np.asarray(values, dtype=object), from_pandas=True)
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    return arr


def sorted_factorize(values: np.ndarray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(codes, uniques) with uniques in sorted order and -1 for null: hash once, then sort only the
    distinct values (Arrow)."""
    arr = as_strings(values)
    encoded = pc.dictionary_encode(arr)
    uniques = encoded.dictionary
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    if len(uniques) == 0:
        return codes, uniques
    order = _sorted_order(uniques)
    rank = np.empty(len(order) + 1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    rank[-1] = -1
    return rank[codes], uniques.take(pa.array(order))


def _sorted_order(text: pa.Array) -> np.ndarray:
    """Positions of ``text`` (no nulls) in sorted order. Text of one byte length without NUL bytes (IDs
    such as golden IDs) is sorted by numpy as fixed-width bytes, in the same (byte) order and faster
    than Arrow's variable-length sort."""
    if pa.types.is_string(text.type) and len(text) > 1 and not text.null_count:
        offsets = np.frombuffer(text.buffers()[1], np.int32, len(text) + 1, text.offset * 4)
        width = int(offsets[1] - offsets[0])
        if width > 0 and bool((np.diff(offsets) == width).all()):
            data = np.frombuffer(text.buffers()[2], np.uint8, int(offsets[-1] - offsets[0]), int(offsets[0]))
            if not bool((data == 0).any()):
                return np.argsort(data.view(f"S{width}"), kind="stable")
    return np.asarray(pc.array_sort_indices(text).to_numpy(), dtype=np.int64)


def arrow_series(values: pa.Array) -> pd.Series:
    """A pandas Series backed by the Arrow array (lists stay Arrow; an element reads as a Python list)."""
    return pd.Series(pd.arrays.ArrowExtensionArray(values))


def list_array(group: np.ndarray, values: pa.Array, n_groups: int) -> pa.ListArray:
    """One list per group ``0..n_groups-1`` from ``values`` already ordered by ``group`` (ascending)."""
    counts = np.bincount(group, minlength=n_groups) if len(group) else np.zeros(n_groups, np.int64)
    offsets = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if offsets[-1] < 2**31 - 1:
        return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)
    return pa.LargeListArray.from_arrays(pa.array(offsets), values)


_PAIRS_PER_PART = 1 << 18  # (group, value) pairs hashed and sorted at a time


def group_lists(codes: np.ndarray, values: np.ndarray | pa.Array | pa.ChunkedArray, n_groups: int) -> pd.Series:
    """One sorted list of distinct non-null values per group code ``0..n_groups-1`` (empty list if none).

    The (group, value) pairs are made distinct by hashing first (a golden ID's records repeat their
    phones and names: a third of the pairs are left to sort), then sorted by (group, value): strings
    are compared only within a group. The groups are done a range at a time, about
    ``_PAIRS_PER_PART`` pairs each, so the hash table and the sort's copies stay small (and in
    cache). Returns an Arrow-backed Series (``list<string>``, one chunk per range) built from
    offsets, never through Python lists.
    """
    text = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([as_strings(values)])
    if not pa.types.is_string(text.type):
        text = text.cast(pa.string())
    codes = np.asarray(codes).astype(np.int32, copy=False)
    keep = (codes >= 0) & text.is_valid().to_numpy()
    if not keep.all():
        codes, text = codes[keep], text.filter(pa.array(keep))
    bounds = np.linspace(0, n_groups, max(1, -(-len(codes) // _PAIRS_PER_PART)) + 1).astype(np.int64)
    parts = [_group_part(codes, text, int(lo), int(hi)) for lo, hi in itertools.pairwise(bounds)]
    return arrow_series(pa.chunked_array(parts, pa.list_(pa.string())))


def _group_part(codes: np.ndarray, text: pa.ChunkedArray, lo: int, hi: int) -> pa.Array:
    """The lists of the groups ``lo..hi-1`` (see :func:`group_lists`)."""
    inside = (codes >= lo) & (codes < hi)
    pairs = pa.table({"g": codes[inside] - np.int32(lo), "v": text.filter(pa.array(inside))})
    if pairs.num_rows == 0:
        return list_array(np.empty(0, np.int32), pa.array([], pa.string()), hi - lo)
    pairs = pairs.group_by(["g", "v"], use_threads=False).aggregate([])
    pairs = pairs.take(pc.sort_indices(pairs, sort_keys=[("g", "ascending"), ("v", "ascending")]))
    pairs = pairs.combine_chunks()
    return list_array(pairs.column("g").to_numpy(), pairs.column("v").chunk(0), hi - lo)


def coded_lists(group: np.ndarray, codes: np.ndarray, names: pa.Array, n_groups: int) -> pd.Series:
    """:func:`group_lists` of values given as codes into ``names`` (distinct and sorted): sorted and
    deduplicated as integers, the text taken once per list entry."""
    width = max(len(names), 1)
    pair = np.sort(pd.unique(group.astype(np.int64) * width + codes))  # hashed first: only distinct pairs sorted
    return arrow_series(list_array(pair // width, names.take(pa.array(pair % width)), n_groups))


def explode_values(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(row positions, values) of every non-null value of a scalar or list column."""
    non_null = values.dropna()
    if len(non_null) == 0:
        return np.empty(0, np.int64), np.empty(0, object)
    if isinstance(values.dtype, pd.ArrowDtype) and pa.types.is_list(values.dtype.pyarrow_dtype):
        held = pa.array(values.array)  # the Arrow data behind the Series, not a copy through Python
        arr = held.combine_chunks() if isinstance(held, pa.ChunkedArray) else held
    elif not pd.api.types.is_list_like(non_null.iloc[0]):
        rows = np.flatnonzero(pd.notna(values).to_numpy())
        return rows.astype(np.int64), values.to_numpy(dtype=object)[rows]
    else:
        arr = pa.array(values.to_numpy(dtype=object), type=pa.list_(pa.string()), from_pandas=True)
    rows = pc.list_parent_indices(arr).to_numpy()
    flat = arr.flatten().to_numpy(zero_copy_only=False)
    keep = pd.notna(flat)
    return np.asarray(rows, dtype=np.int64)[keep], np.asarray(flat, dtype=object)[keep]


def explode_arrow(values: pd.Series | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """:func:`explode_values` with the values as one Arrow array (converted once, no Python objects made).

    Falls back to :func:`explode_values` for a column Arrow cannot type (mixed Python types).
    """
    if isinstance(values, pa.Array):
        held = values
    elif isinstance(values.dtype, pd.ArrowDtype):
        held = pa.array(values.array)
    else:
        try:
            held = pa.array(values.to_numpy(dtype=object) if values.dtype == object else values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            rows, flat = explode_values(values)
            return rows, pa.array(flat, from_pandas=True)
    arr = held.combine_chunks() if isinstance(held, pa.ChunkedArray) else held
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        rows = pc.list_parent_indices(arr).to_numpy().astype(np.int64)
        arr = arr.flatten()
    else:
        rows = np.arange(len(arr), dtype=np.int64)
    if arr.null_count:
        valid = arr.is_valid()
        rows, arr = rows[valid.to_numpy(zero_copy_only=False)], arr.filter(valid)
    return rows, arr


class Flags(NamedTuple):
    """Every (record, quality flag) pair: the flag as a code into ``names`` (distinct, sorted)."""

    rows: np.ndarray
    codes: np.ndarray
    names: pa.Array


def flag_pairs(records: Records, flag_columns: tuple[str, ...]) -> Flags:
    """The flags of every flag list column present in ``records``, coded: a few dozen distinct flags over
    millions of pairs are compared as integers, never as text."""
    parts = [explode_arrow(records.arrow(c) if records.is_arrow else records[c]) for c in flag_columns if c in records]
    rows = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
    text = [p[1] if pa.types.is_string(p[1].type) else pc.cast(p[1], pa.string()) for p in parts]
    flat = pa.concat_arrays(text) if text else pa.array([], pa.string())
    encoded = pc.dictionary_encode(flat)
    order = pc.array_sort_indices(encoded.dictionary).to_numpy()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    codes = rank[encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)]
    return Flags(rows, codes, encoded.dictionary.take(pa.array(order, pa.int64())))


def has_any_flag(flags: Flags, wanted: tuple[str, ...], n: int) -> np.ndarray:
    """Bool per record: it carries at least one of ``wanted``."""
    out = np.zeros(n, dtype=bool)
    if wanted and len(flags.rows):
        hit = pc.is_in(flags.names, value_set=pa.array(wanted, pa.string())).to_numpy(zero_copy_only=False)
        out[flags.rows[np.asarray(hit, dtype=bool)[flags.codes]]] = True
    return out


def collect_list(records: Records, rule: ListRule, gcode: np.ndarray, n_groups: int) -> pd.Series:
    """Values of ``rule.columns`` over every golden ID's records, filtered and prefixed per ``rule``."""
    ok = gcode >= 0
    if rule.require is not None:
        ok &= records.truthy(rule.require)
    if rule.exclude is not None:
        ok &= ~records.truthy(rule.exclude)
    group_parts: list[np.ndarray] = []
    value_parts: list[pa.Array] = []
    for col in rule.columns:
        if col not in records:
            continue
        rows, vals = explode_arrow(records.arrow(col) if records.is_arrow else records[col])
        mask = ok[rows]
        if not mask.all():  # no copy of the values when every one counts
            rows, vals = rows[mask], vals.filter(pa.array(mask))
        text = as_strings(vals)
        if rule.prefix_column is not None and rule.prefix_column in records:
            prefix = as_strings(records.rows(rule.prefix_column, rows)).fill_null("UNKNOWN")
            text = pc.binary_join_element_wise(prefix, text, ":")
        group_parts.append(gcode[rows])
        value_parts.append(text.cast(pa.string()) if not pa.types.is_string(text.type) else text)
    if not group_parts:
        return arrow_series(list_array(np.empty(0, np.int64), pa.array([], pa.string()), n_groups))
    return group_lists(np.concatenate(group_parts), pa.chunked_array(value_parts, pa.string()), n_groups)


class SystemCodes(NamedTuple):
    """Each record's source system as a code into ``names`` (distinct, sorted; -1: none)."""

    codes: np.ndarray
    names: list[str]


def system_codes(records: Records) -> SystemCodes:
    """The records' ``source_system`` coded, names sorted (from the dictionary of a coded column: no text
    per record)."""
    codes, uniques = records.codes("source_system")
    text = [str(u) for u in uniques.to_pylist()]
    order = sorted(range(len(text)), key=text.__getitem__)
    rank = np.empty(len(text) + 1, dtype=np.int64)
    rank[order] = np.arange(len(text))
    rank[-1] = -1
    names = [text[i] for i in order]
    code = rank[codes]
    if len(set(names)) != len(names):  # two values with one text (e.g. 1 and "1"): one code each text
        distinct = sorted(set(names))
        code = np.append(np.searchsorted(distinct, names), -1)[code]
        names = distinct
    return SystemCodes(code, names)


def system_counts(gcode: np.ndarray, systems: SystemCodes, n_groups: int) -> np.ndarray:
    """Matrix n_groups x n_systems of record counts."""
    width = max(len(systems.names), 1)
    keep = (gcode >= 0) & (systems.codes >= 0)
    flat = np.bincount(gcode[keep].astype(np.int64) * width + systems.codes[keep], minlength=n_groups * width)
    return flat.reshape(n_groups, width)[:, : len(systems.names)]


def systems_lists(counts: np.ndarray, names: list[str]) -> pd.Series:
    """Per golden ID the sorted systems it has records in, read off the count matrix (no text compared)."""
    g, s = np.nonzero(counts)
    return arrow_series(list_array(g, pa.array(names, pa.string()).take(pa.array(s)), counts.shape[0]))


def customer_systems(
    records: Records,
    gcode: np.ndarray,
    golden_ids: pa.Array,
    systems: SystemCodes,
    counts: np.ndarray,
    key_order: np.ndarray,
) -> pd.DataFrame:
    """Long table: one row per (golden_id, source_system) with its record count and record IDs.

    Within one system the record IDs sort like the record keys (``system:id``), so the records
    taken in record-key order ``key_order`` and grouped by a stable sort come out ordered,
    without another string sort.
    """
    g, s = np.nonzero(counts)
    width = max(len(systems.names), 1)
    pair_index = np.full(counts.size, -1, dtype=np.int32)  # (golden, system) -> its row of the long table
    pair_index[g.astype(np.int64) * width + s] = np.arange(len(g), dtype=np.int32)
    golden, system = gcode[key_order], systems.codes[key_order]
    ok = (golden >= 0) & (system >= 0)
    group = pair_index[golden[ok].astype(np.int64) * width + system[ok]]
    rows = key_order[ok]
    del golden, system, ok, pair_index
    order = np.argsort(group, kind="stable")
    ids = as_strings(records.rows("source_record_id", rows[order]))
    lists = list_array(group[order], ids, len(g))
    del rows, group, order
    return pd.DataFrame(
        {
            "golden_id": arrow_series(golden_ids.take(pa.array(g))),
            "source_system": arrow_series(pa.array(systems.names, pa.string()).take(pa.array(s))),
            "n_records": counts[g, s].astype(np.int64),
            "source_record_ids": arrow_series(lists),
        },
        copy=False,
    )
