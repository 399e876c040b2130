"""Resident identity card numbers (GB 11643-1999) and the MOD 11-2 family of 18-character numbers.

Layout: region (6) + birth date YYYYMMDD (8) + sequence (3, last digit odd = male) + check
character (ISO 7064 MOD 11-2, ``0-9`` or ``X``). Legacy 15-digit numbers (GB 11643-1989)
carry a 2-digit year and no check character; they are upgraded by inserting ``19`` and
appending the check, except the centenarian sequence codes (996-999 by default), whose
century is unknown.

The HK/Macau/Taiwan residence permit and the 2023 foreign permanent-resident card share
the layout (date at positions 7-14, MOD 11-2 check), so :func:`check_mod112` serves all three.

:func:`shared_id_numbers` marks numbers held by many different names (placeholders that pass
every check).

Scalar helpers (:func:`ric_check_char`, :func:`upgrade_15_to_18`, :func:`is_valid_resident_id`)
are for tests and one-off use; the nightly run uses the vectorized functions, which work on
numpy arrays of code points. python-stdnum's ``cn.ric.validate`` is deliberately not used: its
year-ranged region data rejects real numbers.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from mdm.arrays import sorted_unique
from mdm.errors import MdmError

__all__ = [
    "CHECK_CHARS",
    "WEIGHTS",
    "Mod112Check",
    "check_mod112",
    "clean_id_text",
    "is_valid_resident_id",
    "mod112_check_chars",
    "ric_check_char",
    "shared_id_numbers",
    "upgrade_15_batch",
    "upgrade_15_to_18",
]

WEIGHTS: tuple[int, ...] = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # 2**(17-i) % 11
CHECK_CHARS = "10X98765432"

_W = np.array(WEIGHTS, dtype=np.int32)
_CHECK_CPS = np.array([ord(c) for c in CHECK_CHARS], dtype=np.uint32)
_ZERO, _NINE, _X = ord("0"), ord("9"), ord("X")
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)

# Characters dropped as separators: whitespace, dash variants, quotes (Excel's leading '), BOM, zero-width space.
_SEPARATORS = " \t\n\r\f\v\u00a0\u200b\ufeff'\"`-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63"
# Look-alikes of the check character that NFKC leaves alone (U+00D7 ×, Greek chi χ/Χ).
_X_LOOKALIKES = "\u00d7\u03c7\u03a7"


def _table(strip_separators: bool) -> dict[int, int | None]:
    table: dict[int, int | None] = {ord(c): ord(c.upper()) for c in "abcdefghijklmnopqrstuvwxyz"}
    table.update({ord(c): _X for c in _X_LOOKALIKES})
    if strip_separators:
        table.update({ord(c): None for c in _SEPARATORS})
    return table


_TABLES = {True: _table(True), False: _table(False)}
_ASCII_TABLES: dict[bool, dict[int, int | None]] = {
    True: {ord(c): None for c in _SEPARATORS if c.isascii()},
    False: {},
}


def clean_id_text(text: str, strip_separators: bool = True) -> str:
    """NFKC, map check-character look-alikes to ``X``, uppercase ASCII, drop separators.

    Idempotent: ``clean_id_text(clean_id_text(s)) == clean_id_text(s)``. Never repairs
    anything else (``O`` stays ``O``, a 17-digit number stays 17 digits).
    """
    if text.isascii():  # NFKC is the identity on ASCII
        if text.isalnum():  # the common case: nothing to drop
            return text.upper()
        return text.translate(_ASCII_TABLES[strip_separators]).upper()
    table = _TABLES[strip_separators]
    out = text.translate(table)
    for _ in range(8):  # NFKC and deletions can expose each other; iterate to the fixed point
        nxt = unicodedata.normalize("NFKC", out).translate(table)
        if nxt == out:
            break
        out = nxt
    return out


def ric_check_char(body17: str) -> str:
    """MOD 11-2 check character (``0-9`` or ``X``) of a 17-digit body.

    Raises ValueError when the body is not 17 ASCII digits.
    """
    if len(body17) != 17 or not (body17.isascii() and body17.isdigit()):
        raise ValueError("the body must be exactly 17 ASCII digits")
    return CHECK_CHARS[sum(int(c) * w for c, w in zip(body17, WEIGHTS, strict=True)) % 11]


_LEGACY_RE = re.compile(r"[0-9]{15}")
_RIC_RE = re.compile(r"[0-9]{17}[0-9X]")


def upgrade_15_to_18(s: str, centenarian_sequences: Sequence[str] = ("996", "997", "998", "999")) -> str | None:
    """Upgrade a 15-digit legacy number: insert ``19`` after the region, append the check character.

    Returns None when ``s`` is not 15 ASCII digits or carries a centenarian sequence code
    (its century is unknown, so no guess is made). The date is not checked here.
    """
    if not _LEGACY_RE.fullmatch(s) or s[12:15] in centenarian_sequences:
        return None
    body = s[:6] + "19" + s[6:]
    return body + ric_check_char(body)


def _real_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def is_valid_resident_id(
    s: str,
    as_of: date | None = None,
    min_birth_year: int = 1850,
    provinces: frozenset[str] | None = None,
) -> bool:
    """True for a valid resident ID number (18 characters, or 15 digits that upgrade cleanly).

    The text is cleaned first (``x``, full-width ``Ｘ``, ``×`` are accepted). Checks: shape,
    check character, a real birth date from ``min_birth_year`` up to ``as_of`` (today by
    default), and a known province prefix (from the region reference file unless
    ``provinces`` is given). The numbers of HK/Macau/Taiwan residence permits (81/82/83)
    are not resident IDs. An unknown full region code does not make a number invalid.
    """
    if provinces is None:
        from validators.regions import known_provinces

        provinces = known_provinces() - {"71", "81", "82", "83"}
    t = clean_id_text(s)
    if len(t) == 15:
        up = upgrade_15_to_18(t)
        if up is None:
            return False
        t = up
    if not _RIC_RE.fullmatch(t) or t[:2] not in provinces:
        return False
    if ric_check_char(t[:17]) != t[17]:
        return False
    born = _real_date(int(t[6:10]), int(t[10:12]), int(t[12:14]))
    return born is not None and min_birth_year <= born.year and born <= (as_of or date.today())


# ---------------------------------------------------------------------------------------------
# Vectorized checks over many distinct values
# ---------------------------------------------------------------------------------------------


def _code_points(values: Sequence[str] | npt.NDArray[np.object_], width: int) -> npt.NDArray[np.uint32]:
    """(n, width) matrix of code points; longer strings are truncated, shorter ones padded with 0."""
    arr = np.array(values, dtype=f"<U{width}")
    return arr.view(np.uint32).reshape(len(values), width)


def _from_code_points(cps: npt.NDArray[np.uint32]) -> list[str]:
    width = cps.shape[1]
    return list(np.ascontiguousarray(cps).view(f"<U{width}").ravel().tolist())


def mod112_check_chars(digits17: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.uint32]:
    """Check characters (as code points) of an (n, 17) matrix of digit values."""
    return _CHECK_CPS[(digits17 @ _W) % 11]


@dataclass(frozen=True)
class Mod112Check:
    """Per-value results of :func:`check_mod112` (arrays of the input's length)."""

    well_formed: npt.NDArray[np.bool_]  # exactly 18 chars: 17 ASCII digits + digit or X
    checksum_ok: npt.NDArray[np.bool_]
    date_ok: npt.NDArray[np.bool_]  # real date, year >= min_birth_year, not after as_of
    birth: npt.NDArray[np.datetime64]  # datetime64[D], NaT where the date is not ok
    male: npt.NDArray[np.bool_]  # digit 17 odd
    region: npt.NDArray[np.int64]  # first six digits as an integer, -1 when not well formed
    same_digit_body: npt.NDArray[np.bool_]  # the 17-digit body repeats one digit (placeholder)
    sequential_body: npt.NDArray[np.bool_]  # the body is a run of 1234567890... or 9876543210...


_UP = np.array([(i + 1) % 10 for i in range(17)], dtype=np.int64)  # 12345678901234567
_DOWN = np.array([(9 - i) % 10 for i in range(17)], dtype=np.int64)  # 98765432109876543


def check_mod112(values: Sequence[str] | npt.NDArray[np.object_], as_of: date, min_birth_year: int) -> Mod112Check:
    """Shape, check character and birth date of 18-character MOD 11-2 numbers, vectorized.

    ``values`` are cleaned strings (see :func:`clean_id_text`); any length is accepted and
    anything but 17 digits + digit/X is reported as not well formed.
    """
    n = len(values)
    lens = np.fromiter(map(len, values), dtype=np.int64, count=n)
    cps = _code_points(values, 18) if n else np.zeros((0, 18), dtype=np.uint32)
    digits = cps.astype(np.int32) - _ZERO  # code points fit in int32
    is_digit = (digits >= 0) & (digits <= 9)
    digits[~is_digit] = 0
    well_formed = (lens == 18) & is_digit[:, :17].all(axis=1) & (is_digit[:, 17] | (cps[:, 17] == _X))
    checksum_ok = well_formed & (mod112_check_chars(digits[:, :17]) == cps[:, 17])

    year = digits[:, 6] * 1000 + digits[:, 7] * 100 + digits[:, 8] * 10 + digits[:, 9]
    month = digits[:, 10] * 10 + digits[:, 11]
    day = digits[:, 12] * 10 + digits[:, 13]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_ok = (month >= 1) & (month <= 12)
    max_day = _DAYS_IN_MONTH[np.where(month_ok, month, 0)] + ((month == 2) & leap)
    ymd = year * 10000 + month * 100 + day
    as_of_ymd = as_of.year * 10000 + as_of.month * 100 + as_of.day
    date_ok = well_formed & month_ok & (day >= 1) & (day <= max_day) & (year >= min_birth_year) & (ymd <= as_of_ymd)
    months = np.where(date_ok, (year - 1970) * 12 + month - 1, 0).astype("datetime64[M]")
    birth = months.astype("datetime64[D]") + np.where(date_ok, day - 1, 0).astype("timedelta64[D]")
    birth[~date_ok] = np.datetime64("NaT")

    region = np.where(
        well_formed,
        digits[:, :6] @ np.array([100000, 10000, 1000, 100, 10, 1], dtype=np.int64),
        -1,
    )
    body = digits[:, :17]
    return Mod112Check(
        well_formed=well_formed,
        checksum_ok=checksum_ok,
        date_ok=date_ok,
        birth=birth,
        male=well_formed & (digits[:, 16] % 2 == 1),
        region=region,
        same_digit_body=well_formed & (body == body[:, :1]).all(axis=1),
        sequential_body=well_formed & ((body == _UP).all(axis=1) | (body == _DOWN).all(axis=1)),
    )


def upgrade_15_batch(values: Sequence[str]) -> list[str]:
    """Upgrade many 15-digit numbers at once (caller guarantees 15 ASCII digits each)."""
    if not values:
        return []
    cps = _code_points(values, 15)
    out = np.empty((len(values), 18), dtype=np.uint32)
    out[:, :6] = cps[:, :6]
    out[:, 6] = ord("1")
    out[:, 7] = _NINE
    out[:, 8:17] = cps[:, 6:15]
    out[:, 17] = mod112_check_chars(out[:, :17].astype(np.int64) - _ZERO)
    return _from_code_points(out)


def shared_id_numbers(id_key: pd.Series, name_key: pd.Series, max_names: int) -> pd.Series:
    """True where the row's ``id_key`` is held by more than ``max_names`` distinct ``name_key`` values.

    Nulls never count: a null key is never shared, a null name is not a name.
    """
    if len(id_key) != len(name_key):
        raise MdmError("shared_id_numbers: id_key and name_key must be columns of the same frame")
    ik, _ = pd.factorize(id_key)
    nk, names = pd.factorize(name_key)
    both = (ik >= 0) & (nk >= 0)
    stride = np.int64(len(names) + 1)
    pairs = sorted_unique(ik[both].astype(np.int64) * stride + nk[both])
    counts = np.bincount(pairs // stride, minlength=max(int(ik.max(initial=-1)) + 1, 1))
    shared = (ik >= 0) & (counts[np.clip(ik, 0, None)] > max_names)
    return pd.Series(shared, index=id_key.index, name="id_shared", dtype=bool)
