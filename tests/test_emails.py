"""E-mail normalization: NFKC, trimming, lowercasing, a plain validity pattern."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from validators.emails import EMAIL_INVALID, standardize_emails


def one(raw: object) -> tuple[Any, list[str]]:
    out = standardize_emails(pd.Series([raw], dtype=object))
    return out["email"].iloc[0], out["email_flags"].iloc[0]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("zhang.san@qq.com", "zhang.san@qq.com"),
        ("  Zhang.San@QQ.COM ", "zhang.san@qq.com"),
        ("ｚｈａｎｇ＠１６３．ｃｏｍ", "zhang@163.com"),  # full-width
        ("li@163。com", "li@163.com"),  # ideographic full stop
        ("mailto:Wang@Example.CN", "wang@example.cn"),
        ("wang @ example.cn", "wang@example.cn"),
        ("<wang@example.cn>", "wang@example.cn"),
        ("a.b+tag@sub.example.com.cn", "a.b+tag@sub.example.com.cn"),
        ("x_y-z@mail-host.org", "x_y-z@mail-host.org"),
        ("user@xn--fiqs8s.cn", "user@xn--fiqs8s.cn"),
    ],
)
def test_valid(raw: str, expected: str) -> None:
    assert one(raw) == (expected, [])


@pytest.mark.parametrize(
    "raw",
    [
        "no-at-sign",
        "a@b",
        "a@b.c",
        "@example.com",
        "a@",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a b@example.com",
        "a@exa mple.com",
        "a@-example.com",
        "a@example..com",
        "张三@example.com",
        "😀@example.com",
        "a@b@example.com",
        "x" * 65 + "@example.com",
        "a@" + "b" * 300 + ".com",
        "13812345678",
    ],
)
def test_invalid(raw: str) -> None:
    assert one(raw) == (None, [EMAIL_INVALID])


@pytest.mark.parametrize("raw", [None, float("nan"), "", "   "])
def test_missing_is_not_flagged(raw: object) -> None:
    assert one(raw) == (None, [])


def test_aligned_to_index_and_distinct_values_mapped_back() -> None:
    raw = pd.Series(["A@X.CN", None, "a@x.cn", "bad"], index=[3, 1, 2, 0])
    out = standardize_emails(raw)
    assert list(out.index) == [3, 1, 2, 0]
    assert out["email"].tolist() == ["a@x.cn", None, "a@x.cn", None]
    assert out["email_flags"].tolist() == [[], [], [], [EMAIL_INVALID]]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=40), st.emails()), max_size=8))
def test_never_raises_and_idempotent(values: list[str | None]) -> None:
    out = standardize_emails(pd.Series(values, dtype=object))
    assert len(out) == len(values)
    valid = out["email"].dropna()
    again = standardize_emails(valid.reset_index(drop=True))
    assert again["email"].tolist() == valid.tolist()
    assert all(flags == [] for flags in again["email_flags"])


@settings(max_examples=200, deadline=None)
@given(st.emails())
def test_plain_generated_addresses_are_accepted_when_ascii(address: str) -> None:
    email, flags = one(address)
    if email is not None:
        assert email == email.lower().strip()
        assert flags == []
    else:
        assert flags == [EMAIL_INVALID]
