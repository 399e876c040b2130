"""Multi-valued golden attributes and customer-360 counts, built with sorts and bincounts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from matchers.survivorship_rules import explode_values, truthy
from schemas.survivorship import ListRule

__all__ = ["collect_list", "customer_systems", "group_lists", "sorted_factorize", "system_counts"]


def sorted_factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, uniques) with uniques in sorted order: hash first, then sort only the distinct values (Arrow)."""
    codes, uniques = pd.factorize(values)
    if len(uniques) == 0:
        return codes, np.asarray(uniques, dtype=object)
    order = pc.array_sort_indices(pa.array(np.asarray(uniques, dtype=object), type=pa.string())).to_numpy()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes], np.asarray(uniques, dtype=object)[order]


def group_lists(codes: np.ndarray, values: np.ndarray, n_groups: int) -> pd.Series:
    """One sorted list of distinct non-null values per group code ``0..n_groups-1`` (empty list if none)."""
    keep = (codes >= 0) & pd.notna(values)
    codes, values = codes[keep].astype(np.int64), values[keep]
    vcode, uniques = sorted_factorize(values)
    width = max(len(uniques), 1)
    pair = np.unique(codes * width + vcode)
    group, value = pair // width, pair % width
    counts = np.bincount(group, minlength=n_groups)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    flat = pa.array(np.asarray(uniques, dtype=object)[value], type=pa.string())
    lists = pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), flat)
    return pd.Series(lists.to_pylist(), dtype=object)


def collect_list(records: pd.DataFrame, rule: ListRule, gcode: np.ndarray, n_groups: int) -> pd.Series:
    """Values of ``rule.columns`` over every golden ID's records, filtered and prefixed per ``rule``."""
    ok = np.ones(len(records), dtype=bool)
    if rule.require is not None:
        ok &= truthy(records[rule.require]) if rule.require in records else False
    if rule.exclude is not None and rule.exclude in records:
        ok &= ~truthy(records[rule.exclude])
    rows_parts, value_parts = [], []
    for col in rule.columns:
        if col not in records:
            continue
        rows, vals = explode_values(records[col])
        mask = ok[rows]
        rows, vals = rows[mask], vals[mask].astype(str).astype(object)
        if rule.prefix_column is not None and rule.prefix_column in records:
            prefix = records[rule.prefix_column].fillna("UNKNOWN").astype(str).to_numpy(dtype=object)[rows]
            vals = (prefix + ":" + vals).astype(object)
        rows_parts.append(rows)
        value_parts.append(vals)
    if not rows_parts:
        return pd.Series([[] for _ in range(n_groups)], dtype=object)
    rows = np.concatenate(rows_parts)
    return group_lists(gcode[rows], np.concatenate(value_parts), n_groups)


def system_counts(gcode: np.ndarray, systems: pd.Series, n_groups: int) -> tuple[list[str], np.ndarray]:
    """(sorted system names, matrix n_groups x n_systems of record counts)."""
    scode, names = pd.factorize(systems, sort=True)
    width = max(len(names), 1)
    keep = (gcode >= 0) & (scode >= 0)
    flat = np.bincount(gcode[keep] * width + scode[keep], minlength=n_groups * width)
    return [str(s) for s in names], flat.reshape(n_groups, width)[:, : len(names)]


def customer_systems(
    records: pd.DataFrame, gcode: np.ndarray, golden_ids: np.ndarray, names: list[str], counts: np.ndarray
) -> pd.DataFrame:
    """Long table: one row per (golden_id, source_system) with its record count and record IDs."""
    g, s = np.nonzero(counts)
    width = max(len(names), 1)
    scode = pd.Index(names).get_indexer(pd.Index(records["source_system"]))
    pair_code = gcode.astype(np.int64) * width + scode
    present = g.astype(np.int64) * width + s
    pos = np.searchsorted(present, pair_code)
    pos = np.where((gcode >= 0) & (scode >= 0), pos, -1)
    ids = group_lists(pos, records["source_record_id"].astype(str).to_numpy(dtype=object), len(present))
    return pd.DataFrame(
        {
            "golden_id": golden_ids[g],
            "source_system": np.asarray(names, dtype=object)[s],
            "n_records": counts[g, s].astype(np.int64),
            "source_record_ids": ids.to_numpy(),
        }
    )
