"""The address parser's shortcuts against the plain step-by-step versions they replace.

``parse_slots`` tries a pattern only where the text holds a character the pattern needs, and
``_normalize_once`` returns early when no step after NFKC would change the text. The plain
versions below are the code before those shortcuts; the answers must be the same for any text.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from validators import address_slots as slots
from validators import addresses
from validators.address_slots import Slots, cn_number, parse_slots
from validators.contact_common import nfkc


def plain_parse_slots(remainder: str) -> Slots:
    if not remainder:
        return slots.EMPTY_SLOTS
    rest = slots._SUBDISTRICT.sub("", remainder, count=1)
    road = house_no = building = unit = room = None
    pos = 0
    m = slots._ROAD.search(rest)
    if m:
        road = m.group(1) + (cn_number(m.group(2)) + "弄" if m.group(2) else "")
        pos = m.end()
    h = slots._HOUSE.search(rest, pos)
    if h:
        number = h.group(2)
        number = "-".join(cn_number(p) for p in number.split("-")) if "-" in number else cn_number(number)
        house_no = (h.group(1) or "") + number
        if h.group(3):
            house_no += "之" + cn_number(h.group(3))
        pos = h.end()
    tail = rest[pos:]
    c = slots._COMPACT3.search(tail)
    if c:
        return Slots(road, house_no, slots._upper(c.group(1)), cn_number(c.group(2)), cn_number(c.group(3)))
    b = slots._BUILDING.search(tail)
    if b:
        building = slots._upper(b.group(1))
        tail_after = tail[b.end() :]
    else:
        c2 = slots._COMPACT2.search(tail)
        if c2:
            return Slots(road, house_no, slots._upper(c2.group(1)), None, cn_number(c2.group(2)))
        tail_after = tail
    u = slots._UNIT.search(tail_after)
    if u:
        unit = cn_number(u.group(1))
        tail_after = tail_after[u.end() :]
    r = slots._ROOM.search(tail_after)
    if r:
        room = cn_number(r.group(1))
    elif building or unit:
        t = slots._TRAILING_ROOM.search(tail_after)
        room = t.group(1).lstrip("0") or None if t else None
    return Slots(road, house_no, building, unit, room)


def plain_normalize_once(text: str) -> str:
    out = nfkc(text)
    if addresses._PUNCT_RE.search(out):
        out = out.translate(addresses._PUNCT_MAP)
    if addresses._NEEDS_SPACING.search(out):
        out = addresses._CONTROL.sub(" ", out)
        out = addresses._SPACE.sub(" ", out)
        out = addresses._SPACE_NEAR_WIDE.sub("", out)
        out = addresses._SPACE_NEAR_PUNCT.sub(r"\1", out)
    if ",," in out:
        out = addresses._REPEAT_COMMA.sub(",", out)
    out = out.strip(addresses._EDGE)
    return out.translate(addresses._UPPER) if addresses._LOWER_RE.search(out) else out


# Every character and suffix the slot patterns look for, digits of both kinds, and a little else.
_PIECES = st.sampled_from(
    [
        "路", "街", "道", "巷", "胡同", "大道", "大街", "弄", "号", "号楼", "楼", "院", "之", "甲", "乙", "栋", "幢",
        "座", "#", "-", "单元", "门", "门牌", "门口", "室", "房", "户", "镇", "乡", "街道", "街道办事处", "0", "1",
        "7", "12", "305", "1203", "04", "一", "二", "两", "十", "百", "〇", "零", "A", "b", "Z", "\n", ",",
        "中山", "幸福", "花园", "村", "组", "层", "x", "同", "新城", "苑", "(", " ", "大", "胡",
    ]
)
_TEXT = st.lists(_PIECES, max_size=14).map("".join) | st.text(max_size=30)


@settings(max_examples=3000, deadline=None)
@given(_TEXT)
def test_parse_slots_same_as_trying_every_pattern(text: str) -> None:
    assert parse_slots(text) == plain_parse_slots(text)


def test_parse_slots_same_on_the_usual_forms() -> None:
    for text in (
        "建国路88号3栋2单元1203室", "世纪大道100号", "清河镇北洼村11组41号", "滨江路五十九号十栋一单元一〇〇四室",
        "幸福路35号名都5-6-2604", "人民路50号A#1604", "中山路12弄3号402", "东大街十三号华府二十一栋二单元三二〇四室",
        "金桥路33号2号楼4单元701", "长乐镇新农村11组37号\n", "3栋1203\n", "", "门牌12号",
        # the one-match form (address_slots._FAST) and its near misses
        "迎宾大道25号27栋2单元2401室", "光明路8号怡景湾28号楼4单元3004室", "胜利路93号", "胜利路093号\n",
        "长江路91号紫荆苑23栋3单元1904室", "大道5号1座", "中山路口大道12号3栋", "道中路12号", "X道路12号",
        "建国路88号院3栋", "建国路88号楼3栋", "建国路88号之一", "人民街道12号3栋", "胡同5号2栋1单元", "同和路7号A座",
        "迎宾大道25号27栋2单元2401室\n", "迎宾大道25号27栋2单元", "迎宾大道25号27栋0室",
        "一二三四五六七八九十一二三四五六七八九十一路1号", "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉戌亥路1号",
    ):
        assert parse_slots(text) == plain_parse_slots(text), text


_NORMALIZE_CHARS = st.sampled_from(
    list("北京市朝阳区路号栋单元室0123456789-#,，、。．（）()【】《》·•“”‘’×abcXYZ")
    + list(" ,.;:\t\n\u3000\u00a0\u200b\u0301ＡＢａ")
)


@settings(max_examples=3000, deadline=None)
@given(st.text(_NORMALIZE_CHARS, max_size=30) | st.text(max_size=30))
def test_normalize_same_as_running_every_step(text: str) -> None:
    assert addresses._normalize_once(text) == plain_normalize_once(text)
