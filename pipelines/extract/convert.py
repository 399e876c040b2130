"""Typed Arrow values as canonical text: dates YYYY-MM-DD, timestamps 'YYYY-MM-DD HH:MM:SS', ints without '.0'."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc


def to_text(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    """Convert one column of any Arrow type to strings (nulls stay null)."""
    arr = column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = arr.type
    if pa.types.is_string(t):
        return arr
    if pa.types.is_large_string(t) or pa.types.is_string_view(t) or pa.types.is_null(t):
        return arr.cast(pa.string())
    if pa.types.is_date(t):
        days = arr.cast(pa.date32())
        seconds = days.cast(pa.timestamp("s"))
        return days.cast(pa.string()) if _four_digit_years(seconds) else pc.strftime(seconds, format="%Y-%m-%d")
    if pa.types.is_timestamp(t):
        seconds = arr.cast(pa.timestamp("s", tz=t.tz), safe=False)
        if t.tz is None and _four_digit_years(seconds):
            return seconds.cast(pa.string())
        return pc.strftime(seconds, format="%Y-%m-%d %H:%M:%S")
    if pa.types.is_floating(t):
        integral = pc.fill_null(pc.and_(pc.equal(pc.floor(arr), arr), pc.less(pc.abs(arr), 2.0**53)), False)
        as_int = pc.cast(pc.if_else(integral, arr, pa.scalar(None, t)), pa.int64())
        return pc.if_else(integral, as_int.cast(pa.string()), arr.cast(pa.string()))
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        try:
            return arr.cast(pa.string())
        except pa.ArrowInvalid:
            return pa.chunked_array(
                [pa.array([None if v is None else v.decode("utf-8", "replace") for v in arr.to_pylist()], pa.string())]
            )
    try:
        return arr.cast(pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return pa.chunked_array([pa.array([_json(v) for v in arr.to_pylist()], pa.string())])


# Seconds of 0001-01-01 00:00:00 and 9999-12-31 23:59:59. Between them Arrow's cast to text of a
# tz-naive timestamp[s] (of a date32) gives exactly strftime's '%Y-%m-%d %H:%M:%S' ('%Y-%m-%d') at a
# fraction of the cost; other values (and zone-aware timestamps) keep strftime and its errors.
_FIRST_SECOND = -62_135_596_800
_LAST_SECOND = 253_402_300_799


def _four_digit_years(seconds: pa.ChunkedArray) -> bool:
    if seconds.null_count == len(seconds):
        return True
    low, high = pc.min_max(seconds.cast(pa.int64())).values()
    return bool(low.as_py() >= _FIRST_SECOND and high.as_py() <= _LAST_SECOND)


def _json(value: object) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


def py_values_to_text(values: Sequence[object]) -> pa.ChunkedArray:
    """Python values from a database driver as text (types inferred by Arrow; mixed types via ``str``)."""
    try:
        arr = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        arr = pa.array([None if v is None else _scalar_text(v) for v in values], pa.string())
    return to_text(arr)


def _scalar_text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
