"""Birth dates and update timestamps: declared formats, fallbacks, impossible and implausible dates."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from validators.dates import (
    DOB_FUTURE,
    DOB_IMPLAUSIBLE,
    DOB_INVALID,
    DateRules,
    TimestampRules,
    parse_dates,
    parse_timestamps,
)
from validators.gender import GenderRules, gender_code, standardize_gender

RULES = DateRules(reference_date=date(2026, 6, 1))


def one(raw: object, formats: list[str] | None = None, config: DateRules = RULES) -> tuple[Any, Any]:
    out = parse_dates(pd.Series([raw], dtype=object), formats or ["%Y%m%d"], config)
    return out["value"].iloc[0], out["flag"].iloc[0]


@pytest.mark.parametrize(
    "raw",
    [
        "19900105",
        "1990-01-05",
        "1990-1-5",
        "1990/01/05",
        "1990/1/5",
        "1990.01.05",
        "1990年01月05日",
        "1990年1月5日",
        "1990 年 1 月 5 日",
        "１９９０年０１月０５日",
        "１９９０－０１－０５",
        "1990-01-05T10:00:00",
        "1990-01-05 10:00:00",
        "1990-01-05T10:00:00+08:00",
        "1990-01-05T10:00:00Z",
        " 19900105 ",
        19900105,
    ],
)
def test_formats_parse(raw: object) -> None:
    value, flag = one(raw)
    assert value == pd.Timestamp(1990, 1, 5)
    assert flag is None


def test_declared_format_wins_over_fallbacks() -> None:
    # 05/01/1990 is ambiguous in general; the source declares day first
    value, flag = one("05/01/1990", ["%d/%m/%Y"])
    assert value == pd.Timestamp(1990, 1, 5) and flag is None
    value, _ = one("01/05/1990", ["%m/%d/%Y"])
    assert value == pd.Timestamp(1990, 1, 5)
    # not parsed at all without a declaration
    assert one("05/01/1990", ["%Y%m%d"])[1] == DOB_INVALID


@pytest.mark.parametrize(
    "raw",
    ["20230230", "2023-02-30", "20230229", "1990-13-01", "19900132", "1990115", "199001", "abc", "0", "1990-01", "😀"],
)
def test_impossible_or_unparseable_dates(raw: str) -> None:
    value, flag = one(raw)
    assert pd.isna(value)
    assert flag == DOB_INVALID


def test_leap_day_is_valid() -> None:
    assert one("20240229")[0] == pd.Timestamp(2024, 2, 29)


def test_compact_declared_format_needs_exact_width() -> None:
    # strptime would read 1990115 as 1990-11-05; a compact format only takes 8 characters
    assert one("1990115", ["%Y%m%d"])[1] == DOB_INVALID


def test_future_and_implausible_are_flagged_and_blanked() -> None:
    value, flag = one("20300101")
    assert pd.isna(value) and flag == DOB_FUTURE
    value, flag = one("18700101")
    assert pd.isna(value) and flag == DOB_IMPLAUSIBLE
    value, flag = one("19000101")  # older than 120 years on the reference date
    assert pd.isna(value) and flag == DOB_IMPLAUSIBLE
    assert one("19070101")[1] is None  # 119 years old: plausible


def test_keep_implausible_keeps_the_value() -> None:
    rules = DateRules(reference_date=date(2026, 6, 1), keep_implausible=True)
    value, flag = one("20300101", config=rules)
    assert value == pd.Timestamp(2030, 1, 1) and flag == DOB_FUTURE


def test_reference_date_makes_the_future_check_deterministic() -> None:
    assert one("20260602")[1] == DOB_FUTURE
    assert one("20260601")[1] is None


def test_excel_serial_only_when_configured() -> None:
    assert one("33000")[1] == DOB_INVALID
    rules = DateRules(reference_date=date(2026, 6, 1), excel_serial=True)
    assert one("33000", config=rules)[0] == pd.Timestamp(1990, 5, 7)
    assert one("33000.0", config=rules)[0] == pd.Timestamp(1990, 5, 7)


def test_missing_is_not_invalid() -> None:
    out = parse_dates(pd.Series([None, float("nan"), "", "   "], dtype=object), ["%Y%m%d"], RULES)
    assert out["value"].isna().all()
    assert out["flag"].tolist() == [None, None, None, None]


def test_over_long_junk_is_invalid() -> None:
    assert one("1" * 10_000)[1] == DOB_INVALID


def test_output_shape_and_index() -> None:
    raw = pd.Series(["19900105", None, "19900105", "x"], index=[5, 3, 9, 1])
    out = parse_dates(raw, ["%Y%m%d"], RULES)
    assert list(out.index) == [5, 3, 9, 1]
    assert list(out.columns) == ["value", "flag"]
    assert str(out["value"].dtype) == "datetime64[ns]"
    assert out["flag"].tolist() == [None, None, None, DOB_INVALID]
    empty = parse_dates(pd.Series([], dtype=object), ["%Y%m%d"], RULES)
    assert empty.empty and str(empty["value"].dtype) == "datetime64[ns]"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-01-05 10:11:12", pd.Timestamp(2024, 1, 5, 10, 11, 12)),
        ("2024-01-05T10:11:12", pd.Timestamp(2024, 1, 5, 10, 11, 12)),
        ("2024-01-05T10:11:12+08:00", pd.Timestamp(2024, 1, 5, 10, 11, 12)),
        ("2024-01-05T02:11:12Z", pd.Timestamp(2024, 1, 5, 10, 11, 12)),  # converted to Shanghai wall time
        ("20240105101112", pd.Timestamp(2024, 1, 5, 10, 11, 12)),
        ("20240105", pd.Timestamp(2024, 1, 5)),
        ("2024/01/05", pd.Timestamp(2024, 1, 5)),
        ("2024年1月5日", pd.Timestamp(2024, 1, 5)),
    ],
)
def test_timestamps(raw: str, expected: pd.Timestamp) -> None:
    out = parse_timestamps(pd.Series([raw]), ["%Y-%m-%d %H:%M:%S"])
    assert out.iloc[0] == expected


def test_timestamps_junk_and_timezone_config() -> None:
    out = parse_timestamps(pd.Series(["bad", None, "2024-02-30 10:00:00"], index=[2, 1, 0]), ["%Y-%m-%d %H:%M:%S"])
    assert list(out.index) == [2, 1, 0] and out.isna().all()
    assert str(out.dtype) == "datetime64[ns]"
    utc = parse_timestamps(pd.Series(["2024-01-05T10:11:12+08:00"]), [], TimestampRules(timezone="UTC"))
    assert utc.iloc[0] == pd.Timestamp(2024, 1, 5, 2, 11, 12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=30), st.from_regex(r"[0-9年月日/\-. ]{4,14}")), max_size=30))
def test_never_raises(values: list[str | None]) -> None:
    out = parse_dates(pd.Series(values, dtype=object), ["%Y%m%d", "%Y-%m-%d"], RULES)
    assert len(out) == len(values)
    assert set(out["flag"].dropna()) <= {DOB_INVALID, DOB_FUTURE, DOB_IMPLAUSIBLE}
    assert (out["value"].notna() & out["flag"].notna()).sum() == 0  # flagged values are blanked
    ts = parse_timestamps(pd.Series(values, dtype=object), ["%Y-%m-%d %H:%M:%S"])
    assert len(ts) == len(values)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.dates(min_value=date(1907, 1, 1), max_value=date(2026, 6, 1)), min_size=1, max_size=30))
def test_round_trip_of_formatted_dates(days: list[date]) -> None:
    for fmt in ("%Y%m%d", "%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日"):
        raw = pd.Series([d.strftime(fmt) for d in days])
        out = parse_dates(raw, ["%Y%m%d"], RULES)
        assert out["value"].tolist() == [pd.Timestamp(d) for d in days]
        assert out["flag"].isna().all()
        # a parsed value written back in ISO form parses to itself (idempotent)
        iso = pd.Series([v.date().isoformat() for v in out["value"]])
        assert parse_dates(iso, ["%Y-%m-%d"], RULES)["value"].tolist() == out["value"].tolist()


# Gender (validators/gender.py) sits beside the birth date: both are demographic fields.


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("M", "M"),
        ("F", "F"),
        ("m", "M"),
        (" f ", "F"),
        ("男", "M"),
        ("女", "F"),
        ("男性", "M"),
        ("1", "M"),
        ("2", "F"),
        (1, "M"),
        (2.0, "F"),
        ("male", "M"),
        ("Female", "F"),
        ("ＭＡＬＥ", "M"),
        ("0", None),
        ("9", None),
        ("U", None),
        ("未知", None),
        ("", None),
        (None, None),
        (float("nan"), None),
    ],
)
def test_gender_codes(raw: object, expected: str | None) -> None:
    assert gender_code(raw) == expected
    assert standardize_gender(pd.Series([raw], dtype=object)).iloc[0] == expected


def test_gender_series_aligned_and_configurable() -> None:
    out = standardize_gender(pd.Series(["M", None, "女", "x"], index=[4, 2, 0, 9]))
    assert list(out.index) == [4, 2, 0, 9]
    assert out.tolist() == ["M", None, "F", None]
    custom = GenderRules(codes={"0": "F", "1": "M"})
    assert standardize_gender(pd.Series(["0", "1", "2"]), custom).tolist() == ["F", "M", None]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=10)), max_size=10))
def test_gender_never_raises_and_idempotent(values: list[str | None]) -> None:
    out = standardize_gender(pd.Series(values, dtype=object))
    assert set(out.dropna()) <= {"M", "F"}
    assert standardize_gender(out).tolist() == out.tolist()
