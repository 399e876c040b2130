"""Mainland numbers typed straight from phonenumbers' metadata, without ``phonenumbers.parse``.

``parse`` + ``is_valid_number`` + ``number_type`` cost about 100 µs per number. For a plain
digit string whose national number is already known (a trunk-prefixed ``0755...`` landline,
or ``+86`` followed by the national number), the outcome is decided by the region's metadata
alone: the number is valid when it matches the general description, and its type is the
first description, in phonenumbers' own order, whose possible lengths and pattern match it.
:func:`classify_cn` applies that rule with the patterns compiled once, and answers
``UNSURE`` for every shape where ``parse`` could do something else (carrier codes,
international prefixes, local-only lengths, non-ASCII digits); callers then use
``phonenumbers`` itself. ``tests/test_phones.py`` checks the two agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import PhoneMetadata, PhoneNumberType

UNSURE: Final[tuple[str, str]] = ("", "unsure")
"""Returned by :func:`classify_cn` when phonenumbers must decide (compare with ``is``)."""

_KINDS: dict[int, str] = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "landline",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "landline",
}

# phonenumbers' _number_type_helper order (after the general description)
_TYPE_ORDER: tuple[tuple[str, int], ...] = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
)


@dataclass(frozen=True)
class _Desc:
    lengths: frozenset[int]
    pattern: re.Pattern[str] | None

    def matches(self, national: str) -> bool:
        if self.pattern is None or (self.lengths and len(national) not in self.lengths):
            return False
        return self.pattern.fullmatch(national) is not None

    def matches_all(self, nationals: pa.Array, lengths: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """:meth:`matches` of each value of an array of ASCII digit strings (one RE2 pass, same full match)."""
        if self.pattern is None:
            return np.zeros(len(nationals), dtype=bool)
        ok = np.isin(lengths, sorted(self.lengths)) if self.lengths else np.ones(len(nationals), dtype=bool)
        hit = pc.match_substring_regex(nationals, f"^(?:{self.pattern.pattern})$").to_numpy(zero_copy_only=False)
        return ok & hit


def _desc(desc: object) -> _Desc | None:
    if desc is None:
        return None
    pattern = getattr(desc, "national_number_pattern", None)
    lengths = frozenset(getattr(desc, "possible_length", ()) or ())
    return _Desc(lengths, re.compile(pattern) if pattern else None)


@dataclass(frozen=True)
class _RegionTypes:
    general: _Desc
    ordered: tuple[tuple[_Desc, int], ...]
    fixed_line: _Desc | None
    mobile: _Desc | None
    same_mobile_and_fixed: bool
    possible_lengths: frozenset[int]
    local_only_lengths: frozenset[int]

    def number_type(self, national: str) -> int:
        """phonenumbers' ``_number_type_helper`` on a national significant number."""
        if not self.general.matches(national):
            return PhoneNumberType.UNKNOWN
        for desc, kind in self.ordered:
            if desc.matches(national):
                return kind
        if self.fixed_line is not None and self.fixed_line.matches(national):
            if self.same_mobile_and_fixed or (self.mobile is not None and self.mobile.matches(national)):
                return PhoneNumberType.FIXED_LINE_OR_MOBILE
            return PhoneNumberType.FIXED_LINE
        if not self.same_mobile_and_fixed and self.mobile is not None and self.mobile.matches(national):
            return PhoneNumberType.MOBILE
        return PhoneNumberType.UNKNOWN

    def number_types(self, nationals: pa.Array) -> npt.NDArray[np.int64]:
        """:meth:`number_type` of each value of an array of ASCII digit strings (no nulls)."""
        lengths = pc.utf8_length(nationals).to_numpy(zero_copy_only=False)
        out = np.full(len(nationals), PhoneNumberType.UNKNOWN, dtype=np.int64)
        todo = self.general.matches_all(nationals, lengths)
        for desc, kind in self.ordered:
            hit = todo & desc.matches_all(nationals, lengths)
            out[hit] = kind
            todo &= ~hit
        no = np.zeros(len(nationals), dtype=bool)
        mobile = self.mobile.matches_all(nationals, lengths) if self.mobile is not None else no
        if self.fixed_line is not None:
            fixed = todo & self.fixed_line.matches_all(nationals, lengths)
            both = fixed & (mobile | self.same_mobile_and_fixed)
            out[both] = PhoneNumberType.FIXED_LINE_OR_MOBILE
            out[fixed & ~both] = PhoneNumberType.FIXED_LINE
            todo &= ~fixed
        if not self.same_mobile_and_fixed:
            out[todo & mobile] = PhoneNumberType.MOBILE
        return out


@lru_cache(maxsize=4)
def _region_types(region: str) -> _RegionTypes:
    md = PhoneMetadata.metadata_for_region(region)
    if md is None:
        raise ValueError(f"phonenumbers has no metadata for region {region!r}")
    general_desc = md.general_desc
    general = _desc(general_desc)
    assert general_desc is not None and general is not None
    ordered = tuple((d, kind) for name, kind in _TYPE_ORDER if (d := _desc(getattr(md, name, None))) is not None)
    return _RegionTypes(
        general=general,
        ordered=ordered,
        fixed_line=_desc(md.fixed_line),
        mobile=_desc(md.mobile),
        same_mobile_and_fixed=bool(md.same_mobile_and_fixed_line_pattern),
        possible_lengths=frozenset(general_desc.possible_length or ()),
        local_only_lengths=frozenset(general_desc.possible_length_local_only or ()),
    )


def _is_ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def classify_cn(candidate: str) -> tuple[str, str] | None:
    """``(e164, kind)`` of a valid mainland number, None when invalid, :data:`UNSURE` otherwise.

    ``candidate`` is what the phone parser hands to phonenumbers with region CN: digits,
    optionally after ``+``. Only two shapes are decided here, both checked against
    phonenumbers (``kind`` is ``mobile``, ``landline`` or ``service``):

    * ``0`` + national number (national number not starting with ``0``; a length
      phonenumbers treats as possible and not local-only): the trunk zero is dropped;
    * ``+86`` + national number starting with 2-9 or ``10`` (no carrier code can be read).
    """
    types = _region_types("CN")
    if candidate.startswith("+86"):
        national = candidate[3:]
        if not _is_ascii_digits(national) or not (national[0] in "23456789" or national.startswith("10")):
            return UNSURE
        if not 2 <= len(national) <= 17:
            return None
    elif candidate.startswith("0") and len(candidate) > 2 and candidate[1] != "0" and _is_ascii_digits(candidate):
        national = candidate[1:]
        if len(national) not in types.possible_lengths or len(national) in types.local_only_lengths:
            return UNSURE
    else:
        return UNSURE
    kind = types.number_type(national)
    if kind == PhoneNumberType.UNKNOWN:
        return None
    return "+86" + national, _KINDS.get(kind, "service")


def classify_cn_trunk(candidates: pa.Array) -> list[tuple[str, str] | None]:
    """:func:`classify_cn` of many ``0`` + national number candidates at once.

    Every candidate must be ASCII digits, at least 3 long, with a second digit other than 0
    (the first shape of :func:`classify_cn`); the answers are the same, :data:`UNSURE` included.
    """
    types = _region_types("CN")
    nationals = pc.utf8_slice_codeunits(candidates, 1)
    lengths = pc.utf8_length(nationals).to_numpy(zero_copy_only=False)
    possible = np.isin(lengths, sorted(types.possible_lengths)) & ~np.isin(lengths, sorted(types.local_only_lengths))
    kinds = types.number_types(nationals)
    out: list[tuple[str, str] | None] = []
    for national, ok, kind in zip(nationals.to_pylist(), possible.tolist(), kinds.tolist(), strict=True):
        if not ok:
            out.append(UNSURE)
        elif kind == PhoneNumberType.UNKNOWN:
            out.append(None)
        else:
            out.append(("+86" + national, _KINDS.get(kind, "service")))
    return out
