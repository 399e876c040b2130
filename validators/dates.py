"""Dates of birth and update timestamps: raw text -> datetime64 plus a reason code.

Each distinct raw value is parsed once. The source's declared formats are tried first
(vectorized ``pd.to_datetime(format=...)``), then a few unambiguous fallbacks
(YYYYMMDD, YYYY-MM-DD / YYYY/MM/DD / YYYY.MM.DD, YYYY年MM月DD日, ISO timestamps, and
Excel serial numbers when enabled). Calendar-impossible dates such as 20230230 never
parse: day and month are checked by pandas, not by a regex.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from validators.contact_common import as_text, factorize_text

log = logging.getLogger(__name__)

DOB_INVALID = "DOB_INVALID"
DOB_FUTURE = "DOB_FUTURE"
DOB_IMPLAUSIBLE = "DOB_IMPLAUSIBLE"


@dataclass(frozen=True)
class DateRules:
    """Policy of the birth-date parser."""

    reference_date: date | None = None  # "today" for the future / age checks; None = the run's date
    min_date: date = date(1880, 1, 1)  # the GB 11643 example holder was born in 1880
    max_age_years: int = 120
    fallback_formats: bool = True  # try the common formats after the source's declared ones
    excel_serial: bool = False  # read 1-5 digit numbers as Excel day serials (1899-12-30 epoch)
    # Keep the parsed value of a future / implausible date (True) or blank it so another source wins (False).
    keep_implausible: bool = False
    max_chars: int = 64


@dataclass(frozen=True)
class TimestampRules:
    """Policy of the update-timestamp parser."""

    timezone: str = "Asia/Shanghai"  # offsets in the text are converted to this zone's wall time
    fallback_formats: bool = True
    max_chars: int = 64


_DIRECTIVE = re.compile(r"%[a-zA-Z]")
_SAMPLE = pd.Timestamp(2000, 12, 31, 23, 59, 59)
_SEPARATED = re.compile(
    r"^(\d{4})\s*([-/.年])\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:(?:[T\s]+|(?<=日))\d{1,2}[:时]\d{1,2}(?:[:分]\d{1,2}(?:\.\d+)?秒?)?\s*(?:Z|[+-]\d{2}:?\d{2})?)?$"
)
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_SERIAL = re.compile(r"^(\d{1,5})(?:\.0+)?$")
_AWARE = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")
_EXCEL_EPOCH = np.datetime64("1899-12-30", "ns")
_COMPACT_TS_FORMATS = ("%Y%m%d%H%M%S", "%Y%m%d")


def _fixed_width(fmt: str) -> int | None:
    """Length of a compact format's output (``%Y%m%d`` -> 8), None when it has separators.

    strptime reads ``%m`` and ``%d`` as one or two digits, so "1990115" would match
    ``%Y%m%d`` as 1990-11-05; compact formats therefore only take strings of exact width.
    """
    if _DIRECTIVE.sub("", fmt):
        return None
    try:
        return len(_SAMPLE.strftime(fmt))
    except ValueError:
        return None


def _try_format(text: pd.Series, todo: pd.Series, fmt: str) -> pd.Series:
    """Parse the ``todo`` rows of ``text`` with one strptime format; NaT where it does not fit."""
    mask = todo.copy()
    width = _fixed_width(fmt)
    if width is not None:
        mask &= text.str.len() == width
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    if mask.any():
        parsed = pd.to_datetime(text[mask], format=fmt, errors="coerce")
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            parsed = parsed.dt.tz_localize(None)
        out[mask] = parsed.astype("datetime64[ns]")
    return out


def _from_parts(year: pd.Series, month: pd.Series, day: pd.Series) -> pd.Series:
    parts = pd.DataFrame({"year": year, "month": month, "day": day}).astype("int64")
    return pd.to_datetime(parts, errors="coerce").astype("datetime64[ns]")


def _fallback_dates(text: pd.Series, todo: pd.Series, excel_serial: bool) -> pd.Series:
    """Unambiguous common date shapes, parsed from regex parts (impossible dates give NaT)."""
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    sub = text[todo]
    if sub.empty:
        return out
    compact = sub.str.extract(_COMPACT)
    ok = compact[0].notna()
    if ok.any():
        out[ok[ok].index] = _from_parts(compact.loc[ok, 0], compact.loc[ok, 1], compact.loc[ok, 2])
    separated = sub.str.extract(_SEPARATED)
    ok = separated[0].notna() & out[sub.index].isna()
    if ok.any():
        out[ok[ok].index] = _from_parts(separated.loc[ok, 0], separated.loc[ok, 2], separated.loc[ok, 3])
    if excel_serial:
        serial = sub.str.extract(_SERIAL)[0]
        ok = serial.notna() & out[sub.index].isna()
        if ok.any():
            days = serial[ok].astype("int64").to_numpy()
            out[ok[ok].index] = _EXCEL_EPOCH + days.astype("timedelta64[D]")
    return out


def _clean_distinct(uniques: np.ndarray, max_chars: int) -> pd.Series:
    """Distinct raw values as NFKC text (None for blanks and over-long junk)."""
    text = pd.Series(uniques, dtype=object).map(as_text)
    text = text.where(text.str.len() <= max_chars).astype(object)
    normalized = text.str.normalize("NFKC").str.strip()
    return normalized.where(normalized.notna() & (normalized != ""), None).astype(object)


def _take(values: pd.Series, codes: np.ndarray) -> np.ndarray:
    arr = np.append(values.to_numpy(dtype="datetime64[ns]"), np.datetime64("NaT", "ns"))
    return arr[codes]


def _parse_text(text: pd.Series, formats: list[str], fallback: bool, excel_serial: bool) -> pd.Series:
    value = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    present = text.notna()
    for fmt in formats:
        todo = present & value.isna()
        if not todo.any():
            break
        value = value.fillna(_try_format(text, todo, fmt))
    todo = present & value.isna()
    if fallback and todo.any():
        value = value.fillna(_fallback_dates(text, todo, excel_serial))
    return value


def parse_dates(raw: pd.Series, formats: list[str], config: DateRules | None = None) -> pd.DataFrame:
    """Parse birth dates: declared strptime ``formats`` first, then the common fallbacks.

    Returns a DataFrame aligned to ``raw`` with ``value`` (datetime64[ns], NaT when
    missing, unparseable or, unless ``keep_implausible``, flagged) and ``flag``
    (DOB_INVALID, DOB_FUTURE, DOB_IMPLAUSIBLE or None). Never raises on junk input.
    """
    rules = config or DateRules()
    codes, uniques = factorize_text(raw)
    text = _clean_distinct(uniques, rules.max_chars)
    # over-long junk is cleaned to None above but is not blank: it must still be flagged
    raw_present = pd.Series(uniques, dtype=object).map(as_text).notna()
    value = _parse_text(text, formats, rules.fallback_formats, rules.excel_serial)

    today = pd.Timestamp(rules.reference_date or date.today())
    oldest = max(pd.Timestamp(rules.min_date), today - pd.DateOffset(years=rules.max_age_years))
    flag = np.full(len(text) + 1, None, dtype=object)  # the trailing slot serves missing rows (code -1)
    flag[:-1][(raw_present & value.isna()).to_numpy()] = DOB_INVALID
    future = (value > today).to_numpy()
    implausible = (value < oldest).to_numpy()
    flag[:-1][future] = DOB_FUTURE
    flag[:-1][implausible] = DOB_IMPLAUSIBLE
    if not rules.keep_implausible:
        value = value.mask(future | implausible)

    flags = flag[codes]
    out = pd.DataFrame({"value": _take(value, codes), "flag": flags}, index=raw.index)
    log.debug("dates: %d rows, %d distinct values", len(out), len(uniques))
    return out


def parse_timestamps(raw: pd.Series, formats: list[str], config: TimestampRules | None = None) -> pd.Series:
    """Parse update timestamps to naive datetime64[ns] wall time in ``config.timezone``; NaT when unparseable.

    Declared ``formats`` first, then ISO 8601 (offsets converted), compact
    YYYYMMDDHHMMSS and the date fallbacks of :func:`parse_dates`.
    """
    rules = config or TimestampRules()
    codes, uniques = factorize_text(raw)
    text = _clean_distinct(uniques, rules.max_chars)
    value = _parse_text(text, formats, fallback=False, excel_serial=False)
    todo = text.notna() & value.isna()
    if rules.fallback_formats and todo.any():
        aware = todo & text.str.contains(_AWARE, na=False)
        naive = todo & ~aware
        if naive.any():
            value = value.fillna(
                pd.to_datetime(text[naive], format="ISO8601", errors="coerce").astype("datetime64[ns]")
            )
        if aware.any():
            parsed = pd.to_datetime(text[aware], format="ISO8601", errors="coerce", utc=True)
            value = value.fillna(parsed.dt.tz_convert(rules.timezone).dt.tz_localize(None).astype("datetime64[ns]"))
        for fmt in _COMPACT_TS_FORMATS:
            todo = text.notna() & value.isna()
            if todo.any():
                value = value.fillna(_try_format(text, todo, fmt))
        todo = text.notna() & value.isna()
        if todo.any():
            value = value.fillna(_fallback_dates(text, todo, excel_serial=False))
    return pd.Series(_take(value, codes), index=raw.index, name="updated_at")
