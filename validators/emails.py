"""E-mail addresses: NFKC, trimmed, lowercased and checked with a deliberately plain pattern."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from validators.contact_common import as_text, factorize_text

log = logging.getLogger(__name__)

EMAIL_INVALID = "EMAIL_INVALID"

# local part: RFC 5322 "atext" dot-atoms; domain: LDH labels with a letter TLD (punycode allowed).
DEFAULT_EMAIL_PATTERN = (
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})"
)


@dataclass(frozen=True)
class EmailRules:
    """Policy of the e-mail normalizer."""

    pattern: str = DEFAULT_EMAIL_PATTERN
    max_chars: int = 254  # RFC 5321 path limit
    max_local_chars: int = 64
    strip_prefixes: tuple[str, ...] = ("mailto:",)


def _clean(text: pd.Series, rules: EmailRules) -> pd.Series:
    cleaned = text.str.normalize("NFKC").str.replace("\u3002", ".", regex=False).str.strip().str.lower()
    for prefix in rules.strip_prefixes:
        cleaned = cleaned.str.removeprefix(prefix)
    return cleaned.str.replace(r"\s*@\s*", "@", regex=True).str.strip(" <>\"'")


def standardize_emails(raw: pd.Series, config: EmailRules | None = None) -> pd.DataFrame:
    """``email`` (lowercased, NFKC, trimmed, valid or None) and ``email_flags`` (["EMAIL_INVALID"] or [])."""
    rules = config or EmailRules()
    codes, uniques = factorize_text(raw)
    text = pd.Series(uniques, dtype=object).map(as_text)
    present = text.notna().to_numpy()
    too_long = (text.str.len() > rules.max_chars * 2).fillna(False).to_numpy(dtype=bool)
    text = text.where(~too_long)
    cleaned = _clean(text.astype(object), rules)
    local_len = cleaned.str.split("@", n=1).str[0].str.len()
    ok = (
        cleaned.str.fullmatch(rules.pattern, na=False).to_numpy(dtype=bool)
        & (cleaned.str.len() <= rules.max_chars).fillna(False).to_numpy(dtype=bool)
        & (local_len <= rules.max_local_chars).fillna(False).to_numpy(dtype=bool)
    )
    email = np.full(len(uniques) + 1, None, dtype=object)  # trailing slot: missing rows (code -1)
    email[:-1][ok] = cleaned.to_numpy(dtype=object)[ok]
    invalid = [EMAIL_INVALID]
    valid: list[str] = []
    flags = np.empty(len(uniques) + 1, dtype=object)
    flags[:-1] = [invalid if (p and not k) else valid for p, k in zip(present, ok, strict=True)]
    flags[-1] = valid
    log.debug("emails: %d rows, %d distinct, %d invalid", len(codes), len(uniques), int((present & ~ok).sum()))
    return pd.DataFrame({"email": email[codes], "email_flags": flags[codes]}, index=raw.index)
