"""Code tables: a source's own ID-type and gender codes mapped onto the canonical enums."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.extract.vector import map_distinct


def map_codes(raw: pa.ChunkedArray, table: Mapping[str, str], unmapped: str | None) -> pa.ChunkedArray:
    """Map codes through ``table`` (exact after trimming, then case-insensitive).

    Blank or null codes give null; a non-blank code the table lacks gives ``unmapped``.
    A code column holds a handful of distinct values: each is mapped once.
    """
    return map_distinct(raw, lambda codes: _map(codes, table, unmapped))


def _map(raw: pa.ChunkedArray, table: Mapping[str, str], unmapped: str | None) -> pa.ChunkedArray:
    code = pc.utf8_trim_whitespace(raw)
    blank = pc.fill_null(pc.equal(code, ""), True)
    result = _lookup(code, dict(table))
    upper: dict[str, str] = {}
    for key, value in table.items():
        upper.setdefault(key.upper(), value)
    if any(upper[k.upper()] != v for k, v in table.items()):
        upper = {}  # keys that differ only by case map to different values: no case folding
    if upper:
        result = pc.coalesce(result, _lookup(pc.utf8_upper(code), upper))
    if unmapped is not None:
        result = pc.if_else(pc.and_(pc.is_null(result), pc.invert(blank)), pa.scalar(unmapped, pa.string()), result)
    return pc.if_else(blank, pa.scalar(None, pa.string()), result)


def _lookup(code: pa.ChunkedArray, table: dict[str, str]) -> pa.ChunkedArray:
    keys = pa.array(list(table), pa.string())
    values = pa.array(list(table.values()), pa.string())
    idx = pc.index_in(code, value_set=keys)
    return pc.take(values, idx)
