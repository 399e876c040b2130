"""Resident ID numbers: cleaning, check character, 15 -> 18 upgrade, scalar and vectorized checks."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
import stdnum.cn.ric
from hypothesis import given, settings
from hypothesis import strategies as st

from validators.id_documents import IdRules, standardize_ids
from validators.regions import known_provinces, load_region_codes
from validators.resident_id import (
    check_mod112,
    clean_id_text,
    is_valid_resident_id,
    ric_check_char,
    upgrade_15_batch,
    upgrade_15_to_18,
)

AS_OF = date(2026, 11, 23)
RULES = IdRules(as_of=AS_OF)
EXAMPLE_1880 = "440524188001010014"
EXAMPLE_18 = "11010519491231002X"


def make_id(region: str, born: date, seq: int) -> str:
    body = f"{region}{born:%Y%m%d}{seq:03d}"
    return body + ric_check_char(body)


def test_check_char_of_the_standards_examples() -> None:
    assert ric_check_char(EXAMPLE_18[:17]) == "X"
    assert ric_check_char(EXAMPLE_1880[:17]) == "4"


@pytest.mark.parametrize("body", ["", "1234567890123456", "123456789012345678", "1101051949123100X", "１" * 17])
def test_check_char_rejects_bad_bodies(body: str) -> None:
    with pytest.raises(ValueError):
        ric_check_char(body)


def test_upgrade_of_the_standards_example() -> None:
    assert upgrade_15_to_18("110105491231002") == EXAMPLE_18


@pytest.mark.parametrize("seq", ["996", "997", "998", "999"])
def test_centenarian_sequences_are_not_upgraded(seq: str) -> None:
    assert upgrade_15_to_18(f"110105010101{seq}") is None


@pytest.mark.parametrize("s", ["11010549123100", "1101054912310021", "11010549123100X", "11010549123100O"])
def test_upgrade_needs_15_digits(s: str) -> None:
    assert upgrade_15_to_18(s) is None


def test_1880_example_is_valid() -> None:
    assert is_valid_resident_id(EXAMPLE_1880, as_of=AS_OF)


@pytest.mark.parametrize("check", ["X", "x", "Ｘ", "ｘ", "×", "χ", "Χ", "Ⅹ"])
def test_check_character_lookalikes(check: str) -> None:
    raw = EXAMPLE_18[:17] + check
    assert clean_id_text(raw) == EXAMPLE_18
    assert is_valid_resident_id(raw, as_of=AS_OF)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("１１０１０５１９４９１２３１００２Ｘ", EXAMPLE_18),
        (" 110105-19491231-002x ", EXAMPLE_18),
        ("'110105 1949 1231 002X", EXAMPLE_18),
        ("110105\u300019491231002X", EXAMPLE_18),
        ("11O10519491231002X", "11O10519491231002X"),  # O is never read as 0
        ("1.10105E+17", "1.10105E+17"),
    ],
)
def test_clean_id_text(raw: str, clean: str) -> None:
    assert clean_id_text(raw) == clean


def test_clean_keeps_separators_when_told() -> None:
    assert clean_id_text("110105-19491231", strip_separators=False) == "110105-19491231"


@pytest.mark.parametrize(
    "s",
    [
        make_id("110105", date(2026, 11, 24), 1),  # after as_of
        "110105" + "19990230" + "001",  # 30 February, check appended below
        "110105" + "19001301" + "001",  # month 13
        "110105" + "19000229" + "001",  # 1900 is not a leap year
        "110105" + "18400101" + "001",  # older than min_birth_year
    ],
)
def test_bad_dates(s: str) -> None:
    full = s if len(s) == 18 else s + ric_check_char(s)
    assert not is_valid_resident_id(full, as_of=AS_OF)


def test_leap_day_2000_is_real() -> None:
    assert is_valid_resident_id(make_id("110105", date(2000, 2, 29), 12), as_of=AS_OF)


def test_bad_check_character() -> None:
    assert not is_valid_resident_id(EXAMPLE_18[:17] + "1", as_of=AS_OF)


@pytest.mark.parametrize("region", ["001234", "991234", "810000", "820000", "830000", "710000"])
def test_province_prefix_must_be_a_mainland_province(region: str) -> None:
    assert not is_valid_resident_id(make_id(region, date(1990, 1, 1), 11), as_of=AS_OF)


def test_unknown_full_region_code_is_still_valid() -> None:
    assert "110199" not in load_region_codes()
    assert is_valid_resident_id(make_id("110199", date(1990, 1, 1), 11), as_of=AS_OF)


def test_region_reference_covers_every_province() -> None:
    assert {"11", "31", "44", "65", "71", "81", "82"} <= known_provinces()
    assert "110111" in load_region_codes()  # 1986 code that python-stdnum's year ranges reject


def test_check_mod112_agrees_with_hand_made_rows() -> None:
    values = [EXAMPLE_18, EXAMPLE_1880, EXAMPLE_18[:17] + "1", "11010519490231002X", "1101051949123100", "A" * 18]
    chk = check_mod112(values, AS_OF, 1850)
    assert chk.well_formed.tolist() == [True, True, True, True, False, False]
    assert chk.checksum_ok.tolist() == [True, True, False, ric_check_char("11010519490231002") == "X", False, False]
    assert chk.date_ok.tolist() == [True, True, True, False, False, False]
    assert str(chk.birth[1]) == "1880-01-01"
    assert np.isnat(chk.birth[3])
    assert chk.male.tolist()[:2] == [False, True]
    assert chk.region[0] == 110105 and chk.region[4] == -1


def test_check_mod112_on_empty_input() -> None:
    chk = check_mod112([], AS_OF, 1850)
    assert len(chk.well_formed) == 0


# ------------------------------------------------------------------ hypothesis invariants

_regions = sorted(c for c in load_region_codes() if c[:2] not in {"71", "81", "82", "83"})
_born = st.dates(min_value=date(1880, 1, 1), max_value=AS_OF)


@st.composite
def valid_ids(draw: st.DrawFn) -> str:
    return make_id(draw(st.sampled_from(_regions)), draw(_born), draw(st.integers(0, 999)))


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_check_char_agrees_with_stdnum(body: str) -> None:
    assert ric_check_char(body) == stdnum.cn.ric.calc_check_digit(body + "0")


@given(st.text(alphabet="0123456789", min_size=15, max_size=15))
def test_upgrade_always_yields_a_valid_check_char(s: str) -> None:
    up = upgrade_15_to_18(s)
    if s[12:] in {"996", "997", "998", "999"}:
        assert up is None
        return
    assert up is not None and len(up) == 18
    assert up[:6] == s[:6] and up[6:8] == "19" and up[8:17] == s[6:]
    assert ric_check_char(up[:17]) == up[17]
    assert upgrade_15_batch([s]) == [up]


@settings(max_examples=200)
@given(st.lists(valid_ids(), min_size=1, max_size=20))
def test_every_valid_id_round_trips(ids: list[str]) -> None:
    out = standardize_ids(pd.Series(["RESIDENT_ID"] * len(ids)), pd.Series(ids), RULES)
    assert out["id_valid"].all()
    assert out["id_number"].tolist() == ids
    assert out["id_type"].eq("RESIDENT_ID").all()
    expected_keys = [None if p else f"RESIDENT_ID:{i}" for i, p in zip(ids, out["id_placeholder"], strict=True)]
    assert out["id_key"].tolist() == expected_keys
    assert [d.strftime("%Y%m%d") for d in out["id_birth_date"]] == [i[6:14] for i in ids]
    assert out["id_gender"].tolist() == ["M" if int(i[16]) % 2 else "F" for i in ids]
    assert all(is_valid_resident_id(i, as_of=AS_OF) for i in ids)


@given(st.text(alphabet="0123456789X", min_size=18, max_size=18))
def test_vectorized_check_agrees_with_scalar(s: str) -> None:
    chk = check_mod112([s], AS_OF, 1850)
    scalar = is_valid_resident_id(s, as_of=AS_OF)
    prov_ok = s[:2] in known_provinces() - {"71", "81", "82", "83"}
    assert scalar == bool(chk.well_formed[0] and chk.checksum_ok[0] and chk.date_ok[0] and prov_ok)


@given(st.text())
def test_clean_is_idempotent_and_never_raises(s: str) -> None:
    once = clean_id_text(s)
    assert clean_id_text(once) == once
    assert isinstance(is_valid_resident_id(s, as_of=AS_OF), bool)
