"""Identity-document numbers, built with vectorized arithmetic.

Resident IDs (GB 11643-1999): region (6) + YYYYMMDD + sequence (3, odd last digit = male)
+ MOD 11-2 check character. The same layout with region 810000/820000/830000 is the
HK/Macau/Taiwan residence permit.
"""

from __future__ import annotations

import numpy as np

from pipelines.generator.textops import S, cat, digits

WEIGHTS = np.asarray((7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2), dtype=np.int64)
CHECK_CHARS = np.asarray(list("10X98765432"), dtype=S)
_POW10 = 10 ** np.arange(16, -1, -1, dtype=np.int64)

PLACEHOLDER_IDS = (
    "000000000000000000",
    "111111111111111111",
    "123456789012345678",
    "111111111111111110",
    "999999999999999999",
    "440524188001010014",
)
PLACEHOLDER_PROB = (0.35, 0.25, 0.2, 0.08, 0.07, 0.05)
_PASSPORT_LETTERS = np.asarray(list("ABCDEFGHJKLMNPQRSTUVWXYZ"), dtype=S)  # no I or O
_UPPER = np.asarray(list("ABCDEFGHIJKLMNPQRSTUVWXYZ"), dtype=S)


def body17(region: np.ndarray, dob_ymd: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """The 17-digit body as int64: region * 10**11 + YYYYMMDD * 1000 + sequence."""
    return (np.asarray(region, np.int64) * 10**11 + np.asarray(dob_ymd, np.int64) * 1000
            + np.asarray(seq, np.int64))


def check_index(body: np.ndarray) -> np.ndarray:
    """Index into ``"10X98765432"`` of the MOD 11-2 check character of each 17-digit body."""
    d = (np.asarray(body, np.int64)[:, None] // _POW10[None, :]) % 10
    return (d * WEIGHTS[None, :]).sum(axis=1) % 11


def resident_ids(region: np.ndarray, dob_ymd: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Valid 18-character resident IDs (uppercase X)."""
    body = body17(region, dob_ymd, seq)
    return cat(digits(body, 17), CHECK_CHARS[check_index(body)])


def legacy15(region: np.ndarray, dob_ymd: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """15-digit numbers of GB 11643-1989: region + YYMMDD + sequence (births 1900-1999 only)."""
    yymmdd = np.asarray(dob_ymd, np.int64) % 1_000_000
    return digits(np.asarray(region, np.int64) * 10**9 + yymmdd * 1000 + np.asarray(seq, np.int64), 15)


def unique_sequences(region: np.ndarray, dob_ymd: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Sequence numbers bumped by 2 (same gender) until every (region, DOB, sequence) is unique."""
    seq = np.asarray(seq, np.int64).copy()
    for _ in range(100):
        body = body17(region, dob_ymd, seq)
        order = np.argsort(body, kind="stable")
        dup_sorted = np.zeros(len(body), dtype=bool)
        dup_sorted[1:] = body[order][1:] == body[order][:-1]
        if not dup_sorted.any():
            return seq
        dup = order[dup_sorted]
        seq[dup] = (seq[dup] + 2) % 996
    raise RuntimeError("could not make resident ID sequences unique")


def check_ok(ids: np.ndarray) -> np.ndarray:
    """True where an 18-character string has a correct MOD 11-2 check character."""
    ids = np.asarray(ids, dtype=S)
    ok = (np.strings.str_len(ids) == 18) & np.strings.isdigit(np.strings.slice(ids, 0, 17))
    out = np.zeros(len(ids), dtype=bool)
    if ok.any():
        body = np.strings.slice(ids[ok], 0, 17).astype(np.int64)
        out[ok] = CHECK_CHARS[check_index(body)] == np.strings.slice(ids[ok], 17, 18)
    return out


def _rand_digits(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    return digits(rng.integers(0, 10**width, size=n, dtype=np.int64), width)


def prc_passports(rng: np.random.Generator, n: int) -> np.ndarray:
    """PRC passports: ``E`` + letter (no I/O) + 7 digits since 2017, else ``G`` + 8 digits."""
    new = cat("E", _PASSPORT_LETTERS[rng.integers(0, len(_PASSPORT_LETTERS), n)], _rand_digits(rng, n, 7))
    old = cat("G", _rand_digits(rng, n, 8))
    return np.asarray(np.where(rng.random(n) < 0.7, new, old), dtype=S)


def hk_macau_permits(rng: np.random.Generator, macau: np.ndarray) -> np.ndarray:
    """HK/Macau permits: H/M + 8-digit lifetime number, sometimes + 2-digit renewal count."""
    n = len(macau)
    head = np.where(macau, "M", "H").astype(S)
    base = cat(head, digits(rng.integers(10**7, 10**8, n), 8))
    count = digits(rng.integers(0, 12, n), 2)
    return np.asarray(np.where(rng.random(n) < 0.35, cat(base, count), base), dtype=S)


def taiwan_permits(rng: np.random.Generator, n: int) -> np.ndarray:
    """Taiwan permits: 8-digit lifetime number, older cards + 2-digit count."""
    base = digits(rng.integers(10**7, 10**8, n), 8)
    return np.asarray(np.where(rng.random(n) < 0.25, cat(base, digits(rng.integers(0, 10, n), 2)), base), dtype=S)


def foreign_passports(rng: np.random.Generator, shape: np.ndarray) -> np.ndarray:
    """Foreign passport numbers by shape code: D9, M8, L2D7, C8, D2L2D5, E7L."""
    n = len(shape)
    letters = _UPPER
    l1, l2 = letters[rng.integers(0, 25, n)], letters[rng.integers(0, 25, n)]
    out = np.full(n, "", dtype=S)
    forms = {
        "D9": _rand_digits(rng, n, 9),
        "M8": cat("M", _rand_digits(rng, n, 8)),
        "L2D7": cat(l1, l2, _rand_digits(rng, n, 7)),
        "C8": cat("C", l1, _rand_digits(rng, n, 7)),
        "D2L2D5": cat(_rand_digits(rng, n, 2), l1, l2, _rand_digits(rng, n, 5)),
        "E7L": cat("E", _rand_digits(rng, n, 7), l1),
    }
    for code, values in forms.items():
        m = shape == code
        out[m] = values[m]
    return out


def military_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Officer / soldier IDs written as free text, e.g. ``军字第1234567号``."""
    prefix = np.asarray(["军字第", "武字第", "士字第"], dtype=S)[rng.choice(3, size=n, p=[0.6, 0.2, 0.2])]
    return cat(prefix, _rand_digits(rng, n, 7), "号")
