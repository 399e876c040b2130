"""Row-level checks after reading: oversized fields, missing record ids, duplicate record ids.

Pure functions over an Arrow table of mapped source columns (strings) with a ``__file``
and ``__line`` column. Each returns the flagged row positions with a reason and a detail.
Duplicates: an exact copy (same record id, same mapped content) is one record, the first
copy is kept and each further copy flagged; when the versions of a record id differ, every
version is flagged, since none can be trusted over the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from schemas.canonical import QuarantineReason

FILE = "__file"


@dataclass(frozen=True)
class Flag:
    """Row ``index`` of the checked table goes to quarantine for ``reason``."""

    index: int
    reason: QuarantineReason
    detail: str


def _mask(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def too_long(table: pa.Table, columns: Sequence[str], max_bytes: int) -> list[Flag]:
    """Rows with a value over ``max_bytes`` UTF-8 bytes in any of ``columns``."""
    flags: dict[int, Flag] = {}
    for col in columns:
        lengths = pc.binary_length(table[col])
        over = np.flatnonzero(_mask(pc.greater(lengths, max_bytes)))
        if over.size == 0:
            continue
        sizes = lengths.take(pa.array(over)).to_pylist()
        for i, size in zip(over.tolist(), sizes, strict=True):
            flags.setdefault(
                i,
                Flag(
                    i, QuarantineReason.FIELD_TOO_LONG, f"column {col} has {size} bytes > max_field_bytes={max_bytes}"
                ),
            )
    return sorted(flags.values(), key=lambda f: f.index)


def missing_ids(table: pa.Table, id_column: str) -> list[Flag]:
    """Rows whose record id is null or blank."""
    blank = pc.equal(pc.utf8_trim_whitespace(table[id_column]), "")
    missing = np.flatnonzero(_mask(pc.or_kleene(pc.is_null(table[id_column]), blank)))
    return [Flag(int(i), QuarantineReason.NO_RECORD_ID, f"{id_column} is blank") for i in missing]


def duplicate_ids(table: pa.Table, id_column: str, content: Sequence[str], skip: np.ndarray) -> list[Flag]:
    """Rows that repeat another row's record id (``skip`` marks rows already flagged, which are ignored)."""
    ids = table[id_column]
    keep = ~skip
    kept = ids if not skip.any() else ids.filter(pa.array(keep))
    distinct = pc.unique(kept)
    if len(distinct) - (1 if distinct.null_count else 0) == len(kept):  # no repeated id (nulls are not ids)
        return []
    frame = pd.DataFrame({"id": ids.to_pandas(), "pos": np.arange(table.num_rows)})[keep]
    dup = frame[frame["id"].duplicated(keep=False)]
    if dup.empty:
        return []
    positions = pa.array(dup["pos"].to_numpy())
    sub = table.select([*content, FILE, "__line"]).take(positions).to_pandas()
    sub.index = dup.index
    sub["id"] = dup["id"]
    sub["pos"] = dup["pos"]
    sub["hash"] = pd.util.hash_pandas_object(sub[list(content)].astype("string").fillna("\x00"), index=False)
    flags: list[Flag] = []
    for _, group in sub.groupby("id", sort=False):
        where = [f"{f} line {ln}" for f, ln in zip(group[FILE], group["__line"], strict=True)]
        if group["hash"].nunique() == 1:
            first = where[0]
            for pos in group["pos"].iloc[1:]:
                flags.append(
                    Flag(int(pos), QuarantineReason.DUPLICATE_RECORD_ID, f"exact copy of the row at {first}; kept once")
                )
        else:
            shown = ", ".join(where[:5]) + (f" and {len(where) - 5} more" if len(where) > 5 else "")
            detail = (
                f"{id_column} is shared by {len(group)} rows with different content ({shown}); "
                "all versions held back until the source fixes the key"
            )
            flags.extend(Flag(int(pos), QuarantineReason.DUPLICATE_RECORD_ID, detail) for pos in group["pos"])
    return sorted(flags, key=lambda f: f.index)
