"""Gender: code-mapped ("M"/"F") or raw source values -> "M", "F" or None."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

from validators.contact_common import as_text, broadcast, factorize_text, nfkc

log = logging.getLogger(__name__)

_DEFAULT_CODES: Mapping[str, str] = MappingProxyType(
    {
        "m": "M",
        "f": "F",
        "男": "M",
        "女": "F",
        "男性": "M",
        "女性": "F",
        "1": "M",  # GB/T 2261.1: 1 male, 2 female
        "2": "F",
        "male": "M",
        "female": "F",
        "man": "M",
        "woman": "F",
        "先生": "M",
        "女士": "F",
    }
)


@dataclass(frozen=True)
class GenderRules:
    """Fallback codes for values the source's code table did not map (keys are NFKC, lowercased)."""

    codes: Mapping[str, str] = field(default_factory=lambda: _DEFAULT_CODES)


def gender_code(value: object, config: GenderRules | None = None) -> str | None:
    """One value to "M" / "F" / None (unknown codes such as 0, 9, U, 未知 give None)."""
    text = as_text(value)
    if text is None:
        return None
    codes = (config or GenderRules()).codes
    return codes.get(nfkc(text).strip().lower())


def standardize_gender(declared: pd.Series, config: GenderRules | None = None) -> pd.Series:
    """Gender per row: values already mapped to "M"/"F" pass through; raw codes (男/女/1/2/male/...) are mapped.

    Each distinct value is looked up once; the result is aligned to ``declared``'s index.
    """
    rules = config or GenderRules()
    codes, uniques = factorize_text(declared)
    mapped = [gender_code(u, rules) for u in uniques]
    values = broadcast(codes, mapped, None) if len(codes) else np.empty(0, dtype=object)
    return pd.Series(values, index=declared.index, dtype=object, name="gender")
