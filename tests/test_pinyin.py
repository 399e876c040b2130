"""Pinyin pieces: surname table, syllable splitting, fuzzy folds, the Latin-name rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from validators.names_latin import parse_latin
from validators.names_tables import load_tables
from validators.pinyin import fuzzy_syllable, han_keys, han_only_keys, segment, surname_keys, umlaut_fold

T = load_tables()

DOC_COMPOUNDS = [
    "万俟",
    "司马",
    "上官",
    "欧阳",
    "夏侯",
    "诸葛",
    "闻人",
    "东方",
    "赫连",
    "皇甫",
    "尉迟",
    "公羊",
    "澹台",
    "公冶",
    "宗政",
    "濮阳",
    "淳于",
    "单于",
    "太叔",
    "申屠",
    "公孙",
    "仲孙",
    "轩辕",
    "令狐",
    "钟离",
    "宇文",
    "长孙",
    "慕容",
    "鲜于",
    "闾丘",
    "司徒",
    "司空",
    "亓官",
    "司寇",
    "子车",
    "颛孙",
    "端木",
    "巫马",
    "公西",
    "漆雕",
    "乐正",
    "壤驷",
    "公良",
    "拓跋",
    "夹谷",
    "宰父",
    "谷梁",
    "段干",
    "百里",
    "东郭",
    "南门",
    "呼延",
    "羊舌",
    "微生",
    "梁丘",
    "左丘",
    "东门",
    "西门",
    "南宫",
    "第五",
    "独孤",
    "贺兰",
    "纳兰",
    "完颜",
    "哥舒",
    "达奚",
    "范姜",
    "张简",
    "张廖",
    "爱新觉罗",
    "叶赫那拉",
]


def test_every_documented_compound_surname_is_known() -> None:
    assert len(DOC_COMPOUNDS) == 71
    assert set(DOC_COMPOUNDS) <= T.compound_surnames
    assert T.compound_lengths == (4, 2)


@pytest.mark.parametrize(
    ("surname", "reading"),
    [
        ("单", "shan"),
        ("曾", "zeng"),
        ("区", "ou"),
        ("仇", "qiu"),
        ("解", "xie"),
        ("查", "zha"),
        ("朴", "piao"),
        ("翟", "zhai"),
        ("缪", "miao"),
        ("覃", "qin"),
        ("种", "chong"),
        ("万俟", "moqi"),
        ("尉迟", "yuchi"),
        ("长孙", "zhangsun"),
        ("乐", "yue"),
        ("盖", "ge"),
        ("柏", "bai"),
        ("秘", "bi"),
        ("费", "fei"),
        ("葛", "ge"),
        ("华", "hua"),
        ("任", "ren"),
        ("沈", "shen"),
        ("宿", "su"),
        ("燕", "yan"),
        ("尉", "yu"),
        ("员", "yun"),
        ("阚", "kan"),
        ("召", "shao"),
        ("句", "gou"),
    ],
)
def test_surname_readings(surname: str, reading: str) -> None:
    assert surname_keys(T, surname)[0] == reading


def test_surname_table_has_at_least_sixty_explicit_single_readings() -> None:
    assert len(T.surname_readings) > 400
    explicit = [row for row in open_table("surnames.tsv") if len(row[0]) == 1 and row[1]]
    assert len(explicit) >= 60


def open_table(name: str) -> list[list[str]]:
    from validators.names_rules import DEFAULT_REFERENCE_DIR

    lines = (DEFAULT_REFERENCE_DIR / name).read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines if line and not line.startswith("#")][1:]


def test_surname_reading_only_applies_to_the_surname() -> None:
    assert han_only_keys(T, "王曾").pinyin == "wang ceng"
    assert han_only_keys(T, "曾曾").pinyin == "zeng ceng"


@pytest.mark.parametrize(
    ("text", "syllables"),
    [
        ("xiaoming", ("xiao", "ming")),
        ("xiangang", ("xian", "gang")),
        ("zhuang", ("zhuang",)),
        ("lyu", ("lv",)),
        ("lue", ("lve",)),
        ("nyuhua", ("nv", "hua")),
        ("ouyang", ("ou", "yang")),
        ("john", None),
        ("smith", None),
        ("", None),
    ],
)
def test_segment(text: str, syllables: tuple[str, ...] | None) -> None:
    assert segment(T, text) == syllables


@pytest.mark.parametrize(
    ("syl", "folded"),
    [
        ("zhang", "zan"),
        ("chen", "cen"),
        ("cheng", "cen"),
        ("shi", "si"),
        ("niu", "liu"),
        ("liu", "liu"),
        ("huang", "fuan"),
        ("fang", "fan"),
        ("xing", "xin"),
        ("xiang", "xian"),
        ("long", "long"),
        ("lv", "lu"),
        ("wang", "wan"),
    ],
)
def test_fuzzy_syllable(syl: str, folded: str) -> None:
    assert fuzzy_syllable(T, syl) == folded


@pytest.mark.parametrize(
    ("token", "folded"),
    [("lyu", "lu"), ("lv", "lu"), ("lu", "lu"), ("lve", "lue"), ("nv", "nu"), ("nyu", "nu"), ("xinyu", "xinyu")],
)
def test_umlaut_fold(token: str, folded: str) -> None:
    assert umlaut_fold(token) == folded


def test_latin_rule_surname_first_then_last() -> None:
    assert parse_latin(T, "ZHANG XIAO MING").key == "xiaoming zhang"
    assert parse_latin(T, "XIAO MING ZHANG").key == "mingzhang xiao"  # documented: the first surname wins
    assert parse_latin(T, "XIAOMING ZHANG").surname == "zhang"
    assert parse_latin(T, "AU<YEUNG<<KA<WAI").key == "kawai ouyang"


def test_latin_non_pinyin_given_names_stay_separate() -> None:
    r = parse_latin(T, "CHEUNG CHI KEUNG")
    assert r.key == "chi keung zhang"
    assert r.pinyin is None and r.fuzzy is None


def test_latin_transliterated_without_surname_is_one_token() -> None:
    assert parse_latin(T, "AYIGULI MAIMAITI").key == "ayigulimaimaiti"


def test_latin_junk_flag_and_norm() -> None:
    r = parse_latin(T, "zhang  san #1")
    assert (r.norm, r.junk, r.key) == ("ZHANG SAN", True, "san zhang")
    assert parse_latin(T, "O'BRIEN, MARY-JANE").norm == "OBRIEN, MARYJANE"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="张王李欧阳司马单曾区田芳晓明伟娜吕女爱新觉罗", min_size=1, max_size=7))
def test_fast_path_equals_general_path(name: str) -> None:
    assert han_only_keys(T, name) == han_keys(T, list(name), [True] * len(name))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", max_size=14))
def test_segment_round_trips(text: str) -> None:
    parts = segment(T, text)
    if parts is not None:
        assert all(p in T.syllables for p in parts)
        joined = "".join(parts)
        assert joined == text or ("v" in joined and len(joined) <= len(text))
