"""Identity documents of every type: rules, per-type validation, type re-check, :func:`standardize_ids`.

Each distinct (declared type, raw number) pair is validated once and the results are mapped
back onto the rows. A number is first checked against its declared type; when it fails, the
shapes listed in :class:`IdRules` are tried in order and the first type it is valid for wins
(flag ``ID_TYPE_CORRECTED``; ``ID_TYPE_INFERRED`` when the declared type was ``UNKNOWN``).
Nothing is ever repaired by guessing: a number that fits no type keeps its declared type and
the reason codes of that type's failure.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mdm.errors import ConfigError, MdmError
from schemas.enums import IdType
from schemas.sources import format_validation_error
from validators.flag_codes import FlagCodes
from validators.regions import REGION_CODES_FILE, province_table, region_code_table
from validators.resident_id import Mod112Check, check_mod112, clean_id_text, shared_id_numbers, upgrade_15_batch

__all__ = [
    "FLAGS",
    "OUTPUT_COLUMNS",
    "IdRules",
    "flag_names",
    "id_columns",
    "load_id_rules",
    "mark_shared_ids",
    "org_code_check_char",
    "shared_id_numbers",
    "standardize_ids",
    "uscc_check_char",
]

logger = logging.getLogger(__name__)

Mask = npt.NDArray[np.bool_]

# Reason codes; bit i of the internal flag mask is FLAGS[i].
FLAGS: tuple[str, ...] = (
    "ID_MISSING",
    "ID_FORMAT",
    "ID_BAD_CHECKSUM",
    "ID_BAD_DATE",
    "ID_BAD_REGION",
    "ID_REGION_UNKNOWN",
    "ID_LEGACY_UPGRADED",
    "ID_CENTENARIAN_LEGACY",
    "ID_AGE_IMPLAUSIBLE",
    "ID_PLACEHOLDER",
    "ID_SHARED_BY_NAMES",
    "ID_TYPE_CORRECTED",
    "ID_TYPE_INFERRED",
    "ID_TYPE_UNVERIFIABLE",
)
_BIT = {name: np.int64(1 << i) for i, name in enumerate(FLAGS)}
MISSING, FORMAT = _BIT["ID_MISSING"], _BIT["ID_FORMAT"]
CHECKSUM, BAD_DATE = _BIT["ID_BAD_CHECKSUM"], _BIT["ID_BAD_DATE"]
BAD_REGION, REGION_UNKNOWN = _BIT["ID_BAD_REGION"], _BIT["ID_REGION_UNKNOWN"]
UPGRADED, CENTENARIAN, OLD = _BIT["ID_LEGACY_UPGRADED"], _BIT["ID_CENTENARIAN_LEGACY"], _BIT["ID_AGE_IMPLAUSIBLE"]
PLACEHOLDER, SHARED = _BIT["ID_PLACEHOLDER"], _BIT["ID_SHARED_BY_NAMES"]
CORRECTED, INFERRED, UNVERIFIABLE = _BIT["ID_TYPE_CORRECTED"], _BIT["ID_TYPE_INFERRED"], _BIT["ID_TYPE_UNVERIFIABLE"]

OUTPUT_COLUMNS: tuple[str, ...] = (
    "id_type",
    "id_number",
    "id_valid",
    "id_placeholder",
    "id_key",
    "id_birth_date",
    "id_gender",
    "id_flags",
)

# Numbers that pass every check but are known junk: the standards' own examples and keyboard runs.
BUILTIN_PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "440524188001010014",  # GB 11643-1999 example
        "11010519491231002X",  # GB 11643-1999 example (15-digit form 110105491231002)
        "110105491231002",
        "123456789012345678",
        "12345678901234567X",
        "123456789012345",
    }
)

_PERSONAL_INFERENCE = (
    IdType.HMT_RESIDENCE_PERMIT,
    IdType.RESIDENT_ID,
    IdType.FOREIGN_PR_CARD,
    IdType.HK_MACAU_PERMIT,
    IdType.PASSPORT_CN,
    IdType.MILITARY_ID,
)
_CORPORATE = frozenset({IdType.USCC, IdType.ORG_CODE})
_OPEN = frozenset({IdType.OTHER, IdType.UNKNOWN})


class IdRules(BaseModel):
    """Thresholds and rules of ID validation (all overridable from the run config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    as_of: date | None = Field(
        default=None, description="reference date for 'not in the future' and ages; today when null"
    )
    min_birth_year: int = Field(default=1850, ge=1800, description="older birth dates are ID_BAD_DATE (1880 is valid)")
    max_plausible_age: int = Field(
        default=110, ge=50, description="older holders are flagged ID_AGE_IMPLAUSIBLE, not rejected"
    )
    region_unknown: Literal["flag", "error"] = Field(
        default="flag", description="an unknown full 6-digit region code: only flag it, or make the number invalid"
    )
    region_codes_file: Path = Field(default=REGION_CODES_FILE, description="union of known 6-digit region codes")
    non_resident_prefixes: tuple[str, ...] = Field(
        default=("71", "81", "82", "83"), description="province prefixes never used by mainland resident IDs"
    )
    hmt_permit_prefixes: tuple[str, ...] = ("810000", "820000", "830000")
    centenarian_sequences: tuple[str, ...] = Field(
        default=("996", "997", "998", "999"),
        description="15-digit sequence codes whose century is unknown (not upgraded)",
    )
    centenarian_legacy_valid: bool = Field(
        default=True, description="a centenarian 15-digit number is valid with its 15 digits as match key"
    )
    strip_separators: bool = Field(
        default=True, description="drop spaces, dashes and quotes inside numbers before checking"
    )
    placeholder_numbers: frozenset[str] = Field(
        default=frozenset(), description="normalized numbers added to the built-in placeholder denylist"
    )
    placeholder_min_digits: int = Field(
        default=6, ge=2, description="a run of one repeated digit this long is a placeholder"
    )
    placeholder_min_sequence: int = Field(
        default=8, ge=4, description="a 123456.../987654... run this long is a placeholder"
    )
    max_names_per_id: int = Field(default=3, ge=1, description="an ID held by more different names is a placeholder")
    passport_cn_patterns: tuple[str, ...] = Field(
        default=("G[0-9]{8}", "E[0-9]{8}", "E[A-HJ-NP-Z][0-9]{7}", "(?:SE|PE|DE)[0-9]{7}", "K[0-9]{8}", "MA[0-9]{7}"),
        description="full-match regexes of PRC passport numbers",
    )
    foreign_passport_min_len: int = Field(default=5, ge=1)
    foreign_passport_max_len: int = Field(default=9, ge=1)
    personal_inference: tuple[IdType, ...] = Field(
        default=_PERSONAL_INFERENCE,
        description="types tried, in order, when a personal document fails its declared type",
    )
    corporate_inference: tuple[IdType, ...] = Field(
        default=(IdType.USCC, IdType.ORG_CODE), description="types tried when a corporate code fails its declared type"
    )

    @field_validator("passport_cn_patterns")
    @classmethod
    def _compiles(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for p in v:
            try:
                re.compile(p)
            except re.error as e:
                raise ValueError(f"passport pattern {p!r} is not a valid regex ({e})") from e
        return v

    @field_validator("non_resident_prefixes")
    @classmethod
    def _two_digits(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [p for p in v if len(p) != 2 or not p.isdigit()]
        if bad:
            raise ValueError(f"province prefixes must be 2 digits, got {bad}")
        return v

    @field_validator("hmt_permit_prefixes")
    @classmethod
    def _six_digits(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [p for p in v if len(p) != 6 or not p.isdigit()]
        if bad:
            raise ValueError(f"permit prefixes must be 6 digits, got {bad}")
        return v


def load_id_rules(data: Mapping[str, Any] | None, source: str = "run config (ids)") -> IdRules:
    """Validate an ``ids:`` mapping of the run config; every problem is reported at once."""
    try:
        return IdRules.model_validate(dict(data or {}))
    except ValidationError as e:
        raise ConfigError(format_validation_error(source, e)) from e


# ---------------------------------------------------------------------------------------------
# Corporate check characters
# ---------------------------------------------------------------------------------------------

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # GB 32100: no I, O, S, V, Z
_USCC_VALUE = {c: i for i, c in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_USCC_RE = re.compile(f"[{USCC_ALPHABET}]{{18}}")
_ORG_RE = re.compile("[0-9A-Z]{8}[0-9X]")


def uscc_check_char(body17: str) -> str:
    """GB 32100-2015 check character of the first 17 characters of a unified social credit code."""
    if len(body17) != 17 or any(c not in _USCC_VALUE for c in body17):
        raise ValueError(f"the body must be 17 characters of {USCC_ALPHABET}")
    total = sum(_USCC_VALUE[c] * w for c, w in zip(body17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def org_code_check_char(body8: str) -> str:
    """GB 11714-1997 check character (``0-9`` or ``X``) of an 8-character organization code body."""
    if len(body8) != 8 or not all(c.isascii() and (c.isdigit() or c.isupper()) for c in body8):
        raise ValueError("the body must be 8 ASCII digits or uppercase letters")
    total = sum(int(c, 36) * w for c, w in zip(body8, _ORG_WEIGHTS, strict=True))
    c = 11 - total % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


# ---------------------------------------------------------------------------------------------
# Per-type validators over arrays of cleaned distinct values
# ---------------------------------------------------------------------------------------------


@dataclass
class _Batch:
    """Validation results for n cleaned values of one type (match keys without the type prefix)."""

    number: npt.NDArray[np.object_]
    valid: npt.NDArray[np.bool_]
    key: npt.NDArray[np.object_]
    birth: npt.NDArray[np.datetime64]
    gender: npt.NDArray[np.object_]
    flags: npt.NDArray[np.int64]
    placeholder: npt.NDArray[np.bool_]

    @classmethod
    def start(cls, values: npt.NDArray[np.object_]) -> _Batch:
        n = len(values)
        return cls(
            number=values.copy(),
            valid=np.zeros(n, dtype=np.bool_),
            key=np.full(n, None, dtype=object),
            birth=np.full(n, np.datetime64("NaT"), dtype="datetime64[D]"),
            gender=np.full(n, None, dtype=object),
            flags=np.zeros(n, dtype=np.int64),
            placeholder=np.zeros(n, dtype=np.bool_),
        )


class _Context:
    """Per-call derived state: reference date, region tables, compiled patterns."""

    def __init__(self, rules: IdRules) -> None:
        self.rules = rules
        self.as_of = rules.as_of or date.today()
        self.regions = region_code_table(rules.region_codes_file)
        provinces = province_table(rules.region_codes_file).copy()
        provinces[[int(p) for p in rules.non_resident_prefixes]] = False
        self.resident_provinces = provinces
        self.denylist = BUILTIN_PLACEHOLDERS | rules.placeholder_numbers
        self.hmt_prefixes = np.array([int(p) for p in rules.hmt_permit_prefixes], dtype=np.int64)
        try:
            cutoff = self.as_of.replace(year=self.as_of.year - rules.max_plausible_age)
        except ValueError:  # 29 February
            cutoff = self.as_of.replace(year=self.as_of.year - rules.max_plausible_age, day=28)
        self.oldest_plausible = np.datetime64(cutoff, "D")
        self.seq_up = "1234567890" * 3
        self.seq_down = "9876543210" * 3

    @cached_property
    def passport_cn_re(self) -> re.Pattern[str]:
        return re.compile("|".join(f"(?:{p})" for p in self.rules.passport_cn_patterns))

    @cached_property
    def foreign_passport_re(self) -> re.Pattern[str]:
        lo, hi = self.rules.foreign_passport_min_len, self.rules.foreign_passport_max_len
        return re.compile(f"(?=[A-Z0-9]*[0-9])[A-Z0-9]{{{lo},{hi}}}")

    def looks_placeholder(self, number: str) -> bool:
        """Generic junk test: one digit repeated, or a keyboard run of digits."""
        digits = number if number.isascii() and number.isdigit() else _NON_DIGITS.sub("", number)
        if len(digits) >= self.rules.placeholder_min_digits and digits.count(digits[0]) == len(digits):
            return True
        return len(digits) >= self.rules.placeholder_min_sequence and (digits in self.seq_up or digits in self.seq_down)


def _mod112_common(b: _Batch, ctx: _Context, chk: Mod112Check, shape_ok: npt.NDArray[np.bool_]) -> Mask:
    """Apply checksum and date flags of a MOD 11-2 number with an accepted shape; returns the all-pass mask."""
    b.flags |= np.where(shape_ok & ~chk.checksum_ok, CHECKSUM, 0)
    b.flags |= np.where(shape_ok & ~chk.date_ok, BAD_DATE, 0)
    ok: npt.NDArray[np.bool_] = shape_ok & chk.checksum_ok & chk.date_ok
    b.flags |= np.where(ok & (chk.birth < ctx.oldest_plausible), OLD, 0)
    b.placeholder |= chk.same_digit_body | chk.sequential_body
    return ok


def _finish_mod112(b: _Batch, ctx: _Context, chk: Mod112Check, valid: npt.NDArray[np.bool_], gender: bool) -> None:
    b.valid = valid
    b.key = _keep(valid, b.number)
    b.birth = np.where(valid, chk.birth, np.datetime64("NaT"))
    if gender:
        b.gender = _keep(valid, np.where(chk.male, "M", "F").astype(object))


def _keep(mask: npt.NDArray[np.bool_], values: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """``values`` where ``mask``, else None (an object array)."""
    out = np.full(len(values), None, dtype=object)
    out[mask] = values[mask]
    return out


def _lengths(values: npt.NDArray[np.object_]) -> npt.NDArray[np.int64]:
    return np.fromiter(map(len, values), dtype=np.int64, count=len(values))


def _resident(values: npt.NDArray[np.object_], ctx: _Context, inferring: bool) -> _Batch:
    rules = ctx.rules
    b = _Batch.start(values)
    idx15 = np.flatnonzero(_lengths(values) == 15)
    legacy = [i for i in idx15 if values[i].isascii() and values[i].isdigit()]
    centenarian = [i for i in legacy if values[i][12:15] in rules.centenarian_sequences]
    upgrade = np.array(sorted(set(legacy) - set(centenarian)), dtype=np.int64)
    cand = values.copy()
    if len(upgrade):
        cand[upgrade] = np.array(upgrade_15_batch(list(values[upgrade])), dtype=object)
    chk = check_mod112(cand, ctx.as_of, rules.min_birth_year)
    wf = chk.well_formed
    b.flags |= np.where(wf, 0, FORMAT)
    region = np.clip(chk.region, 0, None)
    prov_ok = wf & ctx.resident_provinces[region // 10000]
    known = ctx.regions[region]
    b.flags |= np.where(wf & ~prov_ok, BAD_REGION, 0)
    b.flags |= np.where(prov_ok & ~known, REGION_UNKNOWN, 0)
    ok = _mod112_common(b, ctx, chk, prov_ok)
    if rules.region_unknown == "error":
        ok &= known
    b.number = np.where(ok, cand, values)  # an invalid legacy number keeps its 15 digits
    b.flags[upgrade] |= np.where(ok[upgrade], UPGRADED, 0)
    if len(upgrade):  # a 15-digit run of one digit gains "19" when upgraded
        b.placeholder[upgrade] |= [ctx.looks_placeholder(values[i]) for i in upgrade]
    _finish_mod112(b, ctx, chk, ok, gender=True)
    for i in centenarian:
        _centenarian(b, int(i), values[i], ctx)
    for i in np.flatnonzero(~wf):
        if b.number[i] is not None:
            b.placeholder[i] |= ctx.looks_placeholder(b.number[i])
    return b


def _centenarian(b: _Batch, i: int, s: str, ctx: _Context) -> None:
    """A 15-digit number with a centenarian sequence code: flagged, not upgraded, century unknown."""
    b.flags[i] = CENTENARIAN
    if not ctx.resident_provinces[int(s[:2])]:
        b.flags[i] |= BAD_REGION
        return
    if not ctx.regions[int(s[:6])]:
        b.flags[i] |= REGION_UNKNOWN
        if ctx.rules.region_unknown == "error":
            return
    yy, mm, dd = int(s[6:8]), int(s[8:10]), int(s[10:12])
    real = False
    for century in (1800, 1900):
        with contextlib.suppress(ValueError):
            real = real or date(century + yy, mm, dd) <= ctx.as_of
    if not real:
        b.flags[i] |= BAD_DATE
        return
    b.placeholder[i] = ctx.looks_placeholder(s)
    if ctx.rules.centenarian_legacy_valid:
        b.valid[i] = True
        b.key[i] = s


def _hmt_permit(values: npt.NDArray[np.object_], ctx: _Context, inferring: bool) -> _Batch:
    b = _Batch.start(values)
    chk = check_mod112(values, ctx.as_of, ctx.rules.min_birth_year)
    b.flags |= np.where(chk.well_formed, 0, FORMAT)
    prefix_ok = chk.well_formed & np.isin(chk.region, ctx.hmt_prefixes)
    b.flags |= np.where(chk.well_formed & ~prefix_ok, BAD_REGION, 0)
    _finish_mod112(b, ctx, chk, _mod112_common(b, ctx, chk, prefix_ok), gender=True)
    return b


_OLD_PR_RE = re.compile("[A-Z]{3}[0-9]{12}")


def _foreign_pr_card(values: npt.NDArray[np.object_], ctx: _Context, inferring: bool) -> _Batch:
    """2023 card: 9 + province (2) + nationality (3) + birth date + sequence + MOD 11-2.

    2017 card: 3 letters + 12 digits (check unverified, shape only).
    """
    b = _Batch.start(values)
    chk = check_mod112(values, ctx.as_of, ctx.rules.min_birth_year)
    new = chk.well_formed & (chk.region // 100000 == 9)
    old = np.fromiter((_OLD_PR_RE.fullmatch(v) is not None for v in values), dtype=np.bool_, count=len(values))
    b.flags |= np.where(new | old, 0, FORMAT)
    province = np.clip(chk.region // 1000 % 100, 0, 99)
    b.flags |= np.where(new & ~ctx.resident_provinces[province], REGION_UNKNOWN, 0)
    ok = _mod112_common(b, ctx, chk, new)
    _finish_mod112(b, ctx, chk, ok, gender=False)  # the card's sex encoding is unverified
    b.valid |= old
    b.key = _keep(b.valid, b.number)
    for i in np.flatnonzero(old):
        b.placeholder[i] = ctx.looks_placeholder(values[i])
    return b


def _pattern(
    values: npt.NDArray[np.object_],
    ctx: _Context,
    pattern: re.Pattern[str],
    key: Callable[[re.Match[str]], str],
    inferring: bool,
) -> _Batch:
    """Validate by a full-match regex; while inferring a type, only matches are examined further."""
    b = _Batch.start(values)
    matches = [pattern.fullmatch(v) for v in values]
    b.valid = np.array([m is not None for m in matches], dtype=np.bool_)
    b.flags = np.where(b.valid, 0, FORMAT)
    b.key = np.array([None if m is None else key(m) for m in matches], dtype=object)
    look = np.flatnonzero(b.valid) if inferring else range(len(values))
    b.placeholder[look] = [ctx.looks_placeholder(values[i]) for i in look]
    return b


def _whole(m: re.Match[str]) -> str:
    return m.group(0)


def _passport_cn(values: npt.NDArray[np.object_], ctx: _Context, inferring: bool) -> _Batch:
    return _pattern(values, ctx, ctx.passport_cn_re, _whole, inferring)


def _passport_foreign(values: npt.NDArray[np.object_], ctx: _Context, inferring: bool) -> _Batch:
    return _pattern(values, ctx, ctx.foreign_passport_re, _whole, inferring)


_NON_DIGITS = re.compile("[^0-9]+")
_HK_MACAU_RE = re.compile("([HM][0-9]{8})(?:[0-9]{2})?")
_TAIWAN_RE = re.compile(r"([0-9]{8})(?:[0-9]{2}(?:\([A-Z]\)|[A-Z])?)?")
_MILITARY_RE = re.compile(r"([\u4e00-\u9fff]*?)字?第?(?:NO\.?)?([0-9]{4,12})号?")


def _group1(m: re.Match[str]) -> str:
    return m.group(1)


def _hk_macau_permit(values: npt.NDArray[np.object_], ctx: _Context, inferring: bool) -> _Batch:
    return _pattern(values, ctx, _HK_MACAU_RE, _group1, inferring)


def _taiwan_permit(values: npt.NDArray[np.object_], ctx: _Context, inferring: bool) -> _Batch:
    return _pattern(values, ctx, _TAIWAN_RE, _group1, inferring)


def _military(m: re.Match[str]) -> str:
    return m.group(1)[:1] + m.group(2)


def _military_id(values: npt.NDArray[np.object_], ctx: _Context, inferring: bool) -> _Batch:
    b = _pattern(values, ctx, _MILITARY_RE, _military, inferring)
    if inferring:  # bare digits are only accepted when the source says it is a military ID
        bare = np.fromiter((v.isascii() for v in values), dtype=np.bool_, count=len(values))
        b.valid &= ~bare
        b.key = _keep(b.valid, b.key)
    return b


def _check_coded(
    values: npt.NDArray[np.object_], ctx: _Context, shape: re.Pattern[str], check: Callable[[str], str], body: int
) -> _Batch:
    """A code whose last character checks the ``body`` characters before it (USCC, organization code)."""
    b = _Batch.start(values)
    for i, v in enumerate(values):
        if not shape.fullmatch(v):
            b.flags[i] = FORMAT
        elif check(v[:body]) != v[body]:
            b.flags[i] = CHECKSUM
        else:
            b.valid[i] = True
            b.key[i] = v
        b.placeholder[i] = ctx.looks_placeholder(v)
    return b


def _uscc(values: npt.NDArray[np.object_], ctx: _Context, inferring: bool) -> _Batch:
    return _check_coded(values, ctx, _USCC_RE, uscc_check_char, 17)


def _org_code(values: npt.NDArray[np.object_], ctx: _Context, inferring: bool) -> _Batch:
    return _check_coded(values, ctx, _ORG_RE, org_code_check_char, 8)


def _unverifiable(values: npt.NDArray[np.object_], ctx: _Context, inferring: bool) -> _Batch:
    b = _Batch.start(values)
    b.flags[:] = UNVERIFIABLE
    return b


_Validator = Callable[[npt.NDArray[np.object_], _Context, bool], _Batch]
VALIDATORS: dict[IdType, _Validator] = {
    IdType.RESIDENT_ID: _resident,
    IdType.HMT_RESIDENCE_PERMIT: _hmt_permit,
    IdType.FOREIGN_PR_CARD: _foreign_pr_card,
    IdType.PASSPORT_CN: _passport_cn,
    IdType.PASSPORT_FOREIGN: _passport_foreign,
    IdType.HK_MACAU_PERMIT: _hk_macau_permit,
    IdType.TAIWAN_PERMIT: _taiwan_permit,
    IdType.MILITARY_ID: _military_id,
    IdType.USCC: _uscc,
    IdType.ORG_CODE: _org_code,
    IdType.OTHER: _unverifiable,
    IdType.UNKNOWN: _unverifiable,
}


# ---------------------------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------------------------


@dataclass
class _Distinct:
    """Results per distinct (declared type, raw number) pair."""

    id_type: npt.NDArray[np.object_]
    batch: _Batch

    def put(self, rows: npt.NDArray[np.int64], b: _Batch, id_type: str) -> None:
        self.id_type[rows] = id_type
        for name in ("number", "valid", "key", "birth", "gender", "flags", "placeholder"):
            getattr(self.batch, name)[rows] = getattr(b, name)


def _candidates(declared: IdType, rules: IdRules) -> tuple[IdType, ...]:
    if declared in _CORPORATE:
        order = rules.corporate_inference + rules.personal_inference
    elif declared in _OPEN:
        order = rules.personal_inference + rules.corporate_inference
    else:
        order = rules.personal_inference
    return tuple(t for t in order if t != declared)


def _declared_types(uniques: pd.Index) -> list[IdType]:
    known = {t.value for t in IdType}
    out = []
    for v in uniques:
        s = str(v).strip().upper() if isinstance(v, str) else ""
        out.append(IdType(s) if s in known else IdType.UNKNOWN)
    return out


def _validate_distinct(declared: npt.NDArray[np.object_], values: npt.NDArray[np.object_], ctx: _Context) -> _Distinct:
    missing = np.asarray(pd.isna(values) | (values == ""), dtype=np.bool_)
    values = np.where(missing, "", values).astype(object)
    res = _Distinct(id_type=declared.copy(), batch=_Batch.start(values))
    res.batch.number[missing] = None
    res.batch.flags[missing] = MISSING
    present = ~missing
    for t in pd.unique(declared[present]):
        rows = np.flatnonzero(present & (declared == t))
        res.put(rows, VALIDATORS[IdType(t)](values[rows], ctx, False), t)

    # Re-check the type from the number's shape where the declared type does not fit.
    pending = present & ~res.batch.valid
    for t in pd.unique(declared[pending]):
        declared_type = IdType(t)
        rows = np.flatnonzero(pending & (declared == t))
        mark = INFERRED if declared_type == IdType.UNKNOWN else CORRECTED
        for cand in _candidates(declared_type, ctx.rules):
            if not len(rows):
                break
            b = VALIDATORS[cand](values[rows], ctx, True)
            hit = b.valid
            if hit.any():
                b.flags |= mark
                res.put(rows[hit], _subset(b, hit), cand.value)
                rows = rows[~hit]

    has_number = pd.notna(res.batch.number)
    deny = pd.Series(res.batch.number).isin(ctx.denylist).to_numpy()
    res.batch.placeholder = (res.batch.placeholder | deny) & has_number
    res.batch.flags |= np.where(res.batch.placeholder, PLACEHOLDER, 0)
    return res


def _subset(b: _Batch, mask: npt.NDArray[np.bool_]) -> _Batch:
    return _Batch(
        number=b.number[mask],
        valid=b.valid[mask],
        key=b.key[mask],
        birth=b.birth[mask],
        gender=b.gender[mask],
        flags=b.flags[mask],
        placeholder=b.placeholder[mask],
    )


def flag_names(mask: int) -> list[str]:
    """Reason codes of an internal flag mask, in the order of :data:`FLAGS`."""
    return [name for i, name in enumerate(FLAGS) if mask >> i & 1]


def _clean_all(uniques: pd.Index, strip_separators: bool) -> npt.NDArray[np.object_]:
    out = np.empty(len(uniques), dtype=object)
    out[:] = [clean_id_text(v if isinstance(v, str) else str(v), strip_separators) for v in uniques]
    return out


def standardize_ids(
    id_type_declared: pd.Series,
    id_number_raw: pd.Series,
    config: IdRules | None = None,
) -> pd.DataFrame:
    """Validate and normalize identity documents; one output row per input row (same index).

    Columns: ``id_type`` (enum value after the shape re-check), ``id_number`` (normalized;
    resident IDs upgraded to 18 characters; null when missing), ``id_valid``,
    ``id_placeholder`` (denylisted or junk pattern), ``id_key`` (``TYPE:matchkey`` for a
    valid, non-placeholder number), ``id_birth_date`` (datetime64[s]), ``id_gender``
    (``M``/``F``/null) and ``id_flags`` (list of reason codes). Each distinct (type, number)
    pair is processed once. Numbers shared by many names are marked by :func:`mark_shared_ids`.
    """
    out, flags = id_columns(id_type_declared, id_number_raw, config)
    out["id_flags"] = flags.to_lists()  # each row owns its list
    return out


def id_columns(
    id_type_declared: pd.Series,
    id_number_raw: pd.Series,
    config: IdRules | None = None,
) -> tuple[pd.DataFrame, FlagCodes]:
    """:func:`standardize_ids` with the reason codes as :class:`FlagCodes` (no list per row)."""
    if len(id_type_declared) != len(id_number_raw) or not id_type_declared.index.equals(id_number_raw.index):
        raise MdmError("standardize_ids: id_type_declared and id_number_raw must be columns of the same frame")
    rules = config or IdRules()
    ctx = _Context(rules)
    n = len(id_number_raw)
    type_codes, type_uniques = pd.factorize(id_type_declared, use_na_sentinel=False)
    raw_codes, raw_uniques = pd.factorize(id_number_raw)  # -1 for null
    width = np.int64(len(raw_uniques) + 1)
    pair_codes, pair_uniques = pd.factorize(type_codes.astype(np.int64) * width + raw_codes + 1)
    pair_uniques = np.asarray(pair_uniques, dtype=np.int64)

    declared_by_code = np.array([t.value for t in _declared_types(pd.Index(type_uniques))], dtype=object)
    none = np.array([None], dtype=object)
    cleaned = np.concatenate([_clean_all(pd.Index(raw_uniques), rules.strip_separators), none])  # -1 -> None
    declared = declared_by_code[pair_uniques // width] if len(pair_uniques) else np.array([], dtype=object)
    values = cleaned[pair_uniques % width - 1] if len(pair_uniques) else np.array([], dtype=object)
    res = _validate_distinct(declared, values, ctx)
    b = res.batch

    keys = np.full(len(pair_uniques), None, dtype=object)
    linkable = np.flatnonzero(b.valid & ~b.placeholder)
    keys[linkable] = [f"{t}:{k}" for t, k in zip(res.id_type[linkable], b.key[linkable], strict=True)]
    combo_codes, combos = pd.factorize(b.flags)
    flags = FlagCodes(
        np.asarray(combo_codes, dtype=np.int64)[pair_codes], tuple(tuple(flag_names(int(m))) for m in combos)
    )

    out = pd.DataFrame(
        {
            "id_type": res.id_type[pair_codes],
            "id_number": b.number[pair_codes],
            "id_valid": b.valid[pair_codes],
            "id_placeholder": b.placeholder[pair_codes],
            "id_key": keys[pair_codes],
            "id_birth_date": b.birth[pair_codes].astype("datetime64[s]"),
            "id_gender": b.gender[pair_codes],
        },
        index=id_number_raw.index,
    )
    logger.info(
        "standardized %d ID values (%d distinct): %d valid, %d placeholder, %d type corrected",
        n,
        len(pair_uniques),
        int(out["id_valid"].sum()),
        int(out["id_placeholder"].sum()),
        int(((b.flags & (CORRECTED | INFERRED)) != 0)[pair_codes].sum()),
    )
    return out, flags


# ---------------------------------------------------------------------------------------------
# IDs shared by many different names
# ---------------------------------------------------------------------------------------------


def mark_shared_ids(ids: pd.DataFrame, name_key: pd.Series, config: IdRules | None = None) -> pd.DataFrame:
    """Return a copy of :func:`standardize_ids` output with IDs shared by many names marked as placeholders.

    Such rows get ``id_placeholder`` True, a null ``id_key`` and the flags ``ID_PLACEHOLDER`` and
    ``ID_SHARED_BY_NAMES``.
    """
    rules = config or IdRules()
    shared = shared_id_numbers(ids["id_key"], name_key, rules.max_names_per_id).to_numpy()
    out = ids.copy()
    if not shared.any():
        return out
    out["id_placeholder"] = out["id_placeholder"].to_numpy() | shared
    out.loc[shared, "id_key"] = None
    flags = out["id_flags"].to_numpy().copy()
    for i in np.flatnonzero(shared):
        row = [f for f in flags[i] if f not in ("ID_PLACEHOLDER", "ID_SHARED_BY_NAMES")]
        flags[i] = [*row, "ID_PLACEHOLDER", "ID_SHARED_BY_NAMES"]
    out["id_flags"] = flags
    logger.info("%d rows hold an ID shared by more than %d names", int(shared.sum()), rules.max_names_per_id)
    return out
