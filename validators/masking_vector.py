"""Vectorized masks and token normal forms over Arrow arrays of distinct values (pure).

Each function takes an array of distinct, non-null strings and returns an array of the same
length. Values of the common shapes (an ASCII ID number, a phone written with digits,
``+``, ``-``, ``()`` and spaces, a name of CJK ideographs or ASCII letters, an ASCII
e-mail) are handled with Arrow compute kernels; every other value falls back to the
scalar rule in :mod:`validators.masking`, which is the reference: for any input both give
the same result (checked by property-based tests). Keyed tokens are HMAC-SHA256 over the
RFC 2104 inner and outer pads hashed once per call (:func:`hmac_hex`), the same bytes as
:func:`hmac.new`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mdm.arrays import sorted_unique
from schemas.masking import MaskingConfig, MaskPattern

__all__ = ["assemble", "hmac_hex", "keep_ends_array", "mask_fast", "region_mask", "token_norm_fast"]

# Shapes handled by the kernels; tested on the NFKC form, so nothing is left to strip.
_ID_SHAPE = r"^[0-9A-Za-z_:]+$"  # also the typed keys of all_id_numbers (RESIDENT_ID:…)
_PHONE_SHAPE = r"^[0-9+()\-]+(?: +[0-9+()\-]+)*$"
_HAN_SHAPE = r"^[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}]+$"
_LATIN_SHAPE = r"^[A-Za-z](?:[A-Za-z .'\-]*[A-Za-z.'\-])?$"
_EMAIL_SHAPE = r"^[\x21-\x3f\x41-\x7e]+@[\x21-\x3f\x41-\x7e]*$"
_REF_SHAPE = r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$"
_MOBILE = r"^1[3-9][0-9]{9}$"

Scalar = Callable[[str], str | None]


def _ends(length: int, pattern: MaskPattern) -> tuple[int, int]:
    """How many leading and trailing characters a mask keeps at this length (as ``_keep_ends``)."""
    first, last = pattern.keep_first, pattern.keep_last
    allowed = max(0, length - pattern.min_masked)
    while first + last > allowed:
        if first > last or (first == last and first > 0):
            first -= 1
        else:
            last -= 1
    return first, last


def assemble(n: int, parts: list[tuple[np.ndarray, pa.Array]]) -> pa.Array:
    """One string array of length ``n`` from (positions, values) parts that cover every position once."""
    if not parts:
        return pa.array([], pa.string())
    positions = np.concatenate([p for p, _ in parts])
    values = pa.concat_arrays([v.cast(pa.string()) for _, v in parts])
    if len(positions) != n:
        raise AssertionError(f"assemble: {len(positions)} results for {n} values")
    order = np.empty(n, dtype=np.int64)
    order[positions] = np.arange(n, dtype=np.int64)
    return pc.take(values, pa.array(order))


def keep_ends_array(values: pa.Array, pattern: MaskPattern, ch: str) -> pa.Array:
    """``_keep_ends`` for every value: grouped by length, each group sliced by kernels."""
    lengths = pc.utf8_length(values).to_numpy(zero_copy_only=False)
    parts: list[tuple[np.ndarray, pa.Array]] = []
    for length in sorted_unique(lengths):
        where = np.flatnonzero(lengths == length)
        sub = pc.take(values, pa.array(where))
        first, last = _ends(int(length), pattern)
        head = pc.utf8_slice_codeunits(sub, 0, first)
        tail = pc.utf8_slice_codeunits(sub, int(length) - last, int(length)) if last else pa.scalar("")
        masked = pc.binary_join_element_wise(head, pa.scalar(ch * (int(length) - first - last)), tail, "")
        parts.append((where, masked))
    return assemble(len(values), parts)


def _split(norm: pa.Array, shape: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the values of ``shape`` and of the other non-null values (nulls are in neither)."""
    fast = pc.fill_null(pc.match_substring_regex(norm, shape), False).to_numpy(zero_copy_only=False)
    valid = norm.is_valid().to_numpy(zero_copy_only=False)
    return np.flatnonzero(fast), np.flatnonzero(~fast & valid)


def _nulls(norm: pa.Array) -> tuple[np.ndarray, pa.Array]:
    where = np.flatnonzero(norm.is_null().to_numpy(zero_copy_only=False))
    return where, pa.nulls(len(where), pa.string())


def _fallback(values: pa.Array, where: np.ndarray, scalar: Scalar) -> tuple[np.ndarray, pa.Array]:
    """The scalar rule for the values at ``where`` (each distinct value once)."""
    subset = pc.take(values, pa.array(where)).to_pylist()
    done: dict[str, str | None] = {}
    return where, pa.array([done[v] if v in done else done.setdefault(v, scalar(v)) for v in subset], pa.string())


def _national(norm: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Phone digits without +86 / 0086 and the trunk 0, and a foreign flag (as ``_national_digits``)."""
    plus = pc.starts_with(norm, "+")
    digits = pc.replace_substring_regex(norm, "[^0-9]", "")
    lengths = pc.utf8_length(digits)
    p0086 = pc.starts_with(digits, "0086")
    p86 = pc.starts_with(digits, "86")
    foreign = pc.and_(pc.invert(p0086), pc.and_(plus, pc.invert(p86)))
    strip2 = pc.and_(
        pc.invert(p0086),
        pc.or_(
            pc.and_(plus, p86),
            pc.and_(
                pc.invert(plus),
                pc.and_(p86, pc.and_(pc.is_in(lengths, pa.array([12, 13])), pc.invert(pc.starts_with(digits, "860")))),
            ),
        ),
    )
    without_cc = pc.if_else(strip2, pc.utf8_slice_codeunits(digits, 2), digits)
    digits = pc.if_else(p0086, pc.utf8_slice_codeunits(digits, 4), without_cc)
    trunk = pc.and_(pc.invert(foreign), pc.starts_with(digits, "0"))  # a foreign number keeps its 0
    digits = pc.if_else(trunk, pc.utf8_slice_codeunits(digits, 1), digits)
    return digits, foreign.to_numpy(zero_copy_only=False)


def _mask_phones(norm: pa.Array, cls: str, config: MaskingConfig) -> pa.Array:
    ch = config.mask_char
    digits, foreign = _national(norm)
    lengths = pc.utf8_length(digits).to_numpy(zero_copy_only=False)
    mobile = pc.match_substring_regex(digits, _MOBILE).to_numpy(zero_copy_only=False)
    empty = lengths == 0
    is_mobile = ~empty & ~foreign & mobile & (cls != "landline")
    is_land = ~empty & ~is_mobile & ~foreign & (cls != "mobile") & (lengths >= 9) & (lengths <= 11)
    other = ~empty & ~is_mobile & ~is_land
    parts: list[tuple[np.ndarray, pa.Array]] = []
    where = np.flatnonzero(empty)
    parts.append((where, pa.array([ch * 3] * len(where), pa.string())))
    for mask, pattern in ((is_mobile, config.mobile), (other, config.other_phone)):
        where = np.flatnonzero(mask)
        parts.append((where, keep_ends_array(pc.take(digits, pa.array(where)), pattern, ch)))
    where = np.flatnonzero(is_land)
    sub = pc.take(digits, pa.array(where))
    sub_len = lengths[where]
    area = np.where(
        pc.starts_with(sub, "10").to_numpy(zero_copy_only=False)
        | pc.starts_with(sub, "2").to_numpy(zero_copy_only=False),
        2,
        3,
    )
    land_parts: list[tuple[np.ndarray, pa.Array]] = []
    for a in (2, 3):
        for length in sorted_unique(sub_len[area == a]):
            idx = np.flatnonzero((area == a) & (sub_len == length))
            grp = pc.take(sub, pa.array(idx))
            masked = pc.binary_join_element_wise(
                pa.scalar("0"), pc.utf8_slice_codeunits(grp, 0, a), pa.scalar("-" + ch * (int(length) - a)), ""
            )
            land_parts.append((idx, masked))
    parts.append((where, assemble(len(where), land_parts)))
    return assemble(len(norm), parts)


def _mask_names(norm: pa.Array, cls: str, config: MaskingConfig, han: np.ndarray) -> pa.Array:
    ch = config.mask_char
    parts: list[tuple[np.ndarray, pa.Array]] = []
    where = np.flatnonzero(han)
    sub = pc.take(norm, pa.array(where))
    lengths = pc.utf8_length(sub).to_numpy(zero_copy_only=False)
    keep = np.minimum(config.name_keep, np.maximum(0, lengths - 1))
    han_parts = []
    for k in sorted_unique(keep):
        idx = np.flatnonzero(keep == k)
        head = pc.utf8_slice_codeunits(pc.take(sub, pa.array(idx)), 0, int(k))
        han_parts.append((idx, pc.binary_join_element_wise(head, pa.scalar(ch), "")))
    parts.append((where, assemble(len(where), han_parts)))
    where = np.flatnonzero(~han)
    sub = pc.take(norm, pa.array(where))
    if config.name_keep > 0:
        latin = pc.binary_join_element_wise(pc.utf8_upper(pc.utf8_slice_codeunits(sub, 0, 1)), pa.scalar(ch), "")
    else:
        latin = pa.array([ch] * len(where), pa.string())
    parts.append((where, latin))
    return assemble(len(norm), parts)


def _mask_emails(norm: pa.Array, config: MaskingConfig) -> pa.Array:
    ch = config.mask_char
    pieces = pc.extract_regex(norm, r"^(?P<local>.*)@(?P<domain>[^@]*)$")
    local, domain = pc.struct_field(pieces, [0]), pc.struct_field(pieces, [1])
    keep = np.minimum(config.email_keep, np.maximum(0, pc.utf8_length(local).to_numpy(zero_copy_only=False) - 1))
    parts: list[tuple[np.ndarray, pa.Array]] = []
    for k in sorted_unique(keep):
        idx = np.flatnonzero(keep == k)
        take = pa.array(idx)
        head = pc.utf8_slice_codeunits(pc.take(local, take), 0, int(k))
        parts.append((idx, pc.binary_join_element_wise(head, pa.scalar(ch * 3 + "@"), pc.take(domain, take), "")))
    return assemble(len(norm), parts)


def mask_fast(cls: str, values: pa.Array, config: MaskingConfig, scalar: Scalar) -> pa.Array:
    """Masks of distinct non-null ``values`` of class ``cls``; ``scalar`` masks the unusual shapes."""
    norm = pc.utf8_normalize(values, "NFKC")
    if cls == "id_number":
        fast, slow = _split(norm, _ID_SHAPE)
        done = keep_ends_array(pc.utf8_upper(pc.take(norm, pa.array(fast))), config.id_number, config.mask_char)
    elif cls in ("phone", "mobile", "landline"):
        fast, slow = _split(norm, _PHONE_SHAPE)
        done = _mask_phones(pc.take(norm, pa.array(fast)), cls, config)
    elif cls in ("name", "name_latin"):
        han = pc.fill_null(pc.match_substring_regex(norm, _HAN_SHAPE), False).to_numpy(zero_copy_only=False)
        latin = pc.fill_null(pc.match_substring_regex(norm, _LATIN_SHAPE), False).to_numpy(zero_copy_only=False)
        ok = latin | (han & (cls == "name"))
        fast, slow = np.flatnonzero(ok), np.flatnonzero(~ok)
        done = _mask_names(pc.take(norm, pa.array(fast)), cls, config, han[fast] & (cls == "name"))
    elif cls == "email":
        fast, slow = _split(norm, _EMAIL_SHAPE)
        done = _mask_emails(pc.take(norm, pa.array(fast)), config)
    else:
        return _fallback(values, np.arange(len(values)), scalar)[1]
    return assemble(len(values), [(fast, done), _fallback(values, slow, scalar)])


def token_norm_fast(cls: str, values: pa.Array, scalar: Scalar) -> pa.Array:
    """Token normal forms of a string array (null for a null value or one that has none)."""
    norm = pc.utf8_normalize(values, "NFKC")
    if cls == "id_number":
        fast, slow = _split(norm, _ID_SHAPE)
        done = pc.utf8_upper(pc.take(norm, pa.array(fast)))
    elif cls in ("phone", "mobile", "landline"):
        fast, slow = _split(norm, _PHONE_SHAPE)
        digits, foreign = _national(pc.take(norm, pa.array(fast)))
        national = pc.if_else(pc.equal(digits, ""), pa.scalar(None, pa.string()), digits)
        done = pc.if_else(pa.array(foreign), pc.binary_join_element_wise(pa.scalar("+"), digits, ""), national)
    elif cls == "name":
        han = pc.fill_null(pc.match_substring_regex(norm, _HAN_SHAPE), False).to_numpy(zero_copy_only=False)
        latin = pc.fill_null(pc.match_substring_regex(norm, _LATIN_SHAPE), False).to_numpy(zero_copy_only=False)
        valid = norm.is_valid().to_numpy(zero_copy_only=False)
        fast, slow = np.flatnonzero(han | latin), np.flatnonzero(~(han | latin) & valid)
        done = pc.utf8_lower(pc.replace_substring_regex(pc.take(norm, pa.array(fast)), r"[ .\-]+", ""))
    elif cls == "email":
        fast, slow = _split(norm, _EMAIL_SHAPE)
        done = pc.utf8_lower(pc.take(norm, pa.array(fast)))
    elif cls == "token_only":
        fast, slow = _split(norm, _REF_SHAPE)
        done = pc.take(norm, pa.array(fast))
    else:
        fast, slow = np.empty(0, np.int64), np.flatnonzero(norm.is_valid().to_numpy(zero_copy_only=False))
        done = pa.array([], pa.string())
    return assemble(len(values), [(fast, done), _fallback(values, slow, scalar), _nulls(norm)])


def hmac_hex(key: bytes, family: str, norms: pa.Array, n_hex: int) -> pa.Array:
    """Hex HMAC-SHA256(key, family ␟ value), truncated to ``n_hex``, of every non-null value (null stays null).

    The RFC 2104 pads are hashed once and each value continues from copies of those states
    (``hashlib``'s C code: about 1 µs a value on one core, two to three times DuckDB's
    ``sha256`` kernels on this machine's two cores). The values of one chunk pass through a
    short-lived list of ``bytes``; the hex digits are laid into one Arrow buffer directly.
    """
    if not key:
        raise ValueError("a token key is required (set MDM_TOKEN_KEY)")
    block = hashlib.sha256().block_size
    padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded) + f"{family}\x1f".encode())
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
    values = norms.cast(pa.string())
    present = values.drop_null() if values.null_count else values
    digests = b"".join(_hmac_digests(inner, outer, present.cast(pa.binary()).to_pylist()))
    tokens = _hex_strings(digests, len(present), n_hex)
    if not values.null_count:
        return tokens
    valid = values.is_valid().to_numpy(zero_copy_only=False)
    slots = pa.array(np.cumsum(valid) - 1, pa.int64(), mask=~valid)  # a null slot takes a null token
    return pc.take(tokens, slots)


def _hmac_digests(inner: Any, outer: Any, values: list[bytes]) -> Iterator[bytes]:
    """HMAC-SHA256 digests of ``values`` from the precomputed inner and outer pad states."""
    inner_copy, outer_copy = inner.copy, outer.copy
    for value in values:
        h = inner_copy()
        h.update(value)
        o = outer_copy()
        o.update(h.digest())
        yield o.digest()


def _hex_strings(digests: bytes, n: int, n_hex: int) -> pa.Array:
    """``n`` concatenated 32-byte digests as a string array of their first ``n_hex`` hex digits."""
    if not 0 < n_hex <= 64:
        raise ValueError(f"n_hex must be 1..64, not {n_hex}")
    hex_digits = np.frombuffer(digests.hex().encode("ascii"), dtype=np.uint8).reshape(n, 64)[:, :n_hex]
    offsets = np.arange(n + 1, dtype=np.int32) * n_hex
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(hex_digits)))


def region_mask(
    province: pa.Array, city: pa.Array, district: pa.Array, present: pa.Array, config: MaskingConfig
) -> pa.Array:
    """Address masks from already parsed region columns: the kept region names (as the scalar rule
    keeps them) followed by three mask characters; null where ``present`` is false."""
    ch3 = config.mask_char * 3
    empty = pa.scalar("")
    p = pc.fill_null(province.cast(pa.string()), "")
    c = pc.fill_null(city.cast(pa.string()), "")
    d = pc.fill_null(district.cast(pa.string()), "")
    c = pc.if_else(pc.equal(c, p), empty, c)
    d = pc.if_else(pc.or_(pc.equal(d, p), pc.equal(d, pc.fill_null(city.cast(pa.string()), ""))), empty, d)
    if config.address_keep == "none":
        kept = pc.if_else(present, empty, empty)
    elif config.address_keep == "province":
        kept = p
    elif config.address_keep == "city":
        kept = pc.binary_join_element_wise(p, c, "")
    else:
        kept = pc.binary_join_element_wise(p, c, d, "")
    masked = pc.binary_join_element_wise(kept, pa.scalar(ch3), "")
    return pc.if_else(present, masked, pa.scalar(None, pa.string()))
