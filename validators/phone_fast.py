"""Vectorized fast paths of the phone parser: plain mainland mobiles and landlines, with Arrow regexes.

Most distinct phone texts are one mainland mobile written in a common way (``13812345678``,
``+86 138-1234-5678``, ``(+86)13812345678``). :func:`plain_mobile_e164` recognizes them
for a whole array at once with Arrow's RE2 engine, so they never reach the per-value parser
of :mod:`validators.phones`.

It only decides values where the per-value parser is sure to give exactly one mobile and no
reason code: Python ``str`` values of at most ``max_chars`` characters whose text, as the
per-value parser sees it (:func:`fast_text`), is made only of ASCII digits, spaces and
``+ ( ) -`` (there Python's Unicode ``\\s`` and ``\\d`` match what RE2's ASCII classes match),
in the per-value parser's mobile shape, and whose 11 digits are a valid mobile outside the
IoT ranges. :func:`country_code_mobiles` finds the mobiles written after a bare ``86``, for
the caller to check against its separator and extension rules. :func:`plain_landlines` does
the same for the area code + subscriber number shape, typed from phonenumbers' metadata by
:func:`validators.phone_types.classify_cn_trunk`. Every other value is left to the per-value
parser. ``tests/test_phones.py`` checks that both agree.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from validators.phone_types import classify_cn_trunk

# The per-value parser's _FAST_LOOSE_RE with its whitespace reduced to the space character.
_SHAPE = r"^ *(?:\+ *86|0086|\(\+?86\))?[ \-]*(?P<a>1[0-9]{2})[ \-]?(?P<b>[0-9]{4})[ \-]?(?P<c>[0-9]{4}) *$"
# A mobile written after a bare country code (86-138..., 8613812345678): the per-value parser's field parser
# reads it as one plain mobile when the configured separators and extension markers leave the text whole.
_COUNTRY_SHAPE = r"^ *86[ \-]?(?P<a>1[0-9]{2})[ \-]?(?P<b>[0-9]{4})[ \-]?(?P<c>[0-9]{4}) *$"
# The per-value parser's _FAST_LANDLINE_RE: area code (optionally in parentheses) and subscriber number.
_LANDLINE_SHAPE = r"^ *(?:\(0[1-9][0-9]{1,2}\)|0[1-9][0-9]{1,2})[ \-]?[0-9]{7,8} *$"


@dataclass(frozen=True)
class FastText:
    """The ``str`` values of an array, as text the fast paths can test."""

    positions: npt.NDArray[np.int64]  # where in the original array
    text: pa.Array  # ASCII values as they are; others NFKC'd after ``str.strip``, as the per-value parser does
    lengths: npt.NDArray[np.int64]  # an upper bound of the per-value parser's text length

    def subset(self, mask: npt.NDArray[np.bool_]) -> FastText:
        return FastText(self.positions[mask], self.text.filter(pa.array(mask)), self.lengths[mask])


def fast_text(values: npt.NDArray[np.object_]) -> FastText:
    """Prepare the ``str`` values of ``values`` for :func:`plain_mobile_e164` and :func:`plain_landlines`.

    ASCII values are kept as they are: NFKC leaves them alone and the shapes allow the spaces
    ``str.strip`` would remove (other whitespace fails the shapes). Other values get exactly the
    per-value parser's ``unicodedata.normalize("NFKC", value.strip())`` (full-width digits).
    """
    if pd.api.types.infer_dtype(values, skipna=False) == "string":  # every value a str: the common case
        positions = np.arange(len(values), dtype=np.int64)
    else:
        positions = np.flatnonzero(np.fromiter((isinstance(v, str) for v in values), dtype=bool, count=len(values)))
    text = pa.array(values[positions], type=pa.string())
    lengths = pc.utf8_length(text).to_numpy(zero_copy_only=False).astype(np.int64)
    other = np.flatnonzero(~pc.string_is_ascii(text).to_numpy(zero_copy_only=False))
    if len(other):
        normalized = [unicodedata.normalize("NFKC", v.strip()) for v in values[positions[other]].tolist()]
        mask = np.zeros(len(positions), dtype=bool)
        mask[other] = True
        text = pc.replace_with_mask(text, pa.array(mask), pa.array(normalized, type=pa.string()))
        lengths[other] = [len(v) for v in normalized]
    return FastText(positions, text, lengths)


def _mobiles(
    values: FastText, shape: str, mobile_pattern: str, iot_prefixes: tuple[str, ...], max_chars: int
) -> tuple[npt.NDArray[np.bool_], pa.Array]:
    """Which values have ``shape`` with 11 digits that are a valid mobile outside the IoT ranges, and their E.164."""
    parts = pc.extract_regex(values.text, shape)
    digits = pc.binary_join_element_wise(parts.field("a"), parts.field("b"), parts.field("c"), "")
    ok = pc.and_(parts.is_valid(), pa.array(values.lengths <= max_chars))
    ok = pc.and_(ok, pc.match_substring_regex(digits, f"^(?:{mobile_pattern})$"))
    for prefix in iot_prefixes:
        ok = pc.and_(ok, pc.invert(pc.starts_with(digits, prefix)))
    ok_np = ok.fill_null(False).to_numpy(zero_copy_only=False)
    return ok_np, pc.binary_join_element_wise("+86", digits.filter(pa.array(ok_np)), "")


def plain_mobile_e164(
    values: FastText, n: int, mobile_pattern: str, iot_prefixes: tuple[str, ...], max_chars: int
) -> npt.NDArray[np.object_]:
    """E.164 (``+86`` + 11 digits) of each value that is one plain mainland mobile; None where not decided.

    ``values`` are the :func:`fast_text` of an array of ``n`` values; the answer is aligned to that array.
    """
    out = np.full(n, None, dtype=object)
    if len(values.positions):
        ok, e164 = _mobiles(values, _SHAPE, mobile_pattern, iot_prefixes, max_chars)
        out[values.positions[ok]] = e164.to_numpy(zero_copy_only=False)
    return out


def country_code_mobiles(
    values: FastText, mobile_pattern: str, iot_prefixes: tuple[str, ...], max_chars: int
) -> list[tuple[int, str, str]]:
    """(position, E.164, text) of the values that are a mobile after a bare ``86`` (``86-13812345678``).

    The per-value parser reads one as a plain mobile when its field parser keeps the stripped
    text whole (no separator, no extension marker, at least one number per field): the caller
    checks that against its rules.
    """
    if not len(values.positions):
        return []
    ok, e164 = _mobiles(values, _COUNTRY_SHAPE, mobile_pattern, iot_prefixes, max_chars)
    texts = values.text.filter(pa.array(ok)).to_pylist()
    return list(zip(values.positions[ok].tolist(), e164.to_pylist(), texts, strict=True))


def plain_landlines(
    values: FastText, iot_prefixes: tuple[str, ...], max_chars: int
) -> tuple[npt.NDArray[np.int64], list[tuple[str, str] | None]]:
    """Positions of the values in the per-value parser's landline shape, and :func:`classify_cn` of their digits.

    Each answer is ``(e164, kind)``, None (not a valid number) or :data:`UNSURE` (the per-value
    parser must decide). Values whose digits start with an IoT prefix are left out.
    """
    if not len(values.positions):
        return values.positions, []
    ok = pc.and_(pc.match_substring_regex(values.text, _LANDLINE_SHAPE), pa.array(values.lengths <= max_chars))
    digits = pc.replace_substring_regex(values.text, "[^0-9]", "")
    for prefix in iot_prefixes:
        ok = pc.and_(ok, pc.invert(pc.starts_with(digits, prefix)))
    ok_np = ok.fill_null(False).to_numpy(zero_copy_only=False)
    if not ok_np.any():
        return values.positions[:0], []
    return values.positions[ok_np], classify_cn_trunk(digits.filter(pa.array(ok_np)))
