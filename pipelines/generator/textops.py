"""Vectorized string helpers over numpy ``StringDType`` arrays (no per-record Python loops)."""

from __future__ import annotations

import numpy as np

S = np.dtypes.StringDType()

_CN_DIGITS = "〇一二三四五六七八九"
FULLWIDTH_DIGITS = {ord(c): chr(ord(c) + 0xFEE0) for c in "0123456789"}
FULLWIDTH_LATIN = {ord(c): chr(ord(c) + 0xFEE0) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"} | {ord(" "): "\u3000"}
CN_DIGIT_MAP = {ord(str(d)): _CN_DIGITS[d] for d in range(10)}


def cat(*parts: np.ndarray | str) -> np.ndarray:
    """Element-wise concatenation of string arrays and scalars."""
    out: np.ndarray | str = parts[0]
    for p in parts[1:]:
        out = np.strings.add(out, p)
    return np.asarray(out, dtype=S)


def translate(values: np.ndarray, table: dict[int, str] | dict[int, None]) -> np.ndarray:
    """``str.translate`` on every element (``table`` maps code points to replacement strings)."""
    return np.asarray(np.strings.translate(values, table), dtype=S)  # type: ignore[call-overload]


def digits(values: np.ndarray, width: int = 0) -> np.ndarray:
    """Integers as decimal strings, zero-padded to ``width``."""
    out = np.asarray(values, dtype=np.int64).astype(S)
    return np.strings.zfill(out, width) if width else out


def where(mask: np.ndarray, a: np.ndarray | str, b: np.ndarray | str) -> np.ndarray:
    return np.asarray(np.where(mask, a, b), dtype=S)


def _reading(n: int) -> str:
    """Chinese reading of 1..9999 as written in addresses (十二, 八十八, 一百零五)."""
    if n < 10:
        return _CN_DIGITS[n]
    if n < 20:
        return "十" + (_CN_DIGITS[n % 10] if n % 10 else "")
    parts: list[str] = []
    for unit, word in ((1000, "千"), (100, "百"), (10, "十")):
        q = (n // unit) % 10
        if q:
            parts.append(_CN_DIGITS[q] + word)
        elif parts and n % unit:
            parts.append("零")
    if n % 10:
        parts.append(_CN_DIGITS[n % 10])
    text = "".join(parts)
    return text.replace("零零", "零")


CN_READING = np.asarray([""] + [_reading(i) for i in range(1, 10000)], dtype=S)


def cn_reading(values: np.ndarray) -> np.ndarray:
    """Numbers 1..9999 written as Chinese readings (88 -> 八十八)."""
    return CN_READING[np.clip(np.asarray(values, dtype=np.int64), 0, 9999)]


def cn_digits(values: np.ndarray) -> np.ndarray:
    """Numbers written digit by digit in Chinese numerals (1203 -> 一二〇三)."""
    return translate(digits(values), CN_DIGIT_MAP)


def contains_any(values: np.ndarray, chars: str) -> np.ndarray:
    """True where a string contains at least one of ``chars``."""
    values = np.asarray(values, dtype=S)
    stripped = translate(values, {ord(c): "" for c in chars})
    return np.asarray(np.strings.str_len(stripped) != np.strings.str_len(values))


def pick(rng: np.random.Generator, options: tuple[str, ...] | list[str], n: int,
         p: tuple[float, ...] | None = None) -> np.ndarray:
    """``n`` draws from a small list of strings."""
    return np.asarray(options, dtype=S)[rng.choice(len(options), size=n, p=p)]
