"""Address normalization: text clean-up, administrative levels with an ambiguity guard, remainder slots."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from validators.address_regions import RegionMemo, RegionRules, resolve_region
from validators.address_slots import cn_number, parse_slots
from validators.addresses import (
    ADDRESS_AMBIGUOUS,
    ADDRESS_TOO_LONG,
    ADDRESS_UNPARSED,
    OUTPUT_COLUMNS,
    AddressRules,
    normalize_address_text,
    standardize_addresses,
)


def one(raw: object, config: AddressRules | None = None) -> dict[Any, Any]:
    return standardize_addresses(pd.Series([raw], dtype=object), config).iloc[0].to_dict()


def levels(raw: str) -> tuple[object, ...]:
    row = one(raw)
    return row["province"], row["city"], row["district"], row["adcode"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("北京市朝阳区建国路88号", ("北京市", "北京市", "朝阳区", "110105")),  # municipality: city = province
        ("北京朝阳区建国路88号", ("北京市", "北京市", "朝阳区", "110105")),
        ("吉林省长春市朝阳区红旗街1号", ("吉林省", "长春市", "朝阳区", "220104")),
        ("长春市朝阳区红旗街1号", ("吉林省", "长春市", "朝阳区", "220104")),
        ("南京市鼓楼区中山路1号", ("江苏省", "南京市", "鼓楼区", "320106")),
        ("重庆市九龙坡区杨家坪正街", ("重庆市", "重庆市", "九龙坡区", "500107")),
        ("上海浦东新区世纪大道100号", ("上海市", "上海市", "浦东新区", "310115")),
        ("天津市和平区南京路1号", ("天津市", "天津市", "和平区", "120101")),
        ("广东省深圳市南山区科技园", ("广东省", "深圳市", "南山区", "440305")),
        ("广东深圳南山区", ("广东省", "深圳市", "南山区", "440305")),
        ("中国广东省深圳市福田区", ("广东省", "深圳市", "福田区", "440304")),
        ("广东省东莞市东城街道", ("广东省", "东莞市", None, "441900")),  # city without districts
        ("湖北省仙桃市干河街道", ("湖北省", None, "仙桃市", "429004")),  # province-administered city
        ("浙江省杭州市临安区", ("浙江省", "杭州市", "临安区", "330112")),  # newer than cpca's data
        ("襄樊市樊城区", ("湖北省", "襄阳市", "樊城区", "420606")),  # renamed city: current name
        ("内蒙呼和浩特市", ("内蒙古自治区", "呼和浩特市", None, "150100")),
        ("新疆乌鲁木齐市天山区", ("新疆维吾尔自治区", "乌鲁木齐市", "天山区", "650102")),
        ("北京海淀中关村大街27号", ("北京市", "北京市", "海淀区", "110108")),  # short county name under a known city
        ("海淀区中关村大街27号", ("北京市", "北京市", "海淀区", "110108")),  # unique district name alone
        ("吉林省吉林市船营区", ("吉林省", "吉林市", "船营区", "220204")),
        ("江苏省", ("江苏省", None, None, "320000")),
    ],
)
def test_administrative_levels(raw: str, expected: tuple[object, ...]) -> None:
    assert levels(raw) == expected
    assert one(raw)["address_flags"] == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("朝阳区建国路88号", (None, None, None, None)),  # Beijing or Changchun: never guessed
        ("鼓楼区中山路1号", (None, None, None, None)),  # several cities; 中山 is a road here, not 中山市
        ("江苏省鼓楼区中山路1号", ("江苏省", None, None, "320000")),  # Nanjing or Xuzhou
    ],
)
def test_ambiguous_districts_left_empty(raw: str, expected: tuple[object, ...]) -> None:
    row = one(raw)
    assert (row["province"], row["city"], row["district"], row["adcode"]) == expected
    assert row["address_flags"] == [ADDRESS_AMBIGUOUS]


def test_place_named_roads_are_not_places() -> None:
    assert levels("上海市南京路100号") == ("上海市", "上海市", None, "310000")
    row = one("北京路1号")
    assert row["province"] is None and row["road"] == "北京路" and row["address_flags"] == [ADDRESS_UNPARSED]


def test_names_deep_in_the_text_are_not_the_region() -> None:
    row = one("阳光花园小区旁边的北京市朝阳区")
    assert row["province"] is None and row["address_flags"] == [ADDRESS_UNPARSED]
    wide = one("阳光花园小区旁边的北京市朝阳区", AddressRules(region=RegionRules(max_lead=20)))
    assert wide["district"] == "朝阳区"


@pytest.mark.parametrize(
    ("raw", "slots"),
    [
        ("北京市朝阳区建国路88号SOHO现代城3号楼2单元1203室", ("建国路", "88", "3", "2", "1203")),
        ("广东省深圳市南山区科技园路1号3-2-1203", ("科技园路", "1", "3", "2", "1203")),
        ("北京市朝阳区三里屯路19号院3#2-1203", ("三里屯路", "19", "3", "2", "1203")),
        ("北京市东城区东直门南大街3号楼2门1203", ("东直门南大街", None, "3", "2", "1203")),
        ("重庆市九龙坡区杨家坪正街十二号一二〇三室", ("杨家坪正街", "12", None, None, "1203")),
        ("上海市黄浦区南京东路100弄5号", ("南京东路100弄", "5", None, None, None)),
        ("江苏省昆山市千灯镇玉溪西路88号5栋501", ("玉溪西路", "88", "5", None, "501")),
        ("上海市浦东新区世纪大道100号A座2301", ("世纪大道", "100", "A", None, "2301")),
        ("浙江省杭州市西湖区文三路甲1号之一", ("文三路", "甲1之1", None, None, None)),
        ("北京市朝阳区阳光小区5-502", (None, None, "5", None, "502")),
        ("北京市西城区西单北大街一百零三号", ("西单北大街", "103", None, None, None)),
        ("北京市海淀区学院路三十二号二栋三单元五零二室", ("学院路", "32", "2", "3", "502")),
        ("北京市西城区西直门内大街0502室", ("西直门内大街", None, None, None, "502")),
    ],
)
def test_slots(raw: str, slots: tuple[object, ...]) -> None:
    row = one(raw)
    assert (row["road"], row["house_no"], row["building"], row["unit"], row["room"]) == slots


@pytest.mark.parametrize(
    "raw", ["重庆市九龙坡区杨家坪", "北京市朝阳区三里屯", "四川省成都市武侯区一环路", "上海市五角场"]
)
def test_numerals_in_place_names_untouched(raw: str) -> None:
    row = one(raw)
    assert row["address_norm"] == raw
    assert row["district"] in (None, "九龙坡区", "朝阳区", "武侯区")
    assert "9" not in str(row["district"]) and "3" not in str(row["road"]) and "1" not in str(row["road"])


def test_cn_number() -> None:
    assert cn_number("十二") == "12"
    assert cn_number("十") == "10"
    assert cn_number("二十") == "20"
    assert cn_number("一百零三") == "103"
    assert cn_number("一二〇三") == "1203"
    assert cn_number("两千零五") == "2005"
    assert cn_number("0502") == "502"
    assert cn_number("000") == "0"


def test_parse_slots_empty() -> None:
    assert parse_slots("") == (None, None, None, None, None)


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("  广东省　深圳市，福田区 ", "广东省深圳市,福田区"),
        ("北京市朝阳区（近地铁）３号楼", "北京市朝阳区(近地铁)3号楼"),
        ("北京市  朝阳区、建国路 88 号", "北京市朝阳区,建国路88号"),
        ("Room 1203, Building 3", "ROOM 1203,BUILDING 3"),
        ("3－2－1203", "3-2-1203"),
        ("3 # 2 - 1203", "3#2-1203"),
        ("北京市\t朝阳区\n", "北京市朝阳区"),
    ],
)
def test_normalized_text(raw: str, norm: str) -> None:
    assert one(raw)["address_norm"] == norm


def test_missing_junk_and_huge() -> None:
    out = standardize_addresses(pd.Series([None, float("nan"), "", "  ", "xx", "😀" * 1000], dtype=object))
    assert list(out.columns) == list(OUTPUT_COLUMNS)
    assert out["address_flags"].tolist() == [[], [], [], [], [ADDRESS_UNPARSED], [ADDRESS_TOO_LONG, ADDRESS_UNPARSED]]
    assert out["address_norm"].tolist()[:5] == [None, None, None, None, "XX"]


def test_aligned_to_index() -> None:
    raw = pd.Series(["北京市朝阳区", None, "北京市朝阳区"], index=[9, 4, 1])
    out = standardize_addresses(raw)
    assert list(out.index) == [9, 4, 1]
    assert out["adcode"].tolist() == ["110105", None, "110105"]


def test_resolve_region_reports_where_the_remainder_starts() -> None:
    region = resolve_region("北京市朝阳区建国路")
    assert region.end == len("北京市朝阳区") and not region.ambiguous


_ADDRESS_CHARS = st.sampled_from(list("北京市朝阳区鼓楼中山路号栋单元室一二三十〇0123456789-# ,，（）ＡＢａ\u3000"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=60), st.text(_ADDRESS_CHARS, max_size=40)), max_size=6))
def test_never_raises_and_adcode_shape(values: list[str | None]) -> None:
    out = standardize_addresses(pd.Series(values, dtype=object))
    assert len(out) == len(values)
    for code in out["adcode"].dropna():
        assert len(code) == 6 and code.isdigit()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60) | st.text(_ADDRESS_CHARS, max_size=40))
def test_normalization_idempotent(raw: str) -> None:
    once = normalize_address_text(raw)
    assert normalize_address_text(once) == once
    first = one(raw)
    if first["address_norm"] is not None:
        again = one(first["address_norm"])
        assert {k: again[k] for k in OUTPUT_COLUMNS} == {k: first[k] for k in OUTPUT_COLUMNS}


# Names, road suffixes and characters that end the administrative part, mixed so that names run
# into each other, into road names and across the first digit.
_REGION_PIECES = st.sampled_from(
    [
        "北京市", "北京", "朝阳区", "朝阳", "吉林省", "吉林市", "吉林", "长春市", "鼓楼区", "江苏省",
        "南京市", "中国", "内蒙", "海淀", "上海", "浦东新区", "中山", "路", "大街", "胡同",
        "道", "里", "东", "1", "23号", "A", "#", "-", "号",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.lists(_REGION_PIECES, max_size=8).map("".join), min_size=1, max_size=12), st.sampled_from([
    RegionRules(), RegionRules(max_lead=0, max_gap=0), RegionRules(max_lead=8, max_gap=6, county_short_names=False)
]))
def test_region_memo_same_as_resolve_region(texts: list[str], rules: RegionRules) -> None:
    memo = RegionMemo(rules)  # one memo across the texts: later texts reuse what earlier ones left
    for text in [*texts, *texts]:
        assert memo(text) == resolve_region(text, rules)


def test_region_memo_keeps_the_walk_going_past_a_digit_when_in_reach() -> None:
    memo = RegionMemo()
    assert memo("北京市1朝阳区") == resolve_region("北京市1朝阳区")  # the district is within the gap
    assert memo("北京市1海淀区") == resolve_region("北京市1海淀区")  # same leading part, other district


def test_cn_number_is_memoized_without_changing_answers() -> None:
    assert [cn_number(t) for t in ("十二", "0502", "十二", "一二〇三")] == ["12", "502", "12", "1203"]
