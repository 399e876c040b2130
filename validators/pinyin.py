"""Pinyin of personal names: surname-aware readings, fuzzy-pinyin folding, Latin syllable splitting.

pypinyin has no surname mode, so the surname (compound surnames longest-first) is read from the surname table
and every other character from a per-character cache of pypinyin's default reading. ü is written ``v``.
"""

from __future__ import annotations

from typing import NamedTuple

from validators.names_tables import NameTables, default_reading

# Passport and card spellings of ü: LYU / NYU (ICAO), LUE / NUE (written without the dots).
_UMLAUT_ALIASES = {"lyu": "lv", "nyu": "nv", "lue": "lve", "nue": "nve", "lyue": "lve", "nyue": "nve"}
_MAX_SYLLABLE = 6  # zhuang, chuang, shuang
_VOWELS = frozenset("aeiouv")


class PinyinKeys(NamedTuple):
    """Keys of one name; ``tokens`` are the sorted, ü-folded Latin-key tokens."""

    surname: str | None
    pinyin: str | None
    fuzzy: str | None
    tokens: tuple[str, ...]
    partial: bool


def char_syllable(tables: NameTables, ch: str) -> str:
    """Default toneless reading of one character ("" when pypinyin does not know it)."""
    syl = tables.char_pinyin.get(ch)
    if syl is None:
        syl = default_reading(ch)
        tables.char_pinyin[ch] = syl
    return syl


def fuzzy_syllable(tables: NameTables, syl: str) -> str:
    """Fold one syllable by the fuzzy rules: zh->z, ch->c, sh->s, n->l, h->f; -ang/-eng/-ing -> -an/-en/-in; ü->u."""
    out = tables.fuzzy_syllable.get(syl)
    if out is None:
        out = syl
        for prefix, repl in tables.fuzzy.initial_folds:
            if out.startswith(prefix):
                out = repl + out[len(prefix) :]
                break
        for suffix, repl in tables.fuzzy.final_folds:
            if out.endswith(suffix):
                out = out[: -len(suffix)] + repl
                break
        out = out.replace("v", "u")
        tables.fuzzy_syllable[syl] = out
    return out


def fuzzy_key(tables: NameTables, syllables: list[str]) -> str:
    return "".join([fuzzy_syllable(tables, s) for s in syllables])


def segment(tables: NameTables, text: str) -> tuple[str, ...] | None:
    """Split lowercase ASCII letters into canonical pinyin syllables, or None when they are not pinyin.

    Fewest syllables wins; a vowel-initial syllable after the first costs one more (``xiangang`` is
    xian+gang, not xiang+ang). ``lyu``/``nyu``/``lue``/``nue`` are read as lv/nv/lve/nve.
    """
    cache = tables.segment_cache
    if text in cache:
        return cache[text]
    n = len(text)
    best: list[tuple[int, tuple[str, ...]] | None] = [None] * (n + 1)
    best[0] = (0, ())
    for i in range(n):
        cur = best[i]
        if cur is None:
            continue
        for j in range(i + 1, min(n, i + _MAX_SYLLABLE) + 1):
            piece = text[i:j]
            syl = _UMLAUT_ALIASES.get(piece, piece)
            if syl not in tables.syllables and piece not in _UMLAUT_ALIASES:
                continue
            cost = cur[0] + 1 + (1 if i > 0 and piece[0] in _VOWELS else 0)
            nxt = best[j]
            if nxt is None or cost < nxt[0]:
                best[j] = (cost, (*cur[1], syl))
    end = best[n]
    result = end[1] if end is not None and n > 0 else None
    if len(cache) < 1_000_000:
        cache[text] = result
    return result


def umlaut_fold(token: str) -> str:
    """Latin-key fold of ü spellings: lyu / lv / lu -> lu, nyu / nv / nu -> nu (so lue / lve -> lue)."""
    token = token.replace("lyu", "lu").replace("lv", "lu").replace("nv", "nu")
    return "nu" + token[3:] if token.startswith("nyu") else token


def surname_of(tables: NameTables, units: list[str], han_flags: list[bool]) -> str | None:
    """The surname at the start of a Han name: compound surnames longest-first, else the first character.

    Names of ``transliterated_min_len`` characters or more that do not start with a compound surname are
    transliterations (阿依古丽买买提) and have no surname.
    """
    if not units or not han_flags[0]:
        return None
    for length in tables.compound_lengths:
        if len(units) > length and all(han_flags[:length]):
            head = "".join(units[:length])
            if head in tables.compound_surnames:
                return head
    if len(units) >= tables.transliterated_min_len:
        return None
    return units[0]


def surname_keys(tables: NameTables, surname: str) -> tuple[str, str, str]:
    """(reading, fuzzy key, Latin-key token) of a Han surname, cached."""
    found = tables.surname_cache.get(surname)
    if found is None:
        reading = tables.surname_readings.get(surname) or "".join(char_syllable(tables, c) for c in surname)
        syllables = list(segment(tables, reading) or (reading,)) if len(surname) > 1 else [reading]
        found = (reading, fuzzy_key(tables, syllables), umlaut_fold(tables.romanized.get(reading, reading)))
        tables.surname_cache[surname] = found
    return found


def given_keys(tables: NameTables, given: str) -> tuple[str, str, str, bool]:
    """(pinyin run, fuzzy key, Latin-key token, partial) of a run of Han characters, cached."""
    found = tables.given_cache.get(given)
    if found is None:
        syllables = [char_syllable(tables, c) for c in given]
        known = [syl for syl in syllables if syl]
        run = "".join(known)
        found = (run, fuzzy_key(tables, known), umlaut_fold(run), len(known) < len(syllables))
        if len(tables.given_cache) < 2_000_000:
            tables.given_cache[given] = found
    return found


def han_only_keys(tables: NameTables, name: str) -> PinyinKeys:
    """Keys of a name made only of Han characters (no dots): the hot path, two cache look-ups."""
    surname = None
    for length in tables.compound_lengths:
        if len(name) > length and name[:length] in tables.compound_surnames:
            surname = name[:length]
            break
    if surname is None and len(name) < tables.transliterated_min_len:
        surname = name[0]
    given = name[len(surname) :] if surname else name
    run, fuzzy, token, partial = given_keys(tables, given) if given else ("", "", "", False)
    if surname is None:
        return PinyinKeys(None, run or None, fuzzy or None, (token,) if token else (), partial)
    reading, sur_fuzzy, sur_token = surname_keys(tables, surname)
    if run and reading:
        tokens = (sur_token, token) if sur_token <= token else (token, sur_token)
        return PinyinKeys(surname, f"{reading} {run}", sur_fuzzy + fuzzy, tokens, partial)
    return _one_part(surname, reading or run, sur_fuzzy + fuzzy, sur_token or token, partial or not reading)


def _one_part(surname: str | None, pinyin: str, fuzzy: str, token: str, partial: bool) -> PinyinKeys:
    return PinyinKeys(surname, pinyin or None, fuzzy or None, (token,) if token else (), partial)


def han_keys(tables: NameTables, units: list[str], han_flags: list[bool]) -> PinyinKeys:
    """Keys of a mixed name given as units: single Han characters and lowercase Latin runs."""
    surname = surname_of(tables, units, han_flags)
    start = len(surname) if surname else 0
    partial = False
    given: list[str] = []
    for unit, is_han in zip(units[start:], han_flags[start:], strict=True):
        if is_han:
            syl = char_syllable(tables, unit)
            if syl:
                given.append(syl)
            else:
                partial = True
        else:
            parts = segment(tables, unit)
            given.extend(parts if parts is not None else (unit,))
    given_run = "".join(given)
    given_fuzzy = fuzzy_key(tables, given)
    if surname is None:
        token = umlaut_fold(given_run)
        return PinyinKeys(None, given_run or None, given_fuzzy or None, (token,) if token else (), partial)
    reading, sur_fuzzy, sur_token = surname_keys(tables, surname)
    token = umlaut_fold(given_run)
    if given_run and reading:
        tokens = tuple(sorted((sur_token, token)))
        return PinyinKeys(surname, f"{reading} {given_run}", sur_fuzzy + given_fuzzy, tokens, partial)
    return _one_part(surname, reading or given_run, sur_fuzzy + given_fuzzy, sur_token or token, partial or not reading)
