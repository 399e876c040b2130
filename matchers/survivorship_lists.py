"""Multi-valued golden attributes and customer-360 counts, built with sorts and bincounts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from matchers.survivorship_rules import Records, explode_arrow, truthy
from schemas.survivorship import ListRule

__all__ = [
    "arrow_series",
    "as_strings",
    "collect_list",
    "customer_systems",
    "group_lists",
    "list_array",
    "sorted_factorize",
    "system_counts",
]


def as_strings(values: np.ndarray | pd.Series | pa.Array | pa.ChunkedArray) -> pa.Array:
    """``values`` as an Arrow string array (NaN and None are null; other scalars are cast to text)."""
    if isinstance(values, pa.ChunkedArray):
        arr: pa.Array = values.combine_chunks()
    elif isinstance(values, pa.Array):
        arr = values
    else:
        arr = pa.array(np.asarray(values, dtype=object), from_pandas=True)
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
    order = pc.array_sort_indices(uniques).to_numpy()
    rank = np.empty(len(order) + 1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    rank[-1] = -1
    return rank[codes], uniques.take(pa.array(order))


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


def group_lists(codes: np.ndarray, values: np.ndarray | pa.Array, n_groups: int) -> pd.Series:
    """One sorted list of distinct non-null values per group code ``0..n_groups-1`` (empty list if none).

    Returns an Arrow-backed Series (``list<string>``): built from offsets, never through Python lists.
    """
    arr = as_strings(values)
    codes = np.asarray(codes).astype(np.int64, copy=False)
    keep = (codes >= 0) & arr.is_valid().to_numpy(zero_copy_only=False)
    group, text = codes[keep], arr.filter(pa.array(keep))
    # one sort by (group, value): strings are compared only within a group, never all distinct values at once
    order = pc.sort_indices(pa.table({"g": group, "v": text}), sort_keys=[("g", "ascending"), ("v", "ascending")])
    group, text = group[order.to_numpy()], text.take(order)
    if len(group) > 1:  # drop a value repeated within its group
        repeat = (group[1:] == group[:-1]) & pc.equal(text.slice(1), text.slice(0, len(text) - 1)).to_numpy(
            zero_copy_only=False
        )
        first = np.concatenate([[True], ~repeat])
        group, text = group[first], text.filter(pa.array(first))
    return arrow_series(list_array(group, text, n_groups))


def collect_list(records: Records, rule: ListRule, gcode: np.ndarray, n_groups: int) -> pd.Series:
    """Values of ``rule.columns`` over every golden ID's records, filtered and prefixed per ``rule``."""
    ok = np.ones(len(gcode), dtype=bool)
    if rule.require is not None:
        ok &= truthy(records[rule.require]) if rule.require in records else False
    if rule.exclude is not None and rule.exclude in records:
        ok &= ~truthy(records[rule.exclude])
    rows_parts: list[np.ndarray] = []
    value_parts: list[pa.Array] = []
    prefix_all = None
    if rule.prefix_column is not None and rule.prefix_column in records:
        prefix_all = as_strings(records.arrow(rule.prefix_column)).fill_null("UNKNOWN")
    for col in rule.columns:
        if col not in records:
            continue
        rows, vals = explode_arrow(records.arrow(col) if records.is_arrow else records[col])
        mask = ok[rows]
        rows = rows[mask]
        text = as_strings(vals.filter(pa.array(mask)))
        if prefix_all is not None:
            text = pc.binary_join_element_wise(prefix_all.take(pa.array(rows)), text, ":")
        rows_parts.append(rows)
        value_parts.append(text)
    if not rows_parts:
        return arrow_series(list_array(np.empty(0, np.int64), pa.array([], pa.string()), n_groups))
    rows = np.concatenate(rows_parts)
    return group_lists(gcode[rows], pa.concat_arrays(value_parts), n_groups)


def system_counts(gcode: np.ndarray, systems: pd.Series, n_groups: int) -> tuple[list[str], np.ndarray]:
    """(sorted system names, matrix n_groups x n_systems of record counts)."""
    scode, names = pd.factorize(systems, sort=True)
    width = max(len(names), 1)
    keep = (gcode >= 0) & (scode >= 0)
    flat = np.bincount(gcode[keep] * width + scode[keep], minlength=n_groups * width)
    return [str(s) for s in names], flat.reshape(n_groups, width)[:, : len(names)]


def customer_systems(
    records: Records,
    gcode: np.ndarray,
    golden_ids: pa.Array,
    names: list[str],
    counts: np.ndarray,
    key_rank: np.ndarray,
) -> pd.DataFrame:
    """Long table: one row per (golden_id, source_system) with its record count and record IDs.

    Within one system the record IDs sort like the record keys (``system:id``), so the
    record-key rank ``key_rank`` orders them without another string sort.
    """
    g, s = np.nonzero(counts)
    width = max(len(names), 1)
    scode = pd.Index(names).get_indexer(pd.Index(records["source_system"]))
    ok = (gcode >= 0) & (scode >= 0)
    rows = np.flatnonzero(ok)
    pair_code = gcode[rows].astype(np.int64) * width + scode[rows]
    present = g.astype(np.int64) * width + s
    group = np.searchsorted(present, pair_code)
    order = np.lexsort((key_rank[rows], group))
    ids = as_strings(records.arrow("source_record_id")).take(pa.array(rows[order]))
    lists = list_array(group[order], ids, len(present))
    return pd.DataFrame(
        {
            "golden_id": golden_ids.take(pa.array(g)).to_numpy(zero_copy_only=False),
            "source_system": np.asarray(names, dtype=object)[s],
            "n_records": counts[g, s].astype(np.int64),
            "source_record_ids": arrow_series(lists),
        }
    )
