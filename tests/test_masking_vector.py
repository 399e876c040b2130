"""The vectorized masks and tokens agree with the scalar reference rules on any input."""

from __future__ import annotations

import hmac

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.masking import DEFAULT_MASKING, masking_config_from_overrides
from validators.masking import MaskMemo, mask_array, mask_table, mask_text, token_array, token_value
from validators.masking_vector import hmac_hex, region_mask

KEY = b"k" * 32
CLASSES = ("id_number", "phone", "mobile", "landline", "name", "name_latin", "email", "token_only")

_phone = st.builds(
    lambda prefix, body, sep: prefix + sep.join(body[i : i + 4] for i in range(0, len(body), 4)),
    st.sampled_from(["", "+", "+86", "0086", "86", "0", "+1 ", "(010)", "＋８６", " "]),
    st.text(alphabet="0123456789", min_size=0, max_size=14),
    st.sampled_from(["", " ", "-", "  ", "()"]),
)
_id = st.text(alphabet="0123456789Xx×χ -", min_size=0, max_size=20)
_name = st.one_of(
    st.text(alphabet="张王李欧阳娜丰䶮㐀 ·.", min_size=0, max_size=6),
    st.text(alphabet="abcXYZ .-'", min_size=0, max_size=12),
    st.text(max_size=8),
)
_email = st.builds(
    lambda a, b: f"{a}@{b}", st.text(alphabet="abcZ.@_+ é", max_size=6), st.text(alphabet="ex.cOm@ ", max_size=8)
)
_any = st.one_of(_phone, _id, _name, _email, st.text(max_size=20))


def _scalar_masks(cls: str, values: list[str | None]) -> list[str | None]:
    return [None if v is None else mask_text(cls, v) for v in values]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), _any), max_size=25), st.sampled_from(CLASSES))
def test_vector_masks_equal_the_scalar_rule(values: list[str | None], cls: str) -> None:
    assert mask_array(cls, pa.array(values, pa.string())).to_pylist() == _scalar_masks(cls, values)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), _any), max_size=25), st.sampled_from(CLASSES))
def test_vector_tokens_equal_the_scalar_hmac(values: list[str | None], cls: str) -> None:
    expected = [None if v is None else token_value(cls, v, KEY) for v in values]
    assert token_array(cls, pa.array(values, pa.string()), KEY).to_pylist() == expected


@pytest.mark.parametrize(
    ("cls", "value", "expected"),
    [
        ("phone", "+1 415 555 0100", "*******0100"),  # foreign: no trunk 0 stripping, last four only
        ("phone", "0086 138 0013 8000", "138****8000"),
        ("landline", "13800138000", "0138-********"),
        ("mobile", "010-62345678", "******5678"),
        ("id_number", "11010119900307123x", "110101********123X"),
        ("name", "䶮", "*"),
        ("email", "a@b", "***@b"),
    ],
)
def test_vector_masks_on_hand_made_shapes(cls: str, value: str, expected: str) -> None:
    assert mask_text(cls, value) == expected
    assert mask_array(cls, pa.array([value])).to_pylist() == [expected]


def test_foreign_phone_without_digits_keeps_the_scalar_token() -> None:
    assert token_array("phone", pa.array(["+"]), KEY).to_pylist() == [token_value("phone", "+", KEY)]


def test_hmac_kernel_is_rfc2104() -> None:
    norms = pa.array(["13800138000", None, "张三", ""])
    out = hmac_hex(KEY, "phone", norms, 64).to_pylist()
    assert out[0] == hmac.new(KEY, b"phone\x1f13800138000", "sha256").hexdigest()
    assert out[1] is None
    assert out[2] == hmac.new(KEY, "phone\x1f张三".encode(), "sha256").hexdigest()
    long_key = b"q" * 100  # longer than the block: hashed first, as RFC 2104 says
    expected = hmac.new(long_key, b"id\x1fx", "sha256").hexdigest()
    assert hmac_hex(long_key, "id", pa.array(["x"]), 64).to_pylist() == [expected]


def test_memo_shares_tokens_between_raw_and_standardized_forms() -> None:
    memo = MaskMemo()
    a = token_array("phone", pa.array(["138 0013 8000", "010-62345678"]), KEY, memo=memo).to_pylist()
    b = token_array("mobile", pa.array(["+8613800138000", None]), KEY, memo=memo).to_pylist()
    assert a[0] == b[0] == token_value("mobile", "13800138000", KEY)
    assert b[1] is None
    assert mask_array("name", pa.array(["张三", "李四", "Wang Wu"])).to_pylist() == ["张*", "李*", "W*"]


def test_addresses_mask_from_parsed_regions_like_the_scalar_rule() -> None:
    table = pa.table(
        {
            "address_raw": ["北京朝阳区建国路88号", "朝阳区建国路1号", "  ", None, "上海市浦东新区世纪大道1号"],
            "province": ["北京市", None, None, None, "上海市"],
            "city": ["北京市", None, None, None, "上海市"],
            "district": ["朝阳区", None, None, None, "浦东新区"],
        }
    )
    out, _ = mask_table(table, DEFAULT_MASKING, KEY)
    assert out.column("address_raw").to_pylist() == ["北京市朝阳区***", "***", None, None, "上海市浦东新区***"]
    assert mask_text("address", "北京朝阳区建国路88号") == "北京市朝阳区***"
    city = masking_config_from_overrides({"address_keep": "city"})
    masked = region_mask(table.column("province").combine_chunks(), table.column("city").combine_chunks(),
                         table.column("district").combine_chunks(), pa.array([True] * 5), city).to_pylist()
    assert masked == ["北京市***", "***", "***", "***", "上海市***"]
