"""Phone normalization: every written form of a number, classification by content, policies."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from validators.phones import (
    PHONE_EXTENSION_SPLIT,
    PHONE_FOREIGN,
    PHONE_INVALID,
    PHONE_IOT,
    PHONE_LANDLINE_IN_MOBILE,
    PHONE_MOBILE_IN_PHONE,
    PHONE_SERVICE_NUMBER,
    PhoneRules,
    parse_phone_field,
    standardize_phones,
)

MOBILE = "+8613812345678"


def one(mobile: object = None, phone: object = None, config: PhoneRules | None = None) -> dict[Any, Any]:
    out = standardize_phones(pd.Series([mobile], dtype=object), pd.Series([phone], dtype=object), config)
    return out.iloc[0].to_dict()


@pytest.mark.parametrize(
    "raw",
    [
        "13812345678",
        "138-1234-5678",
        "138 1234 5678",
        "+86 138 1234 5678",
        "+8613812345678",
        "008613812345678",
        "0086 138 1234 5678",
        "86-13812345678",
        "8613812345678",
        "(+86)13812345678",
        "(+86) 138-1234-5678",
        "１３８１２３４５６７８",
        "＋８６ １３８ １２３４ ５６７８",
        " 13812345678 ",
        "138.1234.5678",
        13812345678,
        13812345678.0,
    ],
)
def test_mobile_forms(raw: object) -> None:
    row = one(mobile=raw)
    assert row["mobile"] == MOBILE
    assert row["phones"] == [MOBILE]
    assert row["landline"] is None
    assert row["phone_flags"] == []


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("010-12345678", "+861012345678"),
        ("(010)12345678", "+861012345678"),
        ("（010）12345678", "+861012345678"),
        ("010 1234 5678", "+861012345678"),
        ("+86 10 12345678", "+861012345678"),
        ("+86 (0)10 12345678", "+861012345678"),
        ("0931-1234567", "+869311234567"),
        ("0755-12345678", "+8675512345678"),
    ],
)
def test_landline_forms(raw: str, e164: str) -> None:
    row = one(phone=raw)
    assert row["landline"] == e164
    assert row["mobile"] is None
    assert row["phones"] == [e164]
    assert row["phone_flags"] == []


@pytest.mark.parametrize(
    ("raw", "e164", "ext"),
    [
        ("0755-12345678-8001", "+8675512345678", "8001"),
        ("0931-1234567-8001", "+869311234567", "8001"),
        ("021-12345678转123", "+862112345678", "123"),
        ("021-12345678 转 123", "+862112345678", "123"),
        ("010-12345678 ext 12", "+861012345678", "12"),
        ("010-12345678 ext. 12", "+861012345678", "12"),
        ("010-12345678x12", "+861012345678", "12"),
        ("010-12345678 X 12", "+861012345678", "12"),
        ("01012345678分机8", "+861012345678", "8"),
    ],
)
def test_extensions_split_before_parsing(raw: str, e164: str, ext: str) -> None:
    row = one(phone=raw)
    assert row["landline"] == e164
    assert row["phones"] == [e164]  # extensions are dropped from the E.164 values
    assert row["phone_ext"] == ext
    assert row["phone_flags"] == [PHONE_EXTENSION_SPLIT]


@pytest.mark.parametrize(
    "raw",
    [
        "021-1234567",  # Shanghai numbers have 8 digits
        "0755-1234567-8001",  # Shenzhen numbers have 8 digits, so this is not a 7-digit number + extension
        "1381234567",  # 10 digits
        "138123456789",  # 12 digits
        "23812345678",
        "abc",
        "13812345678abc",
        "10086",
        "+",
        "--",
    ],
)
def test_invalid_numbers(raw: str) -> None:
    row = one(mobile=raw)
    assert row["mobile"] is None and row["landline"] is None and row["phones"] == []
    assert row["phone_flags"] == [PHONE_INVALID]


def test_iot_prefix_rejected_by_default_and_kept_on_request() -> None:
    row = one(mobile="14012345678")
    assert row["mobile"] is None and row["phones"] == [] and row["phone_flags"] == [PHONE_IOT]
    row = one(mobile="1064812345678")
    assert row["phones"] == [] and row["phone_flags"] == [PHONE_IOT]
    kept = one(mobile="14012345678", config=PhoneRules(iot_policy="keep"))
    assert kept["mobile"] is None  # never the customer's mobile
    assert kept["phones"] == ["+8614012345678"]
    assert kept["phone_flags"] == [PHONE_IOT]


def test_configured_iot_prefix_bypasses_the_fast_path() -> None:
    rules = PhoneRules(iot_prefixes=("145",))
    assert one(mobile="14512345678")["mobile"] == "+8614512345678"
    row = one(mobile="14512345678", config=rules)
    assert row["mobile"] is None and row["phone_flags"] == [PHONE_IOT]


def test_service_numbers_flagged_and_not_personal() -> None:
    for raw, e164 in (("400-812-3456", "+864008123456"), ("800-810-3888", "+868008103888")):
        row = one(phone=raw)
        assert row["landline"] is None and row["phones"] == []
        assert row["phone_flags"] == [PHONE_SERVICE_NUMBER]
        assert one(phone=raw, config=PhoneRules(keep_service_numbers=True))["phones"] == [e164]


def test_foreign_number_kept_but_never_mobile() -> None:
    row = one(mobile="+852 9123 4567")
    assert row["mobile"] is None
    assert row["phones"] == ["+85291234567"]
    assert row["phone_flags"] == [PHONE_FOREIGN]
    assert one(mobile="+852 9123 4567", config=PhoneRules(keep_foreign_numbers=False))["phones"] == []


def test_classified_by_content_not_by_column() -> None:
    row = one(mobile="010-12345678", phone="13812345678")
    assert row["mobile"] == MOBILE
    assert row["landline"] == "+861012345678"
    assert row["phones"] == ["+861012345678", MOBILE]
    assert row["phone_flags"] == [PHONE_LANDLINE_IN_MOBILE, PHONE_MOBILE_IN_PHONE]


def test_several_numbers_in_one_field_deduplicated() -> None:
    row = one(mobile="13812345678/13912345678", phone="13812345678；010-12345678")
    assert row["mobile"] == MOBILE  # the first mobile wins
    assert row["phones"] == [MOBILE, "+8613912345678", "+861012345678"]
    assert row["landline"] == "+861012345678"
    assert row["phone_flags"] == [PHONE_MOBILE_IN_PHONE]


def test_partly_invalid_field_keeps_the_valid_number() -> None:
    row = one(mobile="13812345678, 12345")
    assert row["mobile"] == MOBILE and row["phone_flags"] == [PHONE_INVALID]


def test_missing_values_give_no_flags() -> None:
    out = standardize_phones(pd.Series([None, float("nan"), "", "  "]), pd.Series([None, None, None, None]))
    assert out["mobile"].isna().all() and out["landline"].isna().all() and out["phone_ext"].isna().all()
    assert out["phones"].tolist() == [[], [], [], []]
    assert out["phone_flags"].tolist() == [[], [], [], []]


def test_index_preserved_and_phone_column_optional() -> None:
    out = standardize_phones(pd.Series(["13812345678", None], index=[10, 7]))
    assert list(out.index) == [10, 7]
    assert list(out.columns) == ["mobile", "landline", "phones", "phone_ext", "phone_flags"]
    assert out.loc[10, "mobile"] == MOBILE and out.loc[7, "mobile"] is None


def test_distinct_rows_share_one_result_but_stay_equal() -> None:
    raw = pd.Series(["13812345678", "138-1234-5678", "13812345678"] * 100)
    out = standardize_phones(raw, raw.copy())
    assert set(out["mobile"]) == {MOBILE}
    assert all(p == [MOBILE] for p in out["phones"])


def test_huge_field_is_invalid_not_slow() -> None:
    row = one(mobile="1" * 100_000)
    assert row["phones"] == [] and row["phone_flags"] == [PHONE_INVALID]


def test_parse_phone_field_is_pure() -> None:
    result = parse_phone_field("0755-12345678-8001")
    assert [n.e164 for n in result.numbers] == ["+8675512345678"]
    assert result.numbers[0].kind == "landline" and result.numbers[0].ext == "8001"
    assert parse_phone_field(None).numbers == ()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=40), st.from_regex(r"\+?[0-9 ()\-]{5,20}")), max_size=8))
def test_never_raises_and_shapes_hold(values: list[str | None]) -> None:
    raw = pd.Series(values, dtype=object)
    out = standardize_phones(raw, raw[::-1].reset_index(drop=True))
    assert len(out) == len(values)
    for mobile, phones in zip(out["mobile"], out["phones"], strict=True):
        assert isinstance(phones, list)
        assert all(p.startswith("+") and p[1:].isdigit() for p in phones)
        assert mobile is None or mobile in phones


MOBILES = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)
LANDLINES = st.from_regex(r"0[1-9][0-9]{1,2}-?[0-9]{7,8}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(MOBILES | LANDLINES)
def test_idempotent_on_e164(raw: str) -> None:
    first = one(mobile=raw)
    for number in first["phones"]:
        again = one(mobile=number)
        assert again["phones"] == [number]


def _phonenumbers_classify(candidate: str) -> tuple[str, str] | None:
    import phonenumbers
    from phonenumbers import PhoneNumberType

    kinds = {
        PhoneNumberType.MOBILE: "mobile",
        PhoneNumberType.FIXED_LINE: "landline",
        PhoneNumberType.FIXED_LINE_OR_MOBILE: "landline",
    }
    try:
        parsed = phonenumbers.parse(candidate, "CN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return e164, kinds.get(phonenumbers.number_type(parsed), "service")


@settings(max_examples=400, deadline=None)
@given(
    prefix=st.sampled_from(["0", "+86", "", "00", "+8610", "01", "+861"]),
    digits=st.text(alphabet="0123456789", min_size=1, max_size=14),
)
def test_metadata_fast_path_agrees_with_phonenumbers(prefix: str, digits: str) -> None:
    from validators.phone_types import UNSURE, classify_cn

    candidate = prefix + digits
    decided = classify_cn(candidate)
    if decided is not UNSURE:
        assert decided == _phonenumbers_classify(candidate)


@pytest.mark.parametrize("raw", ["0755-12345678", "(010)12345678", "0931 1234567", "0400-8001234", "010-123"])
def test_landline_fast_path_same_as_field_parser(raw: str) -> None:
    import numpy as np

    from validators.phones import DEFAULT_RULES, _parse_distinct

    assert _parse_distinct(np.array([raw], dtype=object), DEFAULT_RULES)[0] == parse_phone_field(raw)


# --- The vectorized fast paths (validators.phone_fast) against the per-value parser -------------------------

_FULL_WIDTH = str.maketrans("0123456789+-() ", "０１２３４５６７８９＋－（）\u3000")
_PREFIXES = st.sampled_from(["", "", "+86", "+ 86", "0086", "(+86)", "(86)", "86", "86-", "+8", "00 86", "+852 "])
_SEPARATORS = st.sampled_from(["", "", " ", "-", "  ", "--", ".", "\t", "/"])
_EDGES = st.sampled_from(["", "", "", " ", "  ", "\u3000", "\u00a0", "\t", "\n"])


@st.composite
def _phone_texts(draw: st.DrawFn) -> object:
    """Phone-like text in many writings (valid, invalid, IoT, landline, full-width), plus junk and non-text."""
    digits = draw(st.text("0123456789", min_size=12, max_size=12))
    shape = draw(st.sampled_from(["mobile", "mobile", "landline", "landline", "digits", "junk", "other"]))
    if shape == "mobile":
        head = draw(st.sampled_from(["13", "14", "15", "16", "17", "18", "19", "12", "1064", "140", "145", "174"]))
        body = (head + digits)[:11]
        cut = sorted(draw(st.lists(st.integers(1, 10), max_size=2, unique=True)))
        parts = [body[i:j] for i, j in zip([0, *cut], [*cut, 11], strict=True)]
        text = draw(_PREFIXES) + draw(_SEPARATORS).join(parts)
    elif shape == "landline":
        area = draw(st.sampled_from(["010", "021", "0755", "0931", "0400", "0800", "0101", "0201", "0", "020"]))
        area = draw(st.sampled_from([area, area, f"({area})"]))
        subscriber = digits[: draw(st.integers(5, 10))]
        extension = draw(st.sampled_from(["", "", "", "-8001", "转12", " ext 5"]))
        text = area + draw(_SEPARATORS) + subscriber + extension
    elif shape == "digits":
        text = draw(_PREFIXES) + digits[: draw(st.integers(1, 12))]
    elif shape == "junk":
        text = draw(st.text(max_size=20))
    else:
        return draw(st.sampled_from([None, float("nan"), 13812345678, 13812345678.0, 7551234567, b"138"]))
    if draw(st.integers(0, 3)) == 0:
        text = text.translate(_FULL_WIDTH)
    return draw(_EDGES) + text + draw(_EDGES)


_RULES = st.sampled_from(
    [
        PhoneRules(),
        PhoneRules(iot_prefixes=("145", "17")),
        PhoneRules(max_field_chars=12),
        PhoneRules(region="HK"),
        PhoneRules(max_numbers_per_field=1, keep_service_numbers=True),
        PhoneRules(max_numbers_per_field=0),
        PhoneRules(separators=r"[-/ ]"),
        PhoneRules(extension_markers=("-", " ")),
    ]
)


@settings(max_examples=600, deadline=None)
@given(st.lists(_phone_texts(), min_size=1, max_size=12, unique_by=repr), _RULES)
def test_fast_paths_same_as_per_value_parser(values: list[object], rules: PhoneRules) -> None:
    import numpy as np

    from validators.phones import _parse_all, _parse_distinct

    uniques = np.fromiter(values, dtype=object, count=len(values))
    distinct = _parse_all(uniques, rules)
    expected = _parse_distinct(uniques, rules)
    assert [distinct.result(i) for i in range(len(values))] == expected


@settings(max_examples=400, deadline=None)
@given(st.text("0123456789", min_size=1, max_size=15))
def test_trunk_batch_same_as_classify_cn(subscriber: str) -> None:
    import pyarrow as pa

    from validators.phone_types import classify_cn, classify_cn_trunk

    candidates = [f"0{d}{subscriber}" for d in "123456789"]
    assert classify_cn_trunk(pa.array(candidates)) == [classify_cn(c) for c in candidates]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text("0123456789", min_size=1, max_size=17), min_size=1, max_size=20))
def test_number_types_same_as_number_type(nationals: list[str]) -> None:
    import pyarrow as pa

    from validators.phone_types import _region_types

    types = _region_types("CN")
    assert types.number_types(pa.array(nationals)).tolist() == [types.number_type(n) for n in nationals]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_phone_texts(), _phone_texts()), min_size=1, max_size=15), _RULES)
def test_table_same_as_row_by_row(rows: list[tuple[object, object]], rules: PhoneRules) -> None:
    import numpy as np

    from validators.phones import EMPTY_RESULT, OUTPUT_COLUMNS, _combine, _parse_distinct

    def parse(value: object) -> Any:
        if value is None or (isinstance(value, float) and value != value):
            return EMPTY_RESULT
        return _parse_distinct(np.array([value], dtype=object), rules)[0]

    out = standardize_phones(pd.Series([m for m, _ in rows], dtype=object), pd.Series([p for _, p in rows]), rules)
    for (m, p), got in zip(rows, out.itertuples(index=False), strict=True):
        assert tuple(got) == _combine(parse(m), parse(p), rules), (m, p)
    assert list(out.columns) == list(OUTPUT_COLUMNS)


def test_plain_mobile_beside_plain_landline() -> None:
    for phone in ("010-12345678", "０１０-１２３４５６７８", "(010) 12345678"):
        row = one(mobile="138 1234 5678", phone=phone)
        assert row == {
            "mobile": MOBILE,
            "landline": "+861012345678",
            "phones": [MOBILE, "+861012345678"],
            "phone_ext": None,
            "phone_flags": [],
        }
    assert one(mobile="13812345678", phone="400-812-3456")["phone_flags"] == [PHONE_SERVICE_NUMBER]


@pytest.mark.parametrize(
    "rules",
    [
        PhoneRules(),
        PhoneRules(separators=r"[-/ ]"),
        PhoneRules(extension_markers=("-",)),
        PhoneRules(max_numbers_per_field=0),
        PhoneRules(iot_prefixes=("138",)),
    ],
)
def test_mobile_after_bare_country_code_follows_the_rules(rules: PhoneRules) -> None:
    import numpy as np

    from validators.phones import _parse_all, _parse_distinct

    values = ["86-13812345678", "8613812345678", " 86 138 1234 5678 ", "８６－１３８１２３４５６７８", "86-14012345678"]
    uniques = np.array(values, dtype=object)
    distinct = _parse_all(uniques, rules)
    assert [distinct.result(i) for i in range(len(values))] == _parse_distinct(uniques, rules)
    if rules == PhoneRules():
        assert list(distinct.fast[:4]) == [MOBILE] * 4  # decided by the fast path
