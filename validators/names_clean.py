"""Cleaning of one name string: NFKC, junk and annotations out, middle dots and Han spaces folded, t2s.

The result keeps middle dots (canonical U+00B7) between Han characters; keys are made without them.
Latin-only text is returned NFKC'd and otherwise untouched: :mod:`validators.names_latin` parses it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from validators.names_rules import (
    NAME_FULLWIDTH,
    NAME_JUNK_REMOVED,
    NAME_MIDDLE_DOT_FOLDED,
    NAME_SPACES_REMOVED,
    NAME_TRADITIONAL_FOLDED,
    NAME_UNREADABLE_CHAR,
)
from validators.names_tables import NameTables

DOT = "·"  # U+00B7, the canonical middle dot
HAN_CLASS = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U000323af"
HAN_RE = re.compile(f"[{HAN_CLASS}]")
# Middle-dot look-alikes after NFKC (．-> . and ･ -> ・ already): bullet, katakana dot, hyphenation point, ...
_DOT_VARIANTS = "\u2022\u30fb\u2027\u22c5\u2219\u2e31\u16eb\u2024\u318d\u0387\ua78f."
_DOT_TABLE = str.maketrans(dict.fromkeys(_DOT_VARIANTS, DOT))
_UNREADABLE_RE = re.compile("[?\ufffd\ue000-\uf8ff\u25a1]")
_BRACKETS_RE = re.compile(r"[(\[【〔{][^)\]】〕}]*[)\]】〕}]")
_JUNK_RE = re.compile(r"[^\w·\s]|[\d_]")
_SEPARATOR_RUN_RE = re.compile(r"[\s·]+")
_OTHER_LETTERS_RE = re.compile(f"[^\\W\\d_{HAN_CLASS}]")
_SPACE_MARK = "\x00"


@dataclass(frozen=True, slots=True)
class CleanText:
    text: str  # "" when nothing usable is left
    has_han: bool
    flags: tuple[str, ...]


def _is_han(ch: str) -> bool:
    return HAN_RE.match(ch) is not None


def clean_text(tables: NameTables, raw: str) -> CleanText:
    """Clean one raw name (any script); Han text comes back folded, Latin text only NFKC'd and stripped."""
    flags: list[str] = []
    raw = raw[: tables.max_name_chars]
    if not raw.isascii() and any("\uff01" <= c <= "\uff5e" or c == "\u3000" for c in raw):
        flags.append(NAME_FULLWIDTH)
    text = unicodedata.normalize("NFKC", raw)
    if _UNREADABLE_RE.search(text):
        flags += [NAME_UNREADABLE_CHAR, NAME_JUNK_REMOVED]
        text = _UNREADABLE_RE.sub("", text)
    stripped = _BRACKETS_RE.sub(" ", text)
    if stripped != text:
        flags.append(NAME_JUNK_REMOVED)
        text = stripped
    if not HAN_RE.search(text):
        return CleanText(text.strip(), False, tuple(flags))
    dot_variant = any(c in _DOT_VARIANTS for c in text)
    text = text.translate(_DOT_TABLE)
    unjunked = _JUNK_RE.sub("", text)
    if unjunked != text:
        flags.append(NAME_JUNK_REMOVED)
    folded = unjunked.translate(tables.t2s)
    if folded != unjunked:
        flags.append(NAME_TRADITIONAL_FOLDED)
    text = folded
    events: set[str] = set()

    def _separator(m: re.Match[str]) -> str:
        run, start, end = m.group(0), m.start(), m.end()
        if start == 0 or end == len(text):
            if DOT in run:
                events.add(NAME_JUNK_REMOVED)
            return ""
        if _is_han(text[start - 1]) and _is_han(text[end]):
            if DOT in run:
                if dot_variant or run != DOT:
                    events.add(NAME_MIDDLE_DOT_FOLDED)
                return DOT
            return _SPACE_MARK
        return " "

    text = _SEPARATOR_RUN_RE.sub(_separator, text)
    if _SPACE_MARK in text:
        text = _fold_han_spaces(tables, text, events)
    flags += sorted(events - set(flags))
    return CleanText(text, HAN_RE.search(text) is not None, tuple(flags))  # unassigned code points are junk


def _fold_han_spaces(tables: NameTables, text: str, events: set[str]) -> str:
    """A space between Han characters is a lost middle dot in a long transliterated name, else a typing slip."""
    plain = text.replace(_SPACE_MARK, "").replace(DOT, "")
    compound = any(plain[:n] in tables.compound_surnames for n in tables.compound_lengths if len(plain) > n)
    if len(plain) >= tables.transliterated_min_len and not compound:
        events.add(NAME_MIDDLE_DOT_FOLDED)
        return text.replace(_SPACE_MARK, DOT)
    events.add(NAME_SPACES_REMOVED)
    return text.replace(_SPACE_MARK, "")


def has_other_letters(text: str) -> bool:
    """True when the text holds a letter that is not a Han character (Latin, kana, Hangul, ...)."""
    return _OTHER_LETTERS_RE.search(text) is not None
