"""Masking rules and keyed tokens (validators.masking, schemas.masking)."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdm.errors import ConfigError
from schemas.masking import DEFAULT_MASKING, masking_config_from_overrides
from validators.masking import mask_array, mask_table, mask_text, mask_value, token_array, token_value

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("id_number", "110101199003071234", "110101********1234"),
        ("id_number", "11010119900307123x", "110101********123X"),
        ("all_id_numbers", "110101199003071234", "110101********1234"),
        ("mobile", "13800138000", "138****8000"),
        ("mobile", "+8613800138000", "138****8000"),
        ("phone", "+86 138 0013 8000", "138****8000"),
        ("landline", "010-62345678", "010-********"),
        ("phone", "+862087654321", "020-********"),
        ("phone", "0755-86001234", "0755-********"),
        ("name", "张三", "张*"),
        ("name", "欧阳娜娜", "欧*"),
        ("name", "Zhang Wei", "Z*"),
        ("name_latin", "zhang san", "Z*"),
        ("email", "zhangsan@example.com", "z***@example.com"),
        ("address", "北京市朝阳区建国路88号院3号楼", "北京市朝阳区***"),
        ("address_norm", "某某路1号", "***"),
        ("all_phones", "+8613800138000, +8613912345678", "138****8000, 139****5678"),
        ("n_records", "3", "3"),
        ("birth_date", "1990-03-07", "1990-03-07"),
        ("systems", "deposit, card", "deposit, card"),
        ("mobile_source_record_id", "D0001", "D0001"),
        ("brand_new_column", "secret", "***"),
    ],
)
def test_mask_value(kind: str, value: str, expected: str) -> None:
    assert mask_value(kind, value) == expected


def test_mask_value_empty_is_none() -> None:
    assert mask_value("id_number", None) is None
    assert mask_value("mobile", "  ") is None


def test_short_document_numbers_keep_less() -> None:
    masked = mask_text("id_number", "E12345678")
    assert masked is not None and masked.count("*") >= 8 and "1234567" not in masked


def test_tokens_are_keyed_normalized_and_not_plain_hashes() -> None:
    a = token_value("mobile", "+8613800138000", KEY)
    assert a == token_value("phone", "138 0013 8000", KEY)  # one family for every phone column
    assert a != token_value("mobile", "+8613800138000", b"x" * 32)
    assert a is not None and len(a) == DEFAULT_MASKING.token_hex_chars
    assert a not in hashlib.sha256(b"13800138000").hexdigest()
    assert token_value("id_number", "11010119900307123x", KEY) == token_value("id_number", "11010119900307123X", KEY)
    assert token_value("id_number", "110101199003071234", KEY) != token_value("name", "110101199003071234", KEY)


def test_arrays_mask_lists_element_wise_and_keep_nulls() -> None:
    arr = pa.array([["+8613800138000", None], None, [], ["+8613912345678", "+8613800138000"]])
    assert mask_array("phone", arr).to_pylist() == [["138****8000", None], None, [], ["139****5678", "138****8000"]]
    tokens = token_array("phone", arr, KEY).to_pylist()
    assert tokens[0][0] == tokens[3][1] == token_value("phone", "13800138000", KEY)


def test_mask_table_drops_unclassified_and_raw_columns() -> None:
    table = pa.table(
        {
            "golden_id": ["G1"],
            "id_number": ["110101199003071234"],
            "raw_text": ["110101199003071234,张三"],
            "new_pii": ["13800138000"],
            "customer_no": ["C123456789"],
            "n_deposit": [1],
        }
    )
    out, dropped = mask_table(table, DEFAULT_MASKING, KEY)
    assert out.column_names == ["golden_id", "id_number", "id_number_token", "customer_no_token", "n_deposit"]
    assert set(dropped) == {"raw_text", "new_pii", "customer_no"}
    assert out.column("id_number").to_pylist() == ["110101********1234"]


def test_config_overrides_merge_and_errors_name_the_field() -> None:
    cfg = masking_config_from_overrides({"columns": {"nickname": "name"}, "token_hex_chars": 20})
    assert cfg.classify("nickname") == "name" and cfg.classify("id_number") == "id_number"
    assert len(token_value("name", "张三", KEY, cfg) or "") == 20
    with pytest.raises(ConfigError, match="token_hex_chars"):
        masking_config_from_overrides({"token_hex_chars": 4})


_ids = st.text(alphabet="0123456789X", min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(_ids)
def test_id_mask_never_reveals_more_than_ten_characters(value: str) -> None:
    masked = mask_text("id_number", value)
    assert masked is not None and len(masked) == len(value)
    assert len(value) - masked.count("*") <= 10
    assert masked.count("*") >= min(8, len(value))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_masking_never_crashes_and_is_stable(value: str) -> None:
    for cls in ("id_number", "phone", "name", "email", "address", "name_latin"):
        assert mask_text(cls, value) == mask_text(cls, value)
        token_value(cls, value, KEY)
