"""Load the name reference tables once per :class:`NameRules` and hold the per-character caches.

The traditional -> simplified fold is OpenCC ``t2s`` applied character by character (never phrase by phrase:
a name is not a phrase), turned into one ``str.translate`` table, then overridden by the variant table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from mdm.errors import ConfigError
from validators.names_rules import FuzzyPinyinRules, NameRules

log = logging.getLogger(__name__)

# Han ideograph blocks that names use: Ext A, URO, compatibility ideographs, Ext B-H.
HAN_RANGES: tuple[tuple[int, int], ...] = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x323AF))


@dataclass(frozen=True)
class NameTables:
    """Everything the name functions look up; build with :func:`load_tables`."""

    t2s: dict[int, str]
    surname_readings: dict[str, str]
    compound_surnames: frozenset[str]
    compound_lengths: tuple[int, ...]
    latin_surnames: frozenset[str]
    compound_pinyin: frozenset[str]
    romanized: dict[str, str]
    syllables: frozenset[str]
    placeholders: frozenset[str]
    transliterated_min_len: int
    max_name_chars: int
    fuzzy: FuzzyPinyinRules
    # Filled lazily: character -> toneless pinyin ("" when unknown); syllable -> fuzzy syllable;
    # Latin run -> pinyin syllables (None when it is not pinyin).
    char_pinyin: dict[str, str] = field(default_factory=dict)
    fuzzy_syllable: dict[str, str] = field(default_factory=dict)
    segment_cache: dict[str, tuple[str, ...] | None] = field(default_factory=dict)
    # Han surname -> (reading, fuzzy, Latin-key token); Han given name -> (pinyin run, fuzzy, Latin token, partial).
    surname_cache: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    given_cache: dict[str, tuple[str, str, str, bool]] = field(default_factory=dict)


def _read_rows(path: Path, columns: int) -> list[list[str]]:
    """Rows of a TSV reference file: '#' comments and the header line skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(
            f"name reference table {path} cannot be read ({e.strerror}); restore it from the repository "
            "or point NameRules.reference_dir at a folder that holds it"
        ) from e
    rows = [line.split("\t") for line in lines if line.strip() and not line.startswith("#")]
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != columns:
            raise ConfigError(
                f"name reference table {path}: data row {number} has {len(row)} tab-separated columns, "
                f"expected {columns}; fix the row (columns are separated by one TAB)"
            )
    return [[cell.strip() for cell in row] for row in rows[1:]] if columns > 1 else [r[:1] for r in rows]


def _t2s_table(variants: dict[str, str]) -> dict[int, str]:
    import opencc  # imported here: loading OpenCC is only needed when names are standardized

    converter = opencc.OpenCC("t2s")
    chars = [chr(i) for lo, hi in HAN_RANGES for i in range(lo, hi + 1)]
    converted = converter.convert("\n".join(chars)).split("\n")
    mapping = {c: s for c, s in zip(chars, converted, strict=True) if c != s and len(s) == 1}
    mapping.update(variants)
    # Fold to a fixpoint so that the table is idempotent (薴 -> 苧 -> 苎).
    for c in list(mapping):
        target = mapping[c]
        for _ in range(4):
            nxt = mapping.get(target, target)
            if nxt == target:
                break
            target = nxt
        mapping[c] = target
    return {ord(c): s for c, s in mapping.items() if c != s}


def default_reading(han: str) -> str:
    """pypinyin's toneless reading of a string (ü as v), characters it does not know dropped."""
    from pypinyin import lazy_pinyin

    return "".join(p for p in lazy_pinyin(han, errors="ignore") if p.isascii() and p.isalpha())


def _build(rules: NameRules) -> NameTables:
    surname_rows = _read_rows(rules.path(rules.surnames_file), 2)
    readings = {s: (r or default_reading(s)) for s, r in surname_rows}
    readings.update(rules.surname_reading_overrides)
    compounds = frozenset(s for s in readings if len(s) > 1)
    romanized = {k.lower(): v for k, v in _read_rows(rules.path(rules.romanized_surnames_file), 2)}
    romanized.update({k.lower(): v for k, v in rules.romanized_surname_overrides.items()})
    variants = dict(_read_rows(rules.path(rules.han_variants_file), 2))  # type: ignore[arg-type]
    variants.update(rules.han_variant_overrides)
    syllables = frozenset(r[0] for r in _read_rows(rules.path(rules.pinyin_syllables_file), 1))
    # A Latin token is a surname when it spells a surname's reading, its pypinyin default, or a known romanization.
    latin = {r for r in readings.values() if r} | {default_reading(s) for s in readings if len(s) == 1}
    latin |= set(romanized)
    tables = NameTables(
        t2s=_t2s_table(variants),
        surname_readings=readings,
        compound_surnames=compounds,
        compound_lengths=tuple(sorted({len(s) for s in compounds}, reverse=True)),
        latin_surnames=frozenset(x for x in latin if x),
        compound_pinyin=frozenset(readings[s] for s in compounds),
        romanized=romanized,
        syllables=syllables,
        placeholders=frozenset(p.lower() for p in rules.placeholder_names),
        transliterated_min_len=rules.transliterated_min_len,
        max_name_chars=rules.max_name_chars,
        fuzzy=rules.fuzzy,
    )
    log.info(
        "name tables loaded: %d surnames (%d compound), %d romanizations, %d t2s folds",
        len(readings),
        len(compounds),
        len(romanized),
        len(tables.t2s),
    )
    return tables


@lru_cache(maxsize=8)
def _cached(rules_json: str) -> NameTables:
    return _build(NameRules.model_validate_json(rules_json))


def load_tables(rules: NameRules | None = None) -> NameTables:
    """The tables for ``rules`` (default rules when None), built once per distinct rules value."""
    return _cached((rules or NameRules()).model_dump_json())
