"""Latin-script names (card embossing, passports, foreigners): tokens, surname guess and keys.

The rule for the surname and the given name:

1. An explicit surname comes first: MRZ ``ZHANG<<XIAO<MING`` or ``ZHANG, XIAO MING`` (all surname tokens
   are run together: ``AU<YEUNG`` -> ``auyeung``).
2. Otherwise two leading tokens that spell a compound surname are merged (``OU YANG NA`` -> ``ouyang``), then
   the first token is the surname when it is a known surname spelling (pinyin of the surname table, or a
   HK/Taiwan/overseas spelling), else the last token when that one is (``XIAOMING ZHANG``).
3. With a surname, given-name tokens that are all pinyin are run together (``ZHANG XIAO MING`` ->
   ``zhang`` + ``xiaoming``), exactly like the given syllables of a Han name; others stay separate tokens.
   The surname token is mapped through the romanization table (``CHAN`` -> ``chen``).
4. Without a surname, a name whose tokens are all pinyin is one transliterated token
   (``AYIGULI MAIMAITI`` -> ``ayigulimaimaiti``, like 阿依古丽·买买提); any other name keeps its tokens
   (a foreigner: ``JOHN PAUL SMITH``), surname guessed as the last token.

The key is the tokens, ü-folded (lyu/lv/lu), sorted and joined by one space.
Known weak spot: when both end tokens are surnames (``XIAO MING ZHANG``) the first one wins.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from validators.names_tables import NameTables
from validators.pinyin import fuzzy_key, segment, umlaut_fold

_JOINERS = re.compile(r"(?<=[^\W\d_])['’\-‐](?=[^\W\d_])")
_SEPARATORS = frozenset(" \t<,.'’-‐·/&")
_LETTERS = re.compile(r"[^\W\d_]+")
# An ASCII character that is no letter, no space and no separator: one regex search instead of a loop
_ASCII_OK = "".join(c for c in map(chr, range(128)) if c.isalpha() or c.isspace() or c in _SEPARATORS)
_ASCII_JUNK = re.compile(f"[^{re.escape(_ASCII_OK)}]")


def has_junk(text: str) -> bool:
    """True when the text holds a character that is no letter, no space and no name separator."""
    if text.isascii():
        return _ASCII_JUNK.search(text) is not None
    return any(not (c.isalpha() or c.isspace() or c in _SEPARATORS) for c in text)


@dataclass(frozen=True, slots=True)
class LatinName:
    norm: str | None
    surname: str | None
    pinyin: str | None
    fuzzy: str | None
    key: str | None
    junk: bool


def _fold(token: str) -> str:
    """Casefold and strip diacritics, ü -> v (LÜ -> lv)."""
    token = token.casefold()
    if token.isascii():
        return token
    token = token.replace("lü", "lv").replace("nü", "nv")  # pinyin ü; other umlauts (MÜLLER) lose the dots
    decomposed = unicodedata.normalize("NFKD", token)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _canon(tables: NameTables, token: str) -> str:
    parts = segment(tables, token) if token.isascii() else None
    return "".join(parts) if parts else token


def parse_latin(tables: NameTables, text: str) -> LatinName:
    """Normalize one NFKC Latin name (no Han characters) and compute its keys."""
    junk = has_junk(text)
    text = _JOINERS.sub("", text)
    if "<<" in text:
        sur_part, given_part = text.split("<<", 1)
    elif "," in text:
        sur_part, given_part = text.split(",", 1)
    else:
        sur_part, given_part = "", text
    sur_raw = _LETTERS.findall(sur_part)
    given_raw = _LETTERS.findall(given_part)
    if not (sur_raw and given_raw):  # a marker with one side empty marks nothing: "ZHANG," is "ZHANG"
        sur_raw, given_raw = [], sur_raw + given_raw
    if not sur_raw and not given_raw:
        return LatinName(None, None, None, None, None, junk)
    given_norm = " ".join(given_raw).upper()
    norm = f"{' '.join(sur_raw).upper()}, {given_norm}" if sur_raw else given_norm
    toks = [_canon(tables, _fold(t)) for t in given_raw]
    surname: str | None = None
    if sur_raw:
        surname = _canon(tables, "".join(_fold(t) for t in sur_raw))
    else:
        if len(toks) >= 3 and toks[0] + toks[1] in tables.compound_pinyin:
            toks = [toks[0] + toks[1], *toks[2:]]
        if len(toks) >= 2 and toks[0] in tables.latin_surnames:
            surname, toks = toks[0], toks[1:]
        elif len(toks) >= 2 and toks[-1] in tables.latin_surnames:
            surname, toks = toks[-1], toks[:-1]
    segs = [segment(tables, t) if t.isascii() else None for t in toks]
    all_pinyin = bool(toks) and all(s is not None for s in segs)
    given_syl = [syl for s in segs if s for syl in s]
    if surname is not None:
        sur_syl = segment(tables, surname) if surname.isascii() else None
        given_tokens = ["".join(toks)] if all_pinyin else toks
        tokens = [tables.romanized.get(surname, surname), *given_tokens]
        if sur_syl is not None and (all_pinyin or not toks):
            pinyin: str | None = f"{surname} {''.join(toks)}".strip()
            fuzzy: str | None = fuzzy_key(tables, [*sur_syl, *given_syl])
        else:
            pinyin = fuzzy = None
    elif all_pinyin:
        tokens = ["".join(toks)]
        pinyin, fuzzy = tokens[0], fuzzy_key(tables, given_syl)
        surname = None
    else:
        tokens = toks
        pinyin = fuzzy = None
        surname = toks[-1] if len(toks) >= 2 else None
    key = " ".join(sorted(umlaut_fold(t) for t in tokens if t)) or None
    return LatinName(norm=norm, surname=surname, pinyin=pinyin, fuzzy=fuzzy, key=key, junk=junk)
