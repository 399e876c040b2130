"""Personal names: vectorized standardization into comparison keys, and pinyin similarity.

``standardize_names`` normalizes each distinct value once and maps the results back by integer codes.
Han names fold to simplified characters (OpenCC t2s per character plus a variant table), get a surname-aware
pinyin (``zhang xiaoming``, ``ouyang na``), a fuzzy-pinyin key and a Latin key that compares with card and
passport spellings (see :mod:`validators.names_latin` for the Latin rule).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from rapidfuzz import process
from rapidfuzz.distance import Indel, JaroWinkler, Levenshtein

from mdm.errors import MdmError
from validators.flag_codes import FlagCodes, encode_combos
from validators.names_clean import DOT, HAN_CLASS, clean_text
from validators.names_latin import _fold, parse_latin
from validators.names_rules import (
    NAME_FROM_LATIN,
    NAME_JUNK_REMOVED,
    NAME_MISSING,
    NAME_PINYIN_PARTIAL,
    NAME_PLACEHOLDER,
    NAME_TRADITIONAL_FOLDED,
    NameRules,
)
from validators.names_tables import NameTables, load_tables
from validators.pinyin import han_keys, han_only_keys

__all__ = [
    "NAME_COLUMNS",
    "NameResult",
    "NameRules",
    "name_columns",
    "pinyin_similarity",
    "standardize_name",
    "standardize_names",
]

log = logging.getLogger(__name__)

NAME_COLUMNS = (
    "name_norm",
    "name_script",
    "name_pinyin",
    "name_fuzzy",
    "name_latin_key",
    "name_surname",
    "name_flags",
)
_FAST_HAN_RE = re.compile("[\u4e00-\u9fff]{1,12}")
_HAN_ONLY_RE = re.compile(f"[{HAN_CLASS}]+")
_UNIT_RE = re.compile(f"([{HAN_CLASS}])|([^\\W\\d_{HAN_CLASS}]+)")


class NameResult(NamedTuple):
    """The standardized fields of one name value (``flags`` in the order they were raised)."""

    norm: str | None = None
    script: Literal["han", "latin", "mixed"] | None = None
    pinyin: str | None = None
    fuzzy: str | None = None
    latin_key: str | None = None
    surname: str | None = None
    flags: tuple[str, ...] = (NAME_MISSING,)


_MISSING = NameResult()


def _han_result(tables: NameTables, norm: str, flags: tuple[str, ...]) -> NameResult:
    base = norm.replace(DOT, "") if DOT in norm else norm
    if _HAN_ONLY_RE.fullmatch(base):
        keys = han_only_keys(tables, base)
        script: Literal["han", "mixed"] = "han"
    else:
        units: list[str] = []
        han: list[bool] = []
        dropped = False
        for m in _UNIT_RE.finditer(base):
            if m.group(1):
                units.append(m.group(1))
                han.append(True)
            else:
                run = _fold(m.group(2))
                if run.isascii():
                    units.append(run)
                    han.append(False)
                else:
                    dropped = True  # kana, Hangul, Cyrillic ... have no pinyin
        keys = han_keys(tables, units, han)
        keys = keys._replace(partial=keys.partial or dropped)
        script = "mixed"
    if keys.partial:
        flags = (*flags, NAME_PINYIN_PARTIAL)
    return NameResult(norm, script, keys.pinyin, keys.fuzzy, " ".join(keys.tokens) or None, keys.surname, flags)


def _is_placeholder(tables: NameTables, norm: str) -> bool:
    folded = norm.casefold()
    return folded in tables.placeholders or folded.replace(" ", "") in tables.placeholders


def standardize_name(tables: NameTables, raw: object) -> NameResult:
    """Standardize one value (the per-distinct-value kernel of :func:`standardize_names`)."""
    if not isinstance(raw, str):
        if raw is None or raw is pd.NA or (isinstance(raw, float) and np.isnan(raw)):
            return _MISSING
        raw = str(raw)
    if _FAST_HAN_RE.fullmatch(raw):  # the common case: a clean Han name, NFKC is the identity on it
        norm = raw.translate(tables.t2s)
        if norm in tables.placeholders:
            return NameResult(flags=(NAME_MISSING, NAME_PLACEHOLDER))
        result = _han_result(tables, norm, (NAME_TRADITIONAL_FOLDED,) if norm != raw else ())
    else:
        cleaned = clean_text(tables, raw)
        if not cleaned.text or _is_placeholder(tables, cleaned.text) or _is_placeholder(tables, raw.strip()):
            blank = not cleaned.text and not _is_placeholder(tables, raw.strip())
            return NameResult(flags=(NAME_MISSING, *cleaned.flags, *(() if blank else (NAME_PLACEHOLDER,))))
        if cleaned.has_han:
            result = _han_result(tables, cleaned.text, cleaned.flags)
        else:
            latin = parse_latin(tables, cleaned.text)
            flags = (*cleaned.flags, NAME_JUNK_REMOVED) if latin.junk else cleaned.flags
            flags = tuple(dict.fromkeys(flags))
            if latin.norm is None or _is_placeholder(tables, latin.norm):
                extra = (NAME_PLACEHOLDER,) if latin.norm else ()
                return NameResult(flags=(NAME_MISSING, *flags, *extra))
            result = NameResult(latin.norm, "latin", latin.pinyin, latin.fuzzy, latin.key, latin.surname, flags)
    return result


def _combine(name: NameResult, latin: NameResult) -> NameResult:
    """Join the results of ``name`` and ``name_latin``: the Latin key prefers ``name_latin``."""
    if latin.norm is None:
        return name
    if name.norm is None:
        kept = tuple(f for f in name.flags if f != NAME_MISSING)
        return latin._replace(script="latin", flags=tuple(dict.fromkeys((*kept, *latin.flags, NAME_FROM_LATIN))))
    return name._replace(latin_key=latin.latin_key or name.latin_key)


def _factorize(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=object)


def standardize_names(
    name: pd.Series, name_latin: pd.Series | None = None, config: NameRules | None = None
) -> pd.DataFrame:
    """Standardize personal names; one row out per row in, same index.

    Columns: ``name_norm``, ``name_script`` (han/latin/mixed/None), ``name_pinyin``, ``name_fuzzy``,
    ``name_latin_key``, ``name_surname`` and ``name_flags`` (a fresh list per row). When ``name`` is blank and
    ``name_latin`` is not, every field comes from ``name_latin`` (flag ``NAME_FROM_LATIN``); when both are
    present the Latin key comes from ``name_latin``.
    """
    frame, flags = name_columns(name, name_latin, config)
    # A fresh list per row: rows that share a name must not share a mutable flags list.
    frame["name_flags"] = flags.to_lists()
    return frame


def name_columns(
    name: pd.Series, name_latin: pd.Series | None = None, config: NameRules | None = None
) -> tuple[pd.DataFrame, FlagCodes]:
    """:func:`standardize_names` with the reason codes as :class:`FlagCodes` (no list per row)."""
    tables = load_tables(config)
    codes, uniques = _factorize(name)
    results = [standardize_name(tables, u) for u in uniques]
    results.append(_MISSING)  # code -1 (null) takes the last entry
    if name_latin is not None:
        if len(name_latin) != len(name):
            raise MdmError(
                f"name has {len(name)} rows but name_latin has {len(name_latin)}; pass columns of the same frame"
            )
        lcodes, luniques = _factorize(name_latin)
        latin_results = [standardize_name(tables, u) for u in luniques]
        latin_results.append(_MISSING)
        pair = (codes + 1) * (len(luniques) + 1) + (lcodes + 1)
        pairs, codes = np.unique(pair, return_inverse=True)
        name_idx, latin_idx = np.divmod(pairs, len(luniques) + 1)
        results = [_combine(results[n - 1], latin_results[lat - 1]) for n, lat in zip(name_idx, latin_idx, strict=True)]
    columns = [np.fromiter(col, dtype=object, count=len(results)) for col in zip(*results, strict=True)]
    if not columns:  # no rows (and no distinct name pair): empty columns, not a failed unpacking
        columns = [np.empty(0, dtype=object) for _ in NAME_COLUMNS]
    out = {name_col: col[codes] for name_col, col in zip(NAME_COLUMNS[:-1], columns[:-1], strict=True)}
    frame = pd.DataFrame(out, index=name.index, columns=list(NAME_COLUMNS[:-1]))
    combo_of_result, combos = encode_combos(columns[-1])
    if log.isEnabledFor(logging.DEBUG):  # the count walks every distinct result
        log.debug(
            "standardized %d names (%d distinct); %d traditional folds",
            len(name),
            len(uniques),
            sum(NAME_TRADITIONAL_FOLDED in r.flags for r in results),
        )
    return frame, FlagCodes(combo_of_result[codes], combos)


_SCORERS: dict[str, Any] = {
    "jaro_winkler": JaroWinkler.normalized_similarity,
    "levenshtein": Levenshtein.normalized_similarity,
    "indel": Indel.normalized_similarity,
}


def pinyin_similarity(
    a: pd.Series,
    b: pd.Series,
    method: Literal["jaro_winkler", "levenshtein", "indel"] = "jaro_winkler",
    ignore_spaces: bool = True,
) -> np.ndarray:
    """Character-level similarity in [0, 1] of two aligned Series (rapidfuzz; NaN where either side is blank).

    Meant for keys such as ``name_pinyin`` / ``name_latin_key`` of a card against those of a Chinese name;
    with ``ignore_spaces`` ``zhang xiaoming`` equals ``zhangxiaoming``.
    """
    if len(a) != len(b):
        raise MdmError(f"pinyin_similarity needs aligned Series: got {len(a)} and {len(b)} rows")
    scorer = _SCORERS.get(method)
    if scorer is None:
        raise MdmError(f"unknown similarity method {method!r}; use one of {sorted(_SCORERS)}")
    left = np.asarray(a, dtype=object)
    right = np.asarray(b, dtype=object)
    if ignore_spaces:
        left = np.array([x.replace(" ", "") if isinstance(x, str) else None for x in left] + [None], dtype=object)[:-1]
        right = np.array([x.replace(" ", "") if isinstance(x, str) else None for x in right] + [None], dtype=object)[
            :-1
        ]
    ok = np.array([isinstance(x, str) and x != "" for x in left], dtype=bool) & np.array(
        [isinstance(x, str) and x != "" for x in right], dtype=bool
    )
    scores = np.full(len(left), np.nan, dtype=np.float64)
    if ok.any():
        scores[ok] = process.cpdist(list(left[ok]), list(right[ok]), scorer=scorer, workers=1)
    return scores
