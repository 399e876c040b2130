"""Masking in chunks of rows (validators.masking.mask_chunks) gives the whole-table result, and the
hashlib HMAC kernel (validators.masking_vector.hmac_hex) equals :func:`hmac.new`."""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.masking import DEFAULT_MASKING
from validators.masking import MaskMemo, mask_chunks, mask_table
from validators.masking_vector import hmac_hex

KEY = b"k" * 32


def _hand_made() -> pa.Table:
    """Every kind of column the mart masks, over two Arrow chunks (chunks must cross their border)."""
    first = pa.table(
        {
            "record_key": ["deposit:1", "card:1", "loan:1", "deposit:2"],
            "name": ["张三丰", "Zhang Sanfeng", None, "欧阳娜娜"],
            "id_number_raw": ["110101199003071234", "11010119900307123 4", "", None],
            "id_number": ["110101199003071234", "110101199003071234", None, "440305198512120018"],
            "mobile_raw": ["138-0013-8000", "+86 138 0013 8000", "13912345678", "weird ☎ 139"],
            "phones": [["+8613800138000", "+861062345678"], [], None, ["+8613912345678"]],
            "email_raw": ["ZhangSanFeng@Example.com", None, "no-at-sign", "a@b"],
            "address_raw": ["北京朝阳区建国路88号", None, "  ", "上海市浦东新区世纪大道1号"],
            "province": ["北京市", None, None, "上海市"],
            "city": ["北京市", None, None, "上海市"],
            "district": ["朝阳区", None, None, "浦东新区"],
            "customer_no": ["600012345", "C-77", None, "L-1"],
            "id_key": ["RESIDENT_ID:1", "RESIDENT_ID:1", None, "RESIDENT_ID:2"],
            "favourite_colour": ["red", "blue", None, "green"],
            "source_line": [1, 2, 3, 4],
        }
    )
    second = pa.table(
        {
            "record_key": ["card:2", "loan:2", "deposit:3"],
            "name": ["张三丰", "李四", "Li Si"],
            "id_number_raw": ["E12345678", "110101199003071234", "440305198512120018"],
            "id_number": ["E12345678", "110101199003071234", "440305198512120018"],
            "mobile_raw": ["0755-86001234", "+1 415 555 0100", "138 0013 8000"],
            "phones": [["0755-86001234"], ["+8613800138000", None], []],
            "email_raw": ["li.si@example.com", "ZHANGSANFENG@example.com", None],
            "address_raw": ["某某路1号", "北京市朝阳区建国路1号", None],
            "province": [None, "北京市", None],
            "city": [None, "北京市", None],
            "district": [None, "朝阳区", None],
            "customer_no": ["600012345", "X", "Y"],
            "id_key": ["PASSPORT:E12345678", "RESIDENT_ID:1", "RESIDENT_ID:2"],
            "favourite_colour": ["red", None, "blue"],
            "source_line": [5, 6, 7],
        }
    )
    return pa.concat_tables([first, second])


def _chunked(table: pa.Table, chunk_rows: int, memo: MaskMemo | None = None) -> tuple[pa.Table, list[str]]:
    parts = list(mask_chunks(table, DEFAULT_MASKING, KEY, chunk_rows, memo))
    assert all(dropped == parts[0][1] for _, dropped in parts)
    assert all(len(chunk) <= chunk_rows for chunk, _ in parts)
    return pa.concat_tables([chunk for chunk, _ in parts]), parts[0][1]


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 4, 5, 7, 1000])
def test_chunks_together_equal_the_whole_table(chunk_rows: int) -> None:
    table = _hand_made()
    whole, dropped = mask_table(table, DEFAULT_MASKING, KEY)
    chunked, chunk_dropped = _chunked(table, chunk_rows)
    assert chunk_dropped == dropped == ["customer_no", "id_key", "favourite_colour"]
    assert chunked.schema == whole.schema
    assert chunked.to_pydict() == whole.to_pydict()
    assert "customer_no_token" in chunked.column_names and "phones_tokens" in chunked.column_names


def test_chunks_with_a_memo_give_the_same_tokens() -> None:
    table = _hand_made()
    whole, _ = mask_table(table, DEFAULT_MASKING, KEY)
    assert _chunked(table, 2, MaskMemo())[0].to_pydict() == whole.to_pydict()


def test_an_empty_table_gives_one_empty_chunk_with_the_masked_schema() -> None:
    table = _hand_made().slice(0, 0)
    parts = list(mask_chunks(table, DEFAULT_MASKING, KEY, 3))
    whole, dropped = mask_table(table, DEFAULT_MASKING, KEY)
    assert len(parts) == 1 and parts[0][0].num_rows == 0
    assert parts[0][0].schema == whole.schema and parts[0][1] == dropped


def test_chunk_rows_must_be_positive() -> None:
    with pytest.raises(ValueError, match="chunk_rows"):
        list(mask_chunks(_hand_made(), DEFAULT_MASKING, KEY, 0))


_value = st.one_of(
    st.none(),
    st.text(alphabet="0123456789Xx -+", max_size=20),
    st.text(alphabet="张王李欧阳 abcXYZ.@", max_size=10),
    st.text(max_size=8),
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(_value, _value, _value, _value, st.one_of(st.none(), st.lists(_value, max_size=3))), max_size=12
    ),
    chunk_rows=st.integers(min_value=1, max_value=13),
)
def test_any_chunking_equals_the_whole_table(
    rows: list[tuple[str | None, str | None, str | None, str | None, list[str | None] | None]], chunk_rows: int
) -> None:
    names = ["id_number", "mobile", "name", "email_raw", "all_phones"]
    columns = [[row[i] for row in rows] for i in range(len(names))]
    table = pa.table(
        {
            name: pa.array(list(col), pa.list_(pa.string()) if name == "all_phones" else pa.string())
            for name, col in zip(names, columns, strict=True)
        }
    )
    whole, _ = mask_table(table, DEFAULT_MASKING, KEY)
    chunked, _ = _chunked(table, chunk_rows)
    assert chunked.schema == whole.schema
    assert chunked.to_pydict() == whole.to_pydict()


def _reference(key: bytes, family: str, value: str, n_hex: int) -> str:
    return hmac.new(key, f"{family}\x1f{value}".encode(), hashlib.sha256).hexdigest()[:n_hex]


@pytest.mark.parametrize("n_hex", [16, 17, 32, 63, 64])
def test_hmac_kernel_keeps_nulls_and_any_width(n_hex: int) -> None:
    values = ["13800138000", None, "", "张三", None, "+14155550100"]
    out = hmac_hex(KEY, "phone", pa.array(values, pa.string()), n_hex).to_pylist()
    assert out == [None if v is None else _reference(KEY, "phone", v, n_hex) for v in values]


def test_hmac_kernel_on_no_values_and_with_a_long_key() -> None:
    assert hmac_hex(KEY, "id", pa.array([], pa.string()), 32).to_pylist() == []
    assert hmac_hex(KEY, "id", pa.nulls(2, pa.string()), 32).to_pylist() == [None, None]
    long_key = bytes(range(200))
    assert hmac_hex(long_key, "id", pa.array(["x"]), 64).to_pylist() == [_reference(long_key, "id", "x", 64)]
    with pytest.raises(ValueError):
        hmac_hex(b"", "id", pa.array(["x"]), 32)
