"""standardize_ids: every ID type, the type re-check, placeholders, shared IDs, invariants."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest
import stdnum.cn.uscc
from hypothesis import given, settings
from hypothesis import strategies as st

from mdm.errors import ConfigError, MdmError
from schemas.enums import IdType
from validators.id_documents import (
    FLAGS,
    OUTPUT_COLUMNS,
    USCC_ALPHABET,
    IdRules,
    load_id_rules,
    mark_shared_ids,
    org_code_check_char,
    shared_id_numbers,
    standardize_ids,
    uscc_check_char,
)
from validators.resident_id import ric_check_char

AS_OF = date(2026, 11, 23)
RULES = IdRules(as_of=AS_OF)
RID = "11010819850312459X"  # a made-up valid resident ID (Haidian, 1985-03-12, male)
assert ric_check_char(RID[:17]) == RID[17]


def one(declared: str | None, raw: object, rules: IdRules = RULES) -> dict[str, Any]:
    out = standardize_ids(pd.Series([declared], dtype=object), pd.Series([raw], dtype=object), rules)
    assert list(out.columns) == list(OUTPUT_COLUMNS)
    return {str(k): v for k, v in out.iloc[0].to_dict().items()}


def make_id(region: str, born: str, seq: str) -> str:
    body = region + born + seq
    return body + ric_check_char(body)


# ------------------------------------------------------------------ resident IDs


def test_valid_resident_id() -> None:
    r = one("RESIDENT_ID", RID)
    assert r["id_valid"] and not r["id_placeholder"]
    assert r["id_key"] == f"RESIDENT_ID:{RID}"
    assert r["id_birth_date"] == pd.Timestamp("1985-03-12")
    assert r["id_gender"] == "M"
    assert r["id_flags"] == []


def test_legacy_and_upgraded_forms_share_the_key() -> None:
    legacy = RID[:6] + RID[8:17]
    r15, r18 = one("RESIDENT_ID", legacy), one("RESIDENT_ID", RID)
    assert r15["id_number"] == RID and r15["id_key"] == r18["id_key"]
    assert r15["id_flags"] == ["ID_LEGACY_UPGRADED"]


def test_standards_example_upgrades_but_is_a_placeholder() -> None:
    r = one("RESIDENT_ID", "110105491231002")
    assert r["id_number"] == "11010519491231002X"
    assert r["id_valid"] and r["id_placeholder"] and r["id_key"] is None
    assert r["id_flags"] == ["ID_LEGACY_UPGRADED", "ID_PLACEHOLDER"]


def test_1880_example_is_valid_but_flagged() -> None:
    r = one("RESIDENT_ID", "440524188001010014")
    assert r["id_valid"] and r["id_birth_date"] == pd.Timestamp("1880-01-01")
    assert "ID_AGE_IMPLAUSIBLE" in r["id_flags"] and r["id_placeholder"]


@pytest.mark.parametrize("seq", ["996", "997", "998", "999"])
def test_centenarian_legacy_is_flagged_not_upgraded(seq: str) -> None:
    raw = "110105" + "050607" + seq
    r = one("RESIDENT_ID", raw)
    assert r["id_number"] == raw and r["id_valid"]
    assert r["id_key"] == f"RESIDENT_ID:{raw}"
    assert pd.isna(r["id_birth_date"]) and r["id_gender"] is None
    assert r["id_flags"] == ["ID_CENTENARIAN_LEGACY"]


def test_centenarian_legacy_can_be_made_invalid() -> None:
    r = one("RESIDENT_ID", "110105050607997", RULES.model_copy(update={"centenarian_legacy_valid": False}))
    assert not r["id_valid"] and r["id_key"] is None and r["id_flags"] == ["ID_CENTENARIAN_LEGACY"]


def test_centenarian_with_impossible_date() -> None:
    r = one("RESIDENT_ID", "110105051332997")
    assert not r["id_valid"] and r["id_flags"] == ["ID_BAD_DATE", "ID_CENTENARIAN_LEGACY"]


@pytest.mark.parametrize(
    "raw", ["11010819850312459x", "11010819850312459Ｘ", "11010819850312459×", "11010819850312459χ"]
)
def test_lowercase_and_lookalike_check_characters(raw: str) -> None:
    r = one("RESIDENT_ID", raw)
    assert r["id_valid"] and r["id_number"] == RID


@pytest.mark.parametrize(
    "raw",
    [
        RID[:17],  # 17 digits
        RID[:16],  # 16 digits
        RID + "1",  # 19 digits
        "11010819850312A59X",  # letter in the body
        "11O10819850312459X",  # O for 0
        "1.10108E+17",  # Excel damage
        "11010819850312459Y",
        "1101081985031",
    ],
)
def test_format_errors_are_never_repaired(raw: str) -> None:
    r = one("RESIDENT_ID", raw)
    assert not r["id_valid"] and r["id_key"] is None
    assert "ID_FORMAT" in r["id_flags"]
    assert r["id_type"] == "RESIDENT_ID" and r["id_number"] == raw


def test_bad_checksum() -> None:
    r = one("RESIDENT_ID", RID[:17] + "3")
    assert not r["id_valid"] and r["id_flags"] == ["ID_BAD_CHECKSUM"]
    assert pd.isna(r["id_birth_date"]) and r["id_gender"] is None


@pytest.mark.parametrize("born", ["20261124", "19990230", "19001301", "19000229", "18400101", "20300101"])
def test_bad_and_future_dates(born: str) -> None:
    r = one("RESIDENT_ID", make_id("110108", born, "451"))
    assert not r["id_valid"] and r["id_flags"] == ["ID_BAD_DATE"]


def test_today_is_not_the_future() -> None:
    assert one("RESIDENT_ID", make_id("110108", "20261123", "452"))["id_valid"]


def test_unknown_province_is_invalid() -> None:
    r = one("RESIDENT_ID", make_id("001234", "19850312", "451"))
    assert not r["id_valid"] and r["id_flags"] == ["ID_BAD_REGION"]


def test_unknown_full_region_is_a_flag_or_an_error() -> None:
    raw = make_id("110198", "19850312", "451")
    flagged = one("RESIDENT_ID", raw)
    assert flagged["id_valid"] and flagged["id_flags"] == ["ID_REGION_UNKNOWN"]
    strict = one("RESIDENT_ID", raw, RULES.model_copy(update={"region_unknown": "error"}))
    assert not strict["id_valid"] and strict["id_key"] is None


@pytest.mark.parametrize(
    "raw",
    ["111111111111111110", "000000000000000000", "123456789012345678", "111111111111111", "440524188001010014"],
)
def test_placeholders(raw: str) -> None:
    r = one("RESIDENT_ID", raw)
    assert r["id_placeholder"] and r["id_key"] is None and "ID_PLACEHOLDER" in r["id_flags"]


def test_junk_that_passes_the_checksum_is_still_a_placeholder() -> None:
    assert ric_check_char("1" * 17) == "0"
    assert one("RESIDENT_ID", "111111111111111110")["id_placeholder"]


def test_same_digit_body_with_a_real_date_is_a_placeholder() -> None:
    raw = "2" * 17 + ric_check_char("2" * 17)
    assert one("RESIDENT_ID", raw)["id_placeholder"]


def test_denylist_additions_from_config() -> None:
    rules = RULES.model_copy(update={"placeholder_numbers": frozenset({RID})})
    r = one("RESIDENT_ID", RID, rules)
    assert r["id_valid"] and r["id_placeholder"] and r["id_key"] is None


@pytest.mark.parametrize("raw", [None, "", "   ", np.nan, "-"])
def test_missing(raw: object) -> None:
    r = one("RESIDENT_ID", raw)
    assert r["id_number"] is None and not r["id_valid"] and not r["id_placeholder"]
    assert r["id_flags"] == ["ID_MISSING"]


# ------------------------------------------------------------------ type re-check


def test_resident_id_filed_as_passport_is_corrected() -> None:
    r = one("PASSPORT_CN", RID)
    assert r["id_type"] == "RESIDENT_ID" and r["id_valid"]
    assert r["id_key"] == f"RESIDENT_ID:{RID}" and r["id_flags"] == ["ID_TYPE_CORRECTED"]


def test_hk_permit_in_the_resident_id_column() -> None:
    r = one("RESIDENT_ID", "H03185729")
    assert r["id_type"] == "HK_MACAU_PERMIT" and r["id_key"] == "HK_MACAU_PERMIT:H03185729"
    assert r["id_flags"] == ["ID_TYPE_CORRECTED"]


def test_pr_card_in_the_resident_id_column() -> None:
    raw = make_id("931156", "19900101", "001")
    r = one("RESIDENT_ID", raw)
    assert r["id_type"] == "FOREIGN_PR_CARD" and r["id_valid"] and r["id_flags"] == ["ID_TYPE_CORRECTED"]
    assert r["id_birth_date"] == pd.Timestamp("1990-01-01")


@pytest.mark.parametrize("prefix", ["810000", "820000", "830000"])
def test_residence_permit_in_the_resident_id_column(prefix: str) -> None:
    r = one("RESIDENT_ID", make_id(prefix, "19900101", "002"))
    assert r["id_type"] == "HMT_RESIDENCE_PERMIT" and r["id_valid"] and r["id_gender"] == "F"
    assert r["id_flags"] == ["ID_TYPE_CORRECTED"]


def test_unknown_type_is_inferred() -> None:
    r = one("UNKNOWN", RID)
    assert r["id_type"] == "RESIDENT_ID" and r["id_flags"] == ["ID_TYPE_INFERRED"]
    assert one(None, RID)["id_type"] == "RESIDENT_ID"
    assert one("NOT_A_TYPE", RID)["id_type"] == "RESIDENT_ID"


def test_number_that_fits_nothing_keeps_its_declared_type() -> None:
    r = one("PASSPORT_CN", "X1")
    assert r["id_type"] == "PASSPORT_CN" and r["id_flags"] == ["ID_FORMAT"]


def test_personal_document_is_never_turned_into_a_company_code() -> None:
    raw = "91350100M000100Y43"  # a valid USCC
    assert one("RESIDENT_ID", raw)["id_type"] == "RESIDENT_ID"
    assert one("OTHER", raw)["id_type"] == "USCC"


def test_other_is_unverifiable_unless_its_shape_is_known() -> None:
    r = one("OTHER", "AB-1234")
    assert r["id_type"] == "OTHER" and not r["id_valid"] and r["id_number"] == "AB1234"
    assert r["id_flags"] == ["ID_TYPE_UNVERIFIABLE"]


def test_declared_type_wins_when_the_number_fits_it() -> None:
    assert one("PASSPORT_FOREIGN", "E58213467")["id_type"] == "PASSPORT_FOREIGN"


# ------------------------------------------------------------------ other types


@pytest.mark.parametrize(
    ("declared", "raw", "valid", "key"),
    [
        ("PASSPORT_CN", "G58213467", True, "G58213467"),
        ("PASSPORT_CN", "e58213467", True, "E58213467"),
        ("PASSPORT_CN", "EA5821346", True, "EA5821346"),
        ("PASSPORT_CN", "EI5821346", False, None),  # no I after E
        ("PASSPORT_CN", "EO5821346", False, None),  # no O after E
        ("PASSPORT_CN", "SE5821346", True, "SE5821346"),
        ("PASSPORT_CN", "PE5821346", True, "PE5821346"),
        ("PASSPORT_CN", "DE5821346", True, "DE5821346"),
        ("PASSPORT_CN", "K58213467", True, "K58213467"),
        ("PASSPORT_CN", "MA5821346", True, "MA5821346"),
        ("PASSPORT_CN", "G5821346", False, None),
        ("PASSPORT_FOREIGN", "x7d39k2p1", True, "X7D39K2P1"),
        ("PASSPORT_FOREIGN", "5382914", True, "5382914"),
        ("PASSPORT_FOREIGN", "X7D39K2P1Q", False, None),  # 10 characters
        ("PASSPORT_FOREIGN", "ABCDEFG", False, None),  # no digit
        ("HK_MACAU_PERMIT", "H03185729", True, "H03185729"),
        ("HK_MACAU_PERMIT", "H0318572902", True, "H03185729"),
        ("HK_MACAU_PERMIT", "M5820193401", True, "M58201934"),
        ("HK_MACAU_PERMIT", "H031857", False, None),
        ("HK_MACAU_PERMIT", "Q03185729", False, None),
        ("TAIWAN_PERMIT", "05616820", True, "05616820"),
        ("TAIWAN_PERMIT", "0561682001(D)", True, "05616820"),
        ("TAIWAN_PERMIT", "0561682001（D）", True, "05616820"),
        ("TAIWAN_PERMIT", "0561682001", True, "05616820"),
        ("TAIWAN_PERMIT", "0561682", False, None),
        ("FOREIGN_PR_CARD", "USA350081120018", True, "USA350081120018"),
        ("FOREIGN_PR_CARD", "US3500811200185", False, None),
        ("MILITARY_ID", "军字第7305214号", True, "军7305214"),
        ("MILITARY_ID", "南字第 0052871 号", True, "南0052871"),
        ("MILITARY_ID", "7305214", True, "7305214"),
        ("MILITARY_ID", "军字第号", False, None),
        ("USCC", "91350100M000100Y43", True, "91350100M000100Y43"),
        ("USCC", "91350100M000100Y44", False, None),
        ("USCC", "N1110000MA00000017", True, "N1110000MA00000017"),
        ("USCC", "Y1440300MA5D123457", True, "Y1440300MA5D123457"),
        ("USCC", "A1000000MB1234567F", True, "A1000000MB1234567F"),
        ("USCC", "91350100M000100I43", False, None),  # I is not in the alphabet
        ("ORG_CODE", "D2143569-X", True, "D2143569X"),
        ("ORG_CODE", "MA5D12340", True, "MA5D12340"),
        ("ORG_CODE", "D21435691", False, None),
    ],
)
def test_other_document_types(declared: str, raw: str, valid: bool, key: str | None) -> None:
    r = one(declared, raw)
    assert r["id_type"] == declared
    assert r["id_valid"] is valid or r["id_valid"] == valid
    assert r["id_key"] == (f"{declared}:{key}" if key else None)
    if not valid:
        assert r["id_flags"] in (["ID_FORMAT"], ["ID_BAD_CHECKSUM"])


def test_residence_permit_rules() -> None:
    good = make_id("820000", "19910715", "013")
    r = one("HMT_RESIDENCE_PERMIT", good)
    assert r["id_valid"] and r["id_gender"] == "M" and r["id_birth_date"] == pd.Timestamp("1991-07-15")
    assert one("HMT_RESIDENCE_PERMIT", good[:17] + str((int(good[17]) + 1) % 10) if good[17] != "X" else "0")[
        "id_flags"
    ] == ["ID_BAD_CHECKSUM"]
    assert one("HMT_RESIDENCE_PERMIT", make_id("820000", "19911315", "013"))["id_flags"] == ["ID_BAD_DATE"]


def test_new_pr_card_rules() -> None:
    good = make_id("931156", "19900101", "001")
    assert one("FOREIGN_PR_CARD", good)["id_key"] == f"FOREIGN_PR_CARD:{good}"
    assert one("FOREIGN_PR_CARD", make_id("931156", "19900230", "001"))["id_flags"] == ["ID_BAD_DATE"]
    assert one("FOREIGN_PR_CARD", make_id("990156", "19900101", "001"))["id_flags"] == ["ID_REGION_UNKNOWN"]


def test_placeholder_passport() -> None:
    r = one("PASSPORT_CN", "E00000000")
    assert r["id_valid"] and r["id_placeholder"] and r["id_key"] is None


def test_uscc_and_org_code_check_chars() -> None:
    assert uscc_check_char("91350100M000100Y4") == "3"
    assert org_code_check_char("D2143569") == "X"
    assert org_code_check_char("MA5D1234") == "0"
    with pytest.raises(ValueError):
        uscc_check_char("91350100M000100O4")
    with pytest.raises(ValueError):
        org_code_check_char("d2143569")


@given(st.text(alphabet=USCC_ALPHABET, min_size=17, max_size=17))
def test_uscc_check_char_agrees_with_stdnum(body: str) -> None:
    assert uscc_check_char(body) == stdnum.cn.uscc.calc_check_digit(body)


# ------------------------------------------------------------------ frame behaviour


def test_index_is_kept_and_duplicates_agree() -> None:
    idx = pd.Index([10, 3, 7, 99])
    types = pd.Series(["RESIDENT_ID", "RESIDENT_ID", "PASSPORT_CN", "RESIDENT_ID"], index=idx)
    nums = pd.Series([RID, RID.lower(), RID, None], index=idx)
    out = standardize_ids(types, nums, RULES)
    assert out.index.equals(idx)
    assert out["id_key"].tolist() == [f"RESIDENT_ID:{RID}"] * 3 + [None]
    assert out.loc[7, "id_flags"] == ["ID_TYPE_CORRECTED"] and out.loc[10, "id_flags"] == []
    assert out["id_flags"][10] is not out["id_flags"][3]  # each row owns its list


def test_empty_input() -> None:
    out = standardize_ids(pd.Series([], dtype=object), pd.Series([], dtype=object), RULES)
    assert out.empty and list(out.columns) == list(OUTPUT_COLUMNS)


def test_mismatched_columns_raise() -> None:
    with pytest.raises(MdmError):
        standardize_ids(pd.Series(["RESIDENT_ID"]), pd.Series([RID, RID]), RULES)


def test_config_errors_say_what_to_fix() -> None:
    with pytest.raises(ConfigError, match="region_unknown"):
        load_id_rules({"region_unknown": "maybe"})
    with pytest.raises(ConfigError, match="passport_cn_patterns"):
        load_id_rules({"passport_cn_patterns": ["G[0-9"]})
    assert load_id_rules({"max_names_per_id": 5}).max_names_per_id == 5


def test_no_raw_number_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    standardize_ids(pd.Series(["RESIDENT_ID"]), pd.Series([RID]), RULES)
    assert caplog.records and RID not in caplog.text


# ------------------------------------------------------------------ shared IDs


def test_shared_id_numbers() -> None:
    ids = pd.Series(["a", "a", "a", "a", "b", "b", None, "c"])
    names = pd.Series(["x", "y", "z", "z", "x", "x", "q", None])
    assert shared_id_numbers(ids, names, 2).tolist() == [True] * 4 + [False] * 4
    assert not shared_id_numbers(ids, names, 3).any()
    assert shared_id_numbers(pd.Series([], dtype=object), pd.Series([], dtype=object), 1).empty
    assert not shared_id_numbers(pd.Series([None, None]), pd.Series(["x", "y"]), 0).any()
    assert shared_id_numbers(pd.Series(["a", "a"]), pd.Series(["x", "y"]), 1).all()


def test_mark_shared_ids() -> None:
    nums = pd.Series([RID] * 3 + [make_id("110108", "19850312", "462")])
    std = standardize_ids(pd.Series(["RESIDENT_ID"] * 4), nums, RULES)
    marked = mark_shared_ids(
        std, pd.Series(["张三", "李四", "王五", "张三"]), RULES.model_copy(update={"max_names_per_id": 2})
    )
    assert marked["id_placeholder"].tolist() == [True, True, True, False]
    assert marked["id_key"].isna().tolist() == [True, True, True, False]
    assert marked["id_flags"][0] == ["ID_PLACEHOLDER", "ID_SHARED_BY_NAMES"]
    assert std["id_key"].notna().all()  # the input is untouched


# ------------------------------------------------------------------ invariants

_TYPES = st.sampled_from([t.value for t in IdType] + ["", "junk"])
_ID_ALPHABET = st.sampled_from([*"0123456789XxHMGEＸ×χ -()字第号军", "１"])
_numbers = st.one_of(st.text(), st.text(_ID_ALPHABET, max_size=20), st.none())
_STABLE = ["id_type", "id_number", "id_valid", "id_placeholder", "id_key", "id_birth_date", "id_gender"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_TYPES, _numbers), min_size=1, max_size=8))
def test_never_raises_and_is_idempotent(rows: list[tuple[str, str | None]]) -> None:
    types = pd.Series([t for t, _ in rows], dtype=object)
    nums = pd.Series([n for _, n in rows], dtype=object)
    first = standardize_ids(types, nums, RULES)
    assert len(first) == len(rows)
    assert first["id_flags"].map(lambda f: set(f) <= set(FLAGS)).all()
    assert (first["id_key"].notna() == (first["id_valid"] & ~first["id_placeholder"])).all()
    again = standardize_ids(first["id_type"], first["id_number"], RULES)
    pd.testing.assert_frame_equal(first[_STABLE], again[_STABLE])
