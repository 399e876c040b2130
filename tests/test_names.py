"""Name standardization: one hand-made row per rule, plus invariants (never raises, idempotent)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdm.errors import ConfigError, MdmError
from validators.names import NAME_COLUMNS, NameRules, pinyin_similarity, standardize_name, standardize_names
from validators.names_tables import load_tables


def one(name: object, latin: object = None) -> dict[str, Any]:
    lat = None if latin is None else pd.Series([latin], dtype=object)
    row = standardize_names(pd.Series([name], dtype=object), lat).iloc[0]
    return dict(row)


@pytest.mark.parametrize(
    ("raw", "norm", "flag"),
    [
        ("張偉", "张伟", "NAME_TRADITIONAL_FOLDED"),
        ("锺汉良", "钟汉良", "NAME_TRADITIONAL_FOLDED"),
        ("甯静", "宁静", "NAME_TRADITIONAL_FOLDED"),
        ("张 伟", "张伟", "NAME_SPACES_REMOVED"),
        ("张\u3000伟", "张伟", "NAME_FULLWIDTH"),
        ("张伟😀", "张伟", "NAME_JUNK_REMOVED"),
        ("张伟123", "张伟", "NAME_JUNK_REMOVED"),
        ("张?伟", "张伟", "NAME_UNREADABLE_CHAR"),
        ("张伟（已故）", "张伟", "NAME_JUNK_REMOVED"),
        ("阿依古丽•买买提", "阿依古丽·买买提", "NAME_MIDDLE_DOT_FOLDED"),
        ("阿依古丽 买买提", "阿依古丽·买买提", "NAME_MIDDLE_DOT_FOLDED"),
        ("ＺＨＡＮＧ　ＳＡＮ", "ZHANG SAN", "NAME_FULLWIDTH"),
    ],
)
def test_cleaning_rules_set_norm_and_flag(raw: str, norm: str, flag: str) -> None:
    row = one(raw)
    assert row["name_norm"] == norm
    assert flag in row["name_flags"]


def test_qian_is_never_folded_to_gan() -> None:
    row = one("戴乾")
    assert row["name_norm"] == "戴乾"
    assert row["name_pinyin"] == "dai qian"
    assert row["name_flags"] == []


def test_clean_name_has_no_flags() -> None:
    row = one("张伟")
    assert row == {
        "name_norm": "张伟",
        "name_script": "han",
        "name_pinyin": "zhang wei",
        "name_fuzzy": "zanwei",
        "name_latin_key": "wei zhang",
        "name_surname": "张",
        "name_flags": [],
    }


@pytest.mark.parametrize(
    "variant",
    [
        "阿依古丽·买买提",
        "阿依古丽•买买提",
        "阿依古丽・买买提",
        "阿依古丽･买买提",
        "阿依古丽‧买买提",
        "阿依古丽.买买提",
        "阿依古丽．买买提",
        "阿依古丽 买买提",
        "阿依古丽买买提",
    ],
)
def test_middle_dot_variants_share_every_key(variant: str) -> None:
    ref = one("阿依古丽·买买提")
    row = one(variant)
    for col in ("name_pinyin", "name_fuzzy", "name_latin_key", "name_surname", "name_script"):
        assert row[col] == ref[col], col
    assert row["name_norm"] in ("阿依古丽·买买提", "阿依古丽买买提")
    assert ref["name_surname"] is None  # a transliterated name has no surname
    assert ref["name_pinyin"] == "ayigulimaimaiti"


def test_canonical_middle_dot_is_not_flagged() -> None:
    assert "NAME_MIDDLE_DOT_FOLDED" not in one("阿依古丽·买买提")["name_flags"]


@pytest.mark.parametrize(
    ("raw", "pinyin", "surname"),
    [
        ("单田芳", "shan tianfang", "单"),
        ("曾国藩", "zeng guofan", "曾"),
        ("区志坚", "ou zhijian", "区"),
        ("仇晓", "qiu xiao", "仇"),
        ("朴槿惠", "piao jinhui", "朴"),
        ("翟志刚", "zhai zhigang", "翟"),
        ("覃明", "qin ming", "覃"),
        ("欧阳娜", "ouyang na", "欧阳"),
        ("万俟卨", "moqi xie", "万俟"),
        ("尉迟恭", "yuchi gong", "尉迟"),
        ("长孙无忌", "zhangsun wuji", "长孙"),
        ("爱新觉罗溥仪", "aixinjueluo puyi", "爱新觉罗"),
        ("张晓明", "zhang xiaoming", "张"),
        ("司马", "si ma", "司"),  # a whole name equal to a compound surname is surname + given name
        ("吕晓明", "lv xiaoming", "吕"),
    ],
)
def test_surname_aware_pinyin(raw: str, pinyin: str, surname: str) -> None:
    row = one(raw)
    assert (row["name_pinyin"], row["name_surname"]) == (pinyin, surname)


def test_fuzzy_key_collides_dialect_pairs() -> None:
    assert one("张伟")["name_fuzzy"] == one("章伟")["name_fuzzy"]
    assert one("刘")["name_fuzzy"] == one("牛")["name_fuzzy"]
    assert one("陈晨")["name_fuzzy"] == one("程成")["name_fuzzy"]  # ch/c and -n/-ng
    assert one("黄芳")["name_fuzzy"] != one("王芳")["name_fuzzy"]  # h/f is folded, h/w is not
    assert one("胡")["name_fuzzy"] == one("符")["name_fuzzy"]
    assert one("张伟")["name_fuzzy"] != one("王伟")["name_fuzzy"]


def test_latin_key_matches_han_name_in_any_order() -> None:
    han = one("张晓明")["name_latin_key"]
    assert han == "xiaoming zhang"
    for latin in (
        "XIAOMING ZHANG",
        "ZHANG XIAOMING",
        "ZHANG XIAO MING",
        "zhang xiao-ming",
        "ZHANG<<XIAOMING",
        "ZHANG<<XIAO<MING",
        "Zhang, Xiaoming",
    ):
        assert one(latin)["name_latin_key"] == han, latin
        assert one(latin)["name_script"] == "latin"


def test_latin_pinyin_and_fuzzy_match_han() -> None:
    han, latin = one("张晓明"), one("XIAOMING ZHANG")
    assert (latin["name_pinyin"], latin["name_fuzzy"]) == (han["name_pinyin"], han["name_fuzzy"])
    assert latin["name_surname"] == "zhang"


def test_umlaut_spellings_fold_in_latin_key() -> None:
    key = one("吕晓明")["name_latin_key"]
    assert key == "lu xiaoming"
    for latin in ("LYU XIAOMING", "LV XIAOMING", "LU XIAOMING", "LÜ XIAOMING"):
        assert one(latin)["name_latin_key"] == key, latin


def test_compound_surname_split_on_card() -> None:
    assert one("OU YANG NA")["name_latin_key"] == one("欧阳娜")["name_latin_key"] == "na ouyang"


def test_hong_kong_spellings_map_to_pinyin_surname() -> None:
    assert "chen" in one("CHAN TAI MAN")["name_latin_key"].split()
    assert one("WONG KA WAI")["name_latin_key"].split()[0] == "huang"
    assert "zhang" in one("CHEUNG CHI KEUNG")["name_latin_key"].split()
    assert one("LEE, MING")["name_latin_key"] == "li ming"
    assert one("TAN XIAOMING")["name_latin_key"] == one("谭晓明")["name_latin_key"]


def test_foreign_names_keep_sorted_tokens() -> None:
    row = one("JOHN PAUL SMITH")
    assert row["name_latin_key"] == "john paul smith"
    assert row["name_pinyin"] is None
    assert one("SMITH<<JOHN<PAUL")["name_latin_key"] == "john paul smith"
    assert one("SMITH<<JOHN<PAUL")["name_surname"] == "smith"
    assert one("MÜLLER HANS")["name_latin_key"] == "hans muller"


def test_mixed_script() -> None:
    row = one("张Wei")
    assert row["name_script"] == "mixed"
    assert row["name_pinyin"] == "zhang wei"


@pytest.mark.parametrize("blank", [None, "", "   ", np.nan, "不详", "NULL", "???", "123"])
def test_blank_and_placeholder_names_are_missing(blank: object) -> None:
    row = one(blank)
    assert row["name_norm"] is None and row["name_script"] is None and row["name_latin_key"] is None
    assert "NAME_MISSING" in row["name_flags"]


def test_placeholder_flag_only_for_placeholders() -> None:
    assert "NAME_PLACEHOLDER" in one("不详")["name_flags"]
    assert "NAME_PLACEHOLDER" not in one("???")["name_flags"]


def test_unknown_character_marks_pinyin_partial() -> None:
    row = one("张𠇔")
    assert row["name_norm"] == "张𠇔"
    assert "NAME_PINYIN_PARTIAL" in row["name_flags"]


def test_name_latin_used_when_name_blank() -> None:
    row = one(None, "ZHANG XIAOMING")
    assert row["name_script"] == "latin"
    assert row["name_latin_key"] == "xiaoming zhang"
    assert "NAME_FROM_LATIN" in row["name_flags"] and "NAME_MISSING" not in row["name_flags"]


def test_name_latin_gives_the_latin_key_when_both_present() -> None:
    row = one("陈大文", "CHAN TAI MAN")
    assert row["name_norm"] == "陈大文" and row["name_pinyin"] == "chen dawen"
    assert row["name_latin_key"] == "chen taiman"


def test_frame_shape_index_and_fresh_flag_lists() -> None:
    s = pd.Series(["張偉", "張偉", None, "李娜"], index=[10, 11, 12, 13])
    out = standardize_names(s, pd.Series([None, "ZHANG WEI", None, ""], index=s.index))
    assert list(out.columns) == list(NAME_COLUMNS)
    assert list(out.index) == [10, 11, 12, 13]
    assert out.loc[12, "name_flags"] == ["NAME_MISSING"]
    flags: list[str] = out.at[10, "name_flags"]  # type: ignore[assignment]
    flags.append("X")
    assert out.loc[11, "name_flags"] == ["NAME_TRADITIONAL_FOLDED"]


def test_length_mismatch_raises_mdm_error() -> None:
    with pytest.raises(MdmError, match="same frame"):
        standardize_names(pd.Series(["张伟"]), pd.Series(["A", "B"]))


def test_overrides_in_rules() -> None:
    rules = NameRules(surname_reading_overrides={"单": "dan"}, han_variant_overrides={"乾": "干"})
    s = pd.Series(["单田芳", "戴乾"])
    out = standardize_names(s, config=rules)
    assert list(out["name_pinyin"]) == ["dan tianfang", "dai gan"]


def test_missing_table_raises_config_error(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="reference_dir"):
        load_tables(NameRules(reference_dir=tmp_path))  # type: ignore[arg-type]


def test_pinyin_similarity_is_character_level() -> None:
    a = pd.Series(["zhang xiaoming", "张三丰", None, "abc"])
    b = pd.Series(["zhangxiaoming", "张丰三", "x", ""])
    sim = pinyin_similarity(a, b)
    assert sim[0] == pytest.approx(1.0)
    assert sim[1] == pytest.approx(0.5556, abs=1e-3)  # DuckDB's byte-based Jaro-Winkler says 0.978
    assert np.isnan(sim[2]) and np.isnan(sim[3])
    lev = pinyin_similarity(pd.Series(["张三丰"]), pd.Series(["张三峰"]), method="levenshtein")
    assert lev[0] == pytest.approx(2 / 3)
    with pytest.raises(MdmError):
        pinyin_similarity(a, b.iloc[:2])


TABLES = load_tables()
_settings = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_names = st.one_of(
    st.text(max_size=12),
    st.text(alphabet="张王李欧阳單田芳曾·•・ .?0１ＡaBZ阿依古丽买买提锺乾<,-", max_size=12),
)


@_settings
@given(_names)
def test_never_raises_and_is_idempotent(raw: str) -> None:
    first = standardize_name(TABLES, raw)
    if first.norm is None:
        assert "NAME_MISSING" in first.flags
        return
    again = standardize_name(TABLES, first.norm)
    assert again.norm == first.norm
    assert (again.pinyin, again.fuzzy, again.latin_key, again.surname, again.script) == (
        first.pinyin,
        first.fuzzy,
        first.latin_key,
        first.surname,
        first.script,
    )


@_settings
@given(st.text(alphabet="张王李欧阳司马田芳晓明伟娜乾锺", min_size=1, max_size=8))
def test_dot_and_space_never_change_keys(han: str) -> None:
    plain = standardize_name(TABLES, han)
    for sep in ("·", "•", " "):
        dotted = standardize_name(TABLES, han[:1] + sep + han[1:]) if len(han) > 1 else plain
        assert (dotted.pinyin, dotted.fuzzy, dotted.latin_key) == (plain.pinyin, plain.fuzzy, plain.latin_key)


@_settings
@given(st.lists(st.sampled_from(["张伟", "張偉", None, "", "XIAOMING ZHANG", "阿依古丽•买买提"]), max_size=30))
def test_vector_equals_scalar(values: list[str | None]) -> None:
    out = standardize_names(pd.Series(values, dtype=object))
    for i, v in enumerate(values):
        r = standardize_name(TABLES, v)
        assert out.iloc[i]["name_latin_key"] == r.latin_key
        assert out.iloc[i]["name_flags"] == list(r.flags)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=20) | st.text(max_size=20))
def test_junk_shortcut_same_as_character_loop(text: str) -> None:
    from validators.names_latin import _SEPARATORS, has_junk

    assert has_junk(text) == any(not (c.isalpha() or c.isspace() or c in _SEPARATORS) for c in text)
