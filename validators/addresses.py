"""Addresses: raw text -> normalized text, administrative levels, adcode and remainder slots.

Each distinct address is handled once: :func:`normalize_address_text` (NFKC, punctuation
and spacing), :func:`validators.address_regions.resolve_region` (province / city /
district through an ambiguity-guarded Aho-Corasick gazetteer) and
:func:`validators.address_slots.parse_slots` (road, house number, building, unit, room).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from validators.address_regions import EMPTY_REGION, Region, RegionMemo, RegionRules, resolve_region
from validators.address_slots import EMPTY_SLOTS, Slots, parse_slots
from validators.contact_common import as_text, broadcast, factorize_text, nfkc

log = logging.getLogger(__name__)

ADDRESS_AMBIGUOUS = "ADDRESS_AMBIGUOUS"
ADDRESS_UNPARSED = "ADDRESS_UNPARSED"
ADDRESS_TOO_LONG = "ADDRESS_TOO_LONG"

OUTPUT_COLUMNS = (
    "address_norm",
    "province",
    "city",
    "district",
    "adcode",
    "road",
    "house_no",
    "building",
    "unit",
    "room",
    "address_flags",
)


@dataclass(frozen=True)
class AddressRules:
    """Policy of the address normalizer."""

    region: RegionRules = field(default_factory=RegionRules)
    max_chars: int = 200  # longer texts are normalized but not parsed (ADDRESS_TOO_LONG)


_PUNCT_MAP = str.maketrans(
    {
        "、": ",",
        ";": ",",
        "，": ",",
        "。": ",",
        "．": ".",
        "【": "(",
        "】": ")",
        "〔": "(",
        "〕": ")",
        "「": "(",
        "」": ")",
        "《": "(",
        "》": ")",
        "\u00d7": "x",
        "\u00b7": "·",
        "\u2022": "·",
        "\u30fb": "·",
        "\uff65": "·",
        "\u2027": "·",
        "\u201c": '"',
        "\u201d": '"',
        "\u2018": "'",
        "\u2019": "'",
    }
)
_PUNCT_RE = re.compile("[" + "".join(re.escape(chr(c)) for c in _PUNCT_MAP) + "]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPACE = re.compile(r"\s+")
_SPACE_NEAR_WIDE = re.compile(r"\s+(?=[^\x00-\x7f])|(?<=[^\x00-\x7f])\s+")
_SPACE_NEAR_PUNCT = re.compile(r"\s*([,#()\-/])\s*")
_REPEAT_COMMA = re.compile(r",{2,}")
_EDGE = " ,.;:-"
_NEEDS_SPACING = re.compile(r"[\s\x00-\x1f\x7f]")
_LOWER_RE = re.compile("[a-z]")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_PARSE_DROP = re.compile(r"[\s,()\"'·]")
# a character that some step of _normalize_once after NFKC would change: punctuation, spacing, a-z
_ANY_WORK = re.compile("[" + "".join(re.escape(chr(c)) for c in _PUNCT_MAP) + r"\s\x00-\x1f\x7fa-z]")


def normalize_address_text(text: str) -> str:
    """NFKC, full-width -> half-width, unified punctuation, spaces kept only between Latin words. Idempotent."""
    out = _normalize_once(text)
    for _ in range(3):  # removing a space can expose a new NFKC composition (A + U+0301): repeat until stable
        if unicodedata.is_normalized("NFKC", out):
            break
        out = _normalize_once(out)
    return out


def _normalize_once(text: str) -> str:
    out = nfkc(text)
    if not _ANY_WORK.search(out) and ",," not in out:
        return out.strip(_EDGE)  # the common case: none of the steps below would change anything
    if _PUNCT_RE.search(out):
        out = out.translate(_PUNCT_MAP)
    if _NEEDS_SPACING.search(out):
        out = _CONTROL.sub(" ", out)
        out = _SPACE.sub(" ", out)
        out = _SPACE_NEAR_WIDE.sub("", out)
        out = _SPACE_NEAR_PUNCT.sub(r"\1", out)
    if ",," in out:
        out = _REPEAT_COMMA.sub(",", out)
    out = out.strip(_EDGE)
    return out.translate(_UPPER) if _LOWER_RE.search(out) else out


def parse_address(text: str | None, config: AddressRules | None = None) -> tuple[object, ...]:
    """One raw address to the output columns' values (in :data:`OUTPUT_COLUMNS` order). Never raises."""
    rules = config or AddressRules()
    return _parse(text, rules, lambda compact: resolve_region(compact, rules.region))


def _parse(text: object, rules: AddressRules, region_of: Callable[[str], Region]) -> tuple[object, ...]:
    raw = as_text(text)
    if raw is None:
        return (None, *([None] * 9), [])
    norm = normalize_address_text(raw)
    if not norm:
        return (None, *([None] * 9), [])
    if len(norm) > rules.max_chars:
        return (norm, *([None] * 9), [ADDRESS_TOO_LONG, ADDRESS_UNPARSED])
    compact = _PARSE_DROP.sub("", norm)
    region: Region = region_of(compact) if compact else EMPTY_REGION
    slots: Slots = parse_slots(compact[region.end :]) if compact else EMPTY_SLOTS
    flags: list[str] = []
    if region.ambiguous:
        flags.append(ADDRESS_AMBIGUOUS)
    elif region.adcode is None:
        flags.append(ADDRESS_UNPARSED)
    return (norm, region.province, region.city, region.district, region.adcode, *slots, flags)


class AddressParser:
    """:func:`parse_address` for many texts, with one region memo shared by every call (a cache only)."""

    def __init__(self, config: AddressRules | None = None) -> None:
        self.rules = config or AddressRules()
        self._region_of = RegionMemo(self.rules.region)  # addresses sharing their administrative part resolve it once

    def parse(self, texts: Iterable[object]) -> list[tuple[object, ...]]:
        """One tuple of output values (in :data:`OUTPUT_COLUMNS` order) per text. Never raises."""
        rules, region_of = self.rules, self._region_of
        return [_parse(t, rules, region_of) for t in texts]


def standardize_addresses(raw: pd.Series, config: AddressRules | None = None) -> pd.DataFrame:
    """Normalize and parse every distinct address once; a DataFrame aligned to ``raw`` (see OUTPUT_COLUMNS).

    Ambiguous district names (朝阳区 alone, 鼓楼区 under 江苏省) are left None and flagged
    ADDRESS_AMBIGUOUS; addresses with no administrative level are flagged ADDRESS_UNPARSED.
    """
    codes, uniques = factorize_text(raw)
    parsed = AddressParser(config).parse(uniques)
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(OUTPUT_COLUMNS):
        missing: object = [] if name == "address_flags" else None
        out[name] = broadcast(codes, [p[j] for p in parsed], missing)
    frame = pd.DataFrame(out, index=raw.index)
    log.debug("addresses: %d rows, %d distinct values", len(frame), len(uniques))
    return frame
