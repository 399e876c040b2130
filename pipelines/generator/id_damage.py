"""Vectorized damage to resident-ID strings: typos, transpositions, truncation, spacing, odd X."""

from __future__ import annotations

import numpy as np

from pipelines.generator.textops import S, cat, pick


def _matrix(ids: np.ndarray) -> np.ndarray:
    return np.asarray(ids, dtype=S).astype("S18").view(np.uint8).reshape(-1, 18).copy()


def _strings(matrix: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(matrix).view("S18").ravel().astype(S)


def typo(rng: np.random.Generator, ids: np.ndarray) -> np.ndarray:
    """Change one digit of the 17-digit body to another digit (breaks the check character)."""
    m = _matrix(ids)
    rows = np.arange(len(m))
    pos = rng.integers(0, 17, len(m))
    old = m[rows, pos].astype(np.int64) - 48
    m[rows, pos] = ((old + rng.integers(1, 10, len(m))) % 10 + 48).astype(np.uint8)
    return _strings(m)


def transpose(rng: np.random.Generator, ids: np.ndarray) -> np.ndarray:
    """Swap two adjacent, different digits of the body."""
    m = _matrix(ids)
    rows = np.arange(len(m))
    differ = m[:, :16] != m[:, 1:17]
    pos = np.argmax(rng.random((len(m), 16)) * differ, axis=1)
    left, right = m[rows, pos].copy(), m[rows, pos + 1].copy()
    m[rows, pos], m[rows, pos + 1] = right, left
    return _strings(m)


def truncate(rng: np.random.Generator, ids: np.ndarray) -> np.ndarray:
    """Cut to 17 or 16 characters."""
    keep = np.where(rng.random(len(ids)) < 0.6, 17, 16)
    return np.asarray(np.strings.slice(np.asarray(ids, dtype=S), 0, keep), dtype=S)


def spaced(rng: np.random.Generator, ids: np.ndarray) -> np.ndarray:
    """Spaces or hyphens inside the number (6-8-4 groups, or groups of four)."""
    s = np.asarray(ids, dtype=S)
    a, b, c = np.strings.slice(s, 0, 6), np.strings.slice(s, 6, 14), np.strings.slice(s, 14, 18)
    fours = cat(*[np.strings.slice(s, i, i + 4) if k == 0 else cat(" ", np.strings.slice(s, i, i + 4))
                  for k, i in enumerate(range(0, 18, 4))])
    forms = [cat(a, " ", b, " ", c), cat(a, "-", b, "-", c), fours, cat(" ", s, " ")]
    kind = rng.integers(0, len(forms), len(s))
    out = s.copy()
    for k, f in enumerate(forms):
        out[kind == k] = f[kind == k]
    return out


def odd_x(rng: np.random.Generator, ids: np.ndarray, style: str) -> np.ndarray:
    """Write the check character X as ``x``, full-width ``Ｘ``, or ``×`` / ``χ``."""
    s = np.asarray(ids, dtype=S)
    last: np.ndarray
    if style == "lower":
        last = np.full(len(s), "x", dtype=S)
    elif style == "fullwidth":
        last = np.full(len(s), "Ｘ", dtype=S)
    else:
        last = pick(rng, ("×", "χ"), len(s))
    return cat(np.strings.slice(s, 0, 17), last)
