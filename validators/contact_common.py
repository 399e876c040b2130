"""Shared plumbing of the contact-field normalizers: text clean-up and distinct-value mapping.

Every field normalizer works the same way: factorize the input, normalize each distinct
value once, and broadcast the results back with an integer take. Nothing here knows
about a particular field.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pandas as pd

T = TypeVar("T")

# Characters NFKC leaves alone but that mean the same thing in Chinese data entry.
_EXTRA_MAP = str.maketrans(
    {
        "\u3002": ".",  # 。 ideographic full stop
        "\uff61": ".",  # ｡ half-width ideographic full stop
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
        "\u30fc": "-",  # ー katakana prolonged sound mark, typed as a dash
        "\ufe63": "-",
        "\u00a0": " ",
        "\u3000": " ",
        "\u200b": "",  # zero-width space
        "\u200c": "",
        "\u200d": "",
        "\ufeff": "",
    }
)

_EXTRA_RE = re.compile("[" + "".join(re.escape(chr(c)) for c in _EXTRA_MAP) + "]")


def nfkc(text: str) -> str:
    """NFKC plus the few mappings NFKC misses (ideographic full stop, dash variants, zero-width marks)."""
    out = unicodedata.normalize("NFKC", text)
    return out.translate(_EXTRA_MAP) if _EXTRA_RE.search(out) else out  # translate() is slow; rarely needed


def as_text(value: Any) -> str | None:
    """Return ``value`` as a stripped string, or None for None/NaN/blank/non-scalar junk."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, float | np.floating) and not np.isfinite(value):
        return None
    elif isinstance(value, float | np.floating):
        # a typed numeric column: 13812345678.0 means the integer, not a decimal
        text = str(int(value)) if float(value).is_integer() else str(value)
    elif isinstance(value, int | np.integer):
        text = str(value)
    else:
        try:
            if pd.isna(value):
                return None
        except (TypeError, ValueError):
            pass
        text = str(value)
    text = text.strip()
    return text or None


def factorize_text(raw: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes (-1 for missing) and the distinct non-missing values of ``raw``."""
    try:
        codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    except TypeError:  # unhashable cells (lists, dicts): compare them by their text
        codes, uniques = pd.factorize(raw.map(lambda v: v if v is None or isinstance(v, str) else str(v)))
    return np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=object)


def broadcast(codes: np.ndarray, per_distinct: list[T] | np.ndarray, missing: Any) -> np.ndarray:
    """Take ``per_distinct[code]`` for every row; rows with code -1 get ``missing``."""
    # fromiter keeps list values as single objects (slice assignment would try to broadcast them)
    values = np.fromiter((*per_distinct, missing), dtype=object, count=len(per_distinct) + 1)
    return values[codes]  # code -1 picks the trailing ``missing`` slot


def map_distinct(raw: pd.Series, fn: Callable[[str], T], missing: Any = None) -> np.ndarray:
    """Apply ``fn`` once per distinct non-blank text of ``raw`` and broadcast to every row."""
    codes, uniques = factorize_text(raw)
    results = [fn(t) if (t := as_text(u)) is not None else missing for u in uniques]
    return broadcast(codes, results, missing)


def combine_codes(left: np.ndarray, right: np.ndarray, n_right: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (left, right) code pairs: returns row codes into the pairs, and the pairs' left and right codes."""
    key = (left + 1) * (n_right + 1) + (right + 1)
    uniq, inverse = np.unique(key, return_inverse=True)
    return inverse.astype(np.int64), uniq // (n_right + 1) - 1, uniq % (n_right + 1) - 1
