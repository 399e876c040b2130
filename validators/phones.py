"""Phone numbers: mobile and landline columns -> E.164 values, extension and reason codes.

Either column may hold a mobile, a landline, several numbers or junk: each number is
classified by what it is, not by the column it came from. Each distinct raw text is
parsed once; the common cases (a bare 11-digit mainland mobile, with or without +86,
spaces or dashes; an area code + subscriber number) are recognized for all distinct
texts at once by :mod:`validators.phone_fast` and never reach the per-value parser or
``phonenumbers``. The most common row shapes (one plain mobile and nothing else, a
plain mobile beside a plain landline) are filled in without per-row Python.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
import phonenumbers
from phonenumbers import PhoneNumberType

from validators.contact_common import as_text, combine_codes, factorize_text, nfkc
from validators.flag_codes import FlagCodes
from validators.phone_fast import country_code_mobiles, fast_text, plain_landlines, plain_mobile_e164
from validators.phone_types import UNSURE, classify_cn

log = logging.getLogger(__name__)

# Valid mainland mobile numbers according to phonenumbers (see docs/chinese-customer-data.md §6).
MOBILE_PATTERN = r"1(?:610\d|740[0-5])\d{6}|1(?:[38]\d|4[57]|[59][0-35-9]|6[25-7]|7[0-35-8])\d{8}"

PHONE_INVALID = "PHONE_INVALID"
PHONE_EXTENSION_SPLIT = "PHONE_EXTENSION_SPLIT"
PHONE_LANDLINE_IN_MOBILE = "PHONE_LANDLINE_IN_MOBILE"
PHONE_MOBILE_IN_PHONE = "PHONE_MOBILE_IN_PHONE"
PHONE_IOT = "PHONE_IOT"
PHONE_SERVICE_NUMBER = "PHONE_SERVICE_NUMBER"
PHONE_FOREIGN = "PHONE_FOREIGN"

Kind = Literal["mobile", "landline", "service", "foreign", "iot"]

OUTPUT_COLUMNS = ("mobile", "landline", "phones", "phone_ext", "phone_flags")


@dataclass(frozen=True)
class PhoneRules:
    """Policy of the phone normalizer."""

    region: str = "CN"
    # IoT / data-only ranges (140-144, 146, 148, 149 and the 13-digit 1064x numbers) are not personal phones.
    iot_prefixes: tuple[str, ...] = ("140", "141", "142", "143", "144", "146", "148", "149", "1064")
    # "reject": flag PHONE_IOT and drop the number; "keep": flag it and keep it in ``phones`` (never as ``mobile``).
    iot_policy: Literal["reject", "keep"] = "reject"
    # 400/800 and other shared numbers: flagged PHONE_SERVICE_NUMBER; kept in ``phones`` only when True.
    keep_service_numbers: bool = False
    # Foreign numbers (+852 ..., +1 ...): flagged PHONE_FOREIGN; kept in ``phones`` when True.
    keep_foreign_numbers: bool = True
    max_extension_digits: int = 6
    max_numbers_per_field: int = 4
    max_field_chars: int = 120
    separators: str = r"[/,;|、，；]|\s{2,}|或"
    extension_markers: tuple[str, ...] = field(default=("转", "轉", "分机", "ext.", "ext", "extension", "x", "#"))


DEFAULT_RULES = PhoneRules()


class PhoneNumber(NamedTuple):
    """One valid number found in a field."""

    e164: str
    kind: Kind
    ext: str | None


class FieldResult(NamedTuple):
    """Everything found in one raw phone field."""

    numbers: tuple[PhoneNumber, ...]
    flags: frozenset[str]


EMPTY_RESULT = FieldResult((), frozenset())

_SEPARATOR_CHARS = re.compile(r"[\s()\[\]{}.\-_~]+")
_MOBILE_RE = re.compile(rf"(?:{MOBILE_PATTERN})")
_FAST_LOOSE_RE = re.compile(r"^\s*(?:\+\s*86|0086|\(\+?86\))?[\s\-]*(1\d{2})[\s\-]?(\d{4})[\s\-]?(\d{4})\s*$")

_CN_TYPES: dict[int, Kind] = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "landline",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "landline",
}


@dataclass(frozen=True)
class _Compiled:
    split_re: re.Pattern[str]
    ext_re: re.Pattern[str]


def _compile(rules: PhoneRules) -> _Compiled:
    markers = "|".join(re.escape(m) for m in sorted(rules.extension_markers, key=len, reverse=True))
    ext_re = re.compile(rf"^(.*?\d.*?)\s*(?:{markers})\s*[:.]?\s*(\d{{1,{rules.max_extension_digits}}})\s*$", re.I)
    return _Compiled(re.compile(rules.separators), ext_re)


def _classify(candidate: str, region: str, rules: PhoneRules) -> PhoneNumber | None:
    """Parse one cleaned candidate with phonenumbers; None when not a valid number."""
    if region == "CN":
        decided = classify_cn(candidate)  # plain mainland shapes, read from the metadata directly
        if decided is None:
            return None
        if decided is not UNSURE:
            e164, kind = decided
            return PhoneNumber(e164, kind, None)  # type: ignore[arg-type]
    try:
        parsed = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if parsed.country_code != 86:
        return PhoneNumber(e164, "foreign", None)
    return PhoneNumber(e164, _CN_TYPES.get(phonenumbers.number_type(parsed), "service"), None)


def _parse_piece(piece: str, rules: PhoneRules, compiled: _Compiled) -> tuple[PhoneNumber | None, set[str]]:
    flags: set[str] = set()
    ext: str | None = None
    m = compiled.ext_re.match(piece)
    if m:
        piece, ext = m.group(1), m.group(2)
    cleaned = _SEPARATOR_CHARS.sub("-", piece).strip("-")
    if not cleaned or not re.fullmatch(r"\+?-?[\d-]+", cleaned):
        return None, {PHONE_INVALID}
    plus = cleaned.startswith("+")
    groups = [g for g in cleaned.lstrip("+").split("-") if g]
    digits = "".join(groups)
    international = plus
    if digits.startswith("0086"):
        digits, international = digits[4:], True
        groups[0] = groups[0][4:]
    elif plus and digits.startswith("86"):
        groups[0] = groups[0][2:]
        digits = digits[2:]
    elif plus:
        foreign = _classify("+" + digits, rules.region, rules)
        if foreign is None:
            return None, {PHONE_INVALID}
        return foreign._replace(ext=ext), {PHONE_FOREIGN} | ({PHONE_EXTENSION_SPLIT} if ext else set())
    elif digits.startswith("86") and (groups[0] == "86" or (len(digits) == 13 and digits[2] == "1")):
        digits, international = digits[2:], True
        groups[0] = groups[0][2:]
    groups = [g for g in groups if g]
    if international and digits.startswith("0"):
        digits = digits[1:]  # "+86 (0)10 ..." written with the trunk zero
    if digits.startswith(rules.iot_prefixes) and len(digits) in (11, 13):
        return PhoneNumber("+86" + digits, "iot", None), {PHONE_IOT}
    if len(digits) == 11 and _MOBILE_RE.fullmatch(digits):
        number: PhoneNumber | None = PhoneNumber("+86" + digits, "mobile", None)
    else:
        prefix = "+86" if international else ""
        number = _classify(prefix + digits, rules.region, rules)
        if number is None and ext is None and len(groups) >= 3 and len(groups[-1]) <= rules.max_extension_digits:
            # 0755-1234567-8001: the trailing group is an extension when the rest is a valid number
            trimmed = _classify(prefix + "".join(groups[:-1]), rules.region, rules)
            if trimmed is not None and trimmed.kind == "landline":
                number, ext = trimmed, groups[-1]
    if number is None:
        return None, {PHONE_INVALID}
    if ext:
        flags.add(PHONE_EXTENSION_SPLIT)
    if number.kind == "service":
        flags.add(PHONE_SERVICE_NUMBER)
    if number.kind == "foreign":
        flags.add(PHONE_FOREIGN)
    return number._replace(ext=ext), flags


def parse_phone_field(text: str | None, config: PhoneRules | None = None) -> FieldResult:
    """Every number in one raw field (valid ones kept, in order) and the field's reason codes.

    Pure and total: never raises. Used once per distinct raw value by :func:`standardize_phones`.
    """
    rules = config or DEFAULT_RULES
    raw = as_text(text)
    if raw is None:
        return EMPTY_RESULT
    if len(raw) > rules.max_field_chars:
        return FieldResult((), frozenset({PHONE_INVALID}))
    return _parse_field(nfkc(raw).strip(), rules, _compiled_for(rules))


_COMPILED_CACHE: dict[PhoneRules, _Compiled] = {}


def _compiled_for(rules: PhoneRules) -> _Compiled:
    compiled = _COMPILED_CACHE.get(rules)
    if compiled is None:
        compiled = _COMPILED_CACHE[rules] = _compile(rules)
    return compiled


def _parse_field(text: str, rules: PhoneRules, compiled: _Compiled) -> FieldResult:
    if not text:
        return EMPTY_RESULT
    numbers: list[PhoneNumber] = []
    flags: set[str] = set()
    pieces = [p.strip() for p in compiled.split_re.split(text) if p and p.strip()]
    if len(pieces) > rules.max_numbers_per_field:
        flags.add(PHONE_INVALID)
        pieces = pieces[: rules.max_numbers_per_field]
    for piece in pieces:
        number, piece_flags = _parse_piece(piece, rules, compiled)
        flags |= piece_flags
        if number is not None and number.e164 not in {n.e164 for n in numbers}:
            numbers.append(number)
    return FieldResult(tuple(numbers), frozenset(flags))


def _parse_distinct(uniques: np.ndarray, rules: PhoneRules) -> list[FieldResult]:
    """Parse distinct raw values: fast paths for plain mobiles and landlines, the full parser for the rest."""
    if len(uniques) == 0:
        return []
    text = pd.Series(uniques, dtype=object).map(as_text)
    text = text.str.normalize("NFKC").where(text.notna(), None)  # full-width digits reach the fast paths too
    compiled = _compiled_for(rules)
    results: list[FieldResult] = [EMPTY_RESULT] * len(uniques)
    too_long = FieldResult((), frozenset({PHONE_INVALID}))
    cn = rules.region == "CN"
    for i, t in enumerate(text.to_numpy()):
        if t is None:
            continue
        if len(t) > rules.max_field_chars:
            results[i] = too_long
            continue
        m = _FAST_LOOSE_RE.match(t)
        if m:
            digits = m[1] + m[2] + m[3]
            if _MOBILE_RE.fullmatch(digits) and not digits.startswith(rules.iot_prefixes):
                results[i] = FieldResult((PhoneNumber("+86" + digits, "mobile", None),), frozenset())
                continue
        if cn and (m := _FAST_LANDLINE_RE.match(t)):
            fast = _landline_result((m[1] or m[2]) + m[3], rules)
            if fast is not None:
                results[i] = fast
                continue
        results[i] = _parse_field(nfkc(t).strip(), rules, compiled)
    return results


# area code (optionally in parentheses) and subscriber number: 0755-12345678, (010)12345678, 0931 1234567
_FAST_LANDLINE_RE = re.compile(r"^ *(?:\((0[1-9]\d{1,2})\)|(0[1-9]\d{1,2}))[ \-]?(\d{7,8}) *$")
_LANDLINE_INVALID = FieldResult((), frozenset({PHONE_INVALID}))


def _landline_result(digits: str, rules: PhoneRules) -> FieldResult | None:
    """What :func:`_parse_field` gives for an area code + subscriber number in one or two groups; None: unsure."""
    if digits.startswith(rules.iot_prefixes):
        return None
    return _decided_landline(classify_cn(digits))


def _decided_landline(decided: tuple[str, str] | None) -> FieldResult | None:
    """The field result of a :func:`classify_cn` answer on a landline-shaped field; None when it is UNSURE."""
    if decided is UNSURE:
        return None
    if decided is None:
        return _LANDLINE_INVALID
    e164, kind = decided
    flags = frozenset({PHONE_SERVICE_NUMBER}) if kind == "service" else frozenset()
    return FieldResult((PhoneNumber(e164, kind, None),), flags)  # type: ignore[arg-type]


def _kept(number: PhoneNumber, rules: PhoneRules) -> bool:
    if number.kind in ("mobile", "landline"):
        return True
    if number.kind == "service":
        return rules.keep_service_numbers
    if number.kind == "foreign":
        return rules.keep_foreign_numbers
    return rules.iot_policy == "keep"


def _combine(m: FieldResult, p: FieldResult, rules: PhoneRules) -> tuple[object, ...]:
    if not p.numbers and not p.flags and len(m.numbers) == 1 and m.numbers[0].kind == "mobile":
        return m.numbers[0].e164, None, [m.numbers[0].e164], None, sorted(m.flags)  # the common case
    mobile: str | None = None
    landline_number: PhoneNumber | None = None
    phones: list[str] = []
    flags = set(m.flags) | set(p.flags)
    for n in m.numbers:
        if n.kind == "landline":
            flags.add(PHONE_LANDLINE_IN_MOBILE)
    for n in p.numbers:
        if n.kind == "mobile":
            flags.add(PHONE_MOBILE_IN_PHONE)
        elif n.kind == "landline" and landline_number is None:
            landline_number = n
    ext: str | None = None
    for n in (*m.numbers, *p.numbers):
        if n.kind == "mobile" and mobile is None:
            mobile = n.e164
        elif n.kind == "landline" and landline_number is None:
            landline_number = n
        if _kept(n, rules) and n.e164 not in phones:
            phones.append(n.e164)
    if landline_number is not None and landline_number.ext:
        ext = landline_number.ext
    else:
        ext = next((n.ext for n in (*p.numbers, *m.numbers) if n.ext), None)
    landline = landline_number.e164 if landline_number is not None else None
    return mobile, landline, phones, ext, sorted(flags)


def _is_plain_mobile(r: FieldResult) -> bool:
    return len(r.numbers) == 1 and r.numbers[0].kind == "mobile"


class _Distinct(NamedTuple):
    """Parse results of the distinct raw texts of both columns."""

    fast: np.ndarray  # E.164 where a vectorized mobile path decided (one plain mobile, no flags), else None
    landline: np.ndarray  # E.164 where the landline fast path found one plain landline (no flags), else None
    slow: np.ndarray  # positions parsed one by one (landline fast-path results are never one mobile, never blank)
    results: list[FieldResult | None]  # the parsers' result where ``fast`` is None

    def result(self, i: int) -> FieldResult:
        r = self.results[i]
        return r if r is not None else FieldResult((PhoneNumber(self.fast[i], "mobile", None),), frozenset())


def _parse_all(uniques: np.ndarray, rules: PhoneRules) -> _Distinct:
    """Every distinct text: the vectorized fast paths first, the per-value parser for the rest."""
    text = fast_text(uniques)
    fast = plain_mobile_e164(text, len(uniques), MOBILE_PATTERN, rules.iot_prefixes, rules.max_field_chars)
    landlines = np.full(len(uniques), None, dtype=object)
    results: list[FieldResult | None] = [None] * len(uniques)
    undecided = np.ones(len(uniques), dtype=bool)
    undecided[pd.notna(fast)] = False
    if rules.max_numbers_per_field >= 1:
        compiled = _compiled_for(rules)
        rest = text.subset(undecided[text.positions])
        for i, e164, written in country_code_mobiles(rest, MOBILE_PATTERN, rules.iot_prefixes, rules.max_field_chars):
            piece = written.strip()  # what _parse_field gets; one piece, no extension: one plain mobile
            if compiled.split_re.search(piece) is None and compiled.ext_re.match(piece) is None:
                fast[i] = e164
                undecided[i] = False
    if rules.region == "CN":
        rest = text.subset(undecided[text.positions])
        found, answers = plain_landlines(rest, rules.iot_prefixes, rules.max_field_chars)
        for i, answer in zip(found.tolist(), answers, strict=True):
            landline = _decided_landline(answer)
            if landline is not None:
                results[i] = landline
                undecided[i] = False
                if landline.numbers and landline.numbers[0].kind == "landline":
                    landlines[i] = landline.numbers[0].e164
    todo = np.flatnonzero(undecided)
    for i, r in zip(todo.tolist(), _parse_distinct(uniques[todo], rules), strict=True):
        results[i] = r
    return _Distinct(fast, landlines, todo, results)


def _pair_columns(
    distinct: _Distinct, pair_m: np.ndarray, pair_p: np.ndarray, rules: PhoneRules, combos: dict[tuple[str, ...], int]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Output values and flag-combination codes of distinct (mobile text, other text) pairs (-1: missing).

    A plain mobile beside a plain landline (most pairs) is filled in directly with what
    :func:`_combine` gives for it; every other pair goes through :func:`_combine`.
    """
    k = len(pair_m)
    columns = {name: np.full(k, None, dtype=object) for name in OUTPUT_COLUMNS[:-1]}
    flags = np.zeros(k, dtype=np.int64)  # code 0: no reason code
    none = np.array([None], dtype=object)
    mobile = np.append(distinct.fast, none)[pair_m]
    landline = np.append(distinct.landline, none)[pair_p]
    simple = pd.notna(mobile) & pd.notna(landline)
    if simple.any():
        m, f = mobile[simple], landline[simple]
        columns["mobile"][simple] = m
        columns["landline"][simple] = f
        both = ([a, b] if a != b else [a] for a, b in zip(m.tolist(), f.tolist(), strict=True))
        columns["phones"][simple] = np.fromiter(both, dtype=object, count=len(m))
    others = np.flatnonzero(~simple)
    result = distinct.result
    combined = [
        _combine(result(a) if a >= 0 else EMPTY_RESULT, result(b) if b >= 0 else EMPTY_RESULT, rules)
        for a, b in zip(pair_m[others].tolist(), pair_p[others].tolist(), strict=True)
    ]
    for j, name in enumerate(OUTPUT_COLUMNS[:-1]):
        columns[name][others] = np.fromiter((c[j] for c in combined), dtype=object, count=len(combined))
    flags[others] = np.fromiter(
        (combos.setdefault(tuple(c[-1]), len(combos)) for c in combined),  # type: ignore[arg-type]
        dtype=np.int64,
        count=len(combined),
    )
    return columns, flags


def phone_columns(
    mobile_raw: pd.Series, phone_raw: pd.Series | None = None, config: PhoneRules | None = None
) -> tuple[pd.DataFrame, FlagCodes]:
    """:func:`standardize_phones` with the reason codes as :class:`FlagCodes` (no list per row)."""
    rules = config or DEFAULT_RULES
    if phone_raw is None:
        phone_raw = pd.Series(None, index=mobile_raw.index, dtype=object)
    if len(phone_raw) != len(mobile_raw):
        raise ValueError("mobile_raw and phone_raw must have the same length (columns of one table)")
    m_codes, m_uniques = factorize_text(mobile_raw)
    p_codes, p_uniques = factorize_text(phone_raw)
    # one code space for the distinct texts of both columns; -1 (missing) stays -1
    u_codes, uniques = pd.factorize(np.concatenate([m_uniques, p_uniques]))
    u_codes = np.asarray(u_codes, dtype=np.int64)
    rm = np.append(u_codes[: len(m_uniques)], -1)[m_codes]
    rp = np.append(u_codes[len(m_uniques) :], -1)[p_codes]
    distinct = _parse_all(np.asarray(uniques, dtype=object), rules)

    # Per distinct text: is it exactly one mobile (then its E.164 and reason codes), or blank?
    n_u = len(uniques)
    plain = np.append(pd.notna(distinct.fast), False)  # trailing slot: missing (code -1)
    blank = np.zeros(n_u + 1, dtype=bool)
    blank[-1] = True
    e164 = np.append(distinct.fast, np.array([None], dtype=object))
    combos: dict[tuple[str, ...], int] = {(): 0}
    plain_flags = np.zeros(n_u + 1, dtype=np.int64)
    for i in distinct.slow.tolist():
        r = distinct.results[i]
        assert r is not None
        if _is_plain_mobile(r):
            plain[i] = True
            e164[i] = r.numbers[0].e164
            plain_flags[i] = combos.setdefault(tuple(sorted(r.flags)), len(combos))
        elif not r.numbers and not r.flags:
            blank[i] = True

    # The common row (one plain mobile, nothing in the other column) depends on the mobile alone:
    # it is broadcast from the distinct texts; only the other rows go through distinct pairs.
    n = len(m_codes)
    out: dict[str, np.ndarray] = {name: np.full(n, None, dtype=object) for name in OUTPUT_COLUMNS[:-1]}
    flag_codes = np.zeros(n, dtype=np.int64)
    plain_rows = plain[rm] & blank[rp]
    if plain_rows.any():
        codes = rm[plain_rows]
        # one list per distinct mobile, shared by its rows (fromiter keeps each list a single object)
        phones = np.fromiter(([e] if e is not None else None for e in e164[:-1].tolist()), dtype=object, count=n_u)
        out["mobile"][plain_rows] = e164[codes]
        out["phones"][plain_rows] = phones[codes]
        flag_codes[plain_rows] = plain_flags[codes]
    rest = ~plain_rows
    n_pairs = 0
    if rest.any():
        row_codes, pair_m, pair_p = combine_codes(rm[rest], rp[rest], n_u)
        pair_values, pair_flags = _pair_columns(distinct, pair_m, pair_p, rules, combos)
        for name, values in pair_values.items():
            out[name][rest] = values[row_codes]
        flag_codes[rest] = pair_flags[row_codes]
        n_pairs = len(pair_m)
    frame = pd.DataFrame(out, index=mobile_raw.index)
    log.debug("phones: %d rows, %d distinct values, %d distinct other pairs", n, n_u, n_pairs)
    return frame, FlagCodes(flag_codes, tuple(combos))


def standardize_phones(
    mobile_raw: pd.Series, phone_raw: pd.Series | None = None, config: PhoneRules | None = None
) -> pd.DataFrame:
    """Normalize the mobile and the other-phone columns of a table.

    Returns a DataFrame aligned to ``mobile_raw``'s index with columns ``mobile`` (E.164
    of a valid mainland mobile), ``landline`` (E.164 of the first valid landline),
    ``phones`` (every kept valid number, E.164, deduplicated, extensions dropped),
    ``phone_ext`` and ``phone_flags`` (sorted reason codes). Never raises on junk input.
    """
    frame, flags = phone_columns(mobile_raw, phone_raw, config)
    frame["phone_flags"] = flags.to_lists()
    return frame
