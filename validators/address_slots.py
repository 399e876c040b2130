"""Address remainder slots: road, house number, building, unit and room.

Runs on what is left after the administrative prefix. Chinese numerals are converted
to digits only inside the captured slot numbers (十二号 -> 12, 一二〇三室 -> 1203);
place and road names (九龙坡区, 三里屯路, 五四路) are never touched.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

CN_DIGITS = "〇零一二两三四五六七八九"
CN_UNITS = "十百千"
_CN_VALUE = {"〇": 0, "零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNIT = {"十": 10, "百": 100, "千": 1000}

_NUM = rf"[0-9{CN_DIGITS}{CN_UNITS}]+"
_NOT_SLOT = r"\d#\-号栋幢座室,"
_SUBDISTRICT = re.compile(r"^[^\d,]{1,10}?(?:街道办事处|街道|镇|乡)(?=[^\d]|$)")
_ROAD = re.compile(rf"([^{_NOT_SLOT}]{{1,20}}?(?:大道|大街|胡同|路|街|巷|道))(?:({_NUM})弄)?")
_HOUSE = re.compile(rf"([甲乙丙丁])?({_NUM}(?:-\d+)?)号(?![楼])院?(?:之({_NUM}))?")
_COMPACT3 = re.compile(r"(?<![0-9A-Za-z])([0-9]+|[A-Za-z])[#\-]([0-9]+)-([0-9]+)(?![0-9])")
_COMPACT2 = re.compile(r"(?<![0-9A-Za-z\-])([0-9]+|[A-Za-z])[#\-]([0-9]{3,5})(?:室|房)?$")
_BUILDING = re.compile(rf"({_NUM}|[A-Za-z])(?:号楼|栋|幢|座|#)")
_UNIT = re.compile(rf"({_NUM})(?:单元|门(?![牌面口店市诊]))")
_ROOM = re.compile(rf"({_NUM})(?:室|房|户)")
_TRAILING_ROOM = re.compile(r"(?<![0-9])([0-9]{3,5})$")

# The most common remainder in one match: road, house number, an estate name, then building, unit
# and room in digits (建国路88号阳光花园3栋2单元1203室). Every class is narrower than the patterns
# above, so whatever this matches they would read the same way (tests/test_address_fast_paths.py
# holds parse_slots to the step-by-step version): the road holds no road suffix before its own (so
# it is the shortest one, as _ROAD's lazy match), the estate no digit, numeral, letter or
# character a later pattern looks for. Texts with a subdistrict (镇 / 乡 / 街道) are not tried.
_ESTATE_NOT = r"\d#\-,号栋幢座室房户单元门院之楼弄A-Za-z" + CN_DIGITS + CN_UNITS
_FAST = re.compile(
    rf"([^{_NOT_SLOT}路街巷道胡]{{1,20}}?(?:大道|大街|胡同|路|街|巷|道))([0-9]+)号[^{_ESTATE_NOT}]*"
    r"(?:([0-9]+)(?:号楼|栋|幢|座)(?:([0-9]+)单元)?(?:([0-9]+)[室房户])?)?"
)


class Slots(NamedTuple):
    road: str | None
    house_no: str | None
    building: str | None
    unit: str | None
    room: str | None


EMPTY_SLOTS = Slots(None, None, None, None, None)


@lru_cache(maxsize=65536)  # slot numbers repeat a lot (12, 3, 1203): about 3.7 calls per address
def cn_number(text: str) -> str:
    """A slot number with Chinese numerals converted: 十二 -> 12, 一二〇三 -> 1203, 0502 -> 502.

    Digit-by-digit forms (一二〇三) map each character; positional forms (一百零三)
    are evaluated. Leading zeros are dropped so that 0502 and 502 compare equal.
    """
    if text.isascii():
        return text.lstrip("0") or ("0" if text else text)
    if not any(c in _CN_UNIT for c in text):
        digits = "".join(str(_CN_VALUE[c]) if c in _CN_VALUE else c for c in text)
        return digits.lstrip("0") or "0"
    total, current = 0, 0
    for c in text:
        if c in _CN_UNIT:
            total += (current or 1) * _CN_UNIT[c]
            current = 0
        elif c in _CN_VALUE:
            current = _CN_VALUE[c]
        elif c.isdigit():
            current = current * 10 + int(c)
    return str(total + current)


def _digits(text: str) -> str:
    """:func:`cn_number` of ASCII digits."""
    return text.lstrip("0") or "0"


def _num(text: str | None) -> str | None:
    return cn_number(text) if text else None


def _upper(text: str) -> str:
    return text.upper() if text.isascii() and text.isalpha() else cn_number(text)


def parse_slots(remainder: str) -> Slots:
    """Road, house number, building, unit and room from an address remainder (no spaces).

    Each pattern is tried only where the text holds a character it needs (most addresses have no
    街道 / 镇 / 乡 prefix and no 12-3-402 form): the same answers without half of the searches.
    """
    if not remainder:
        return EMPTY_SLOTS
    if "镇" not in remainder and "乡" not in remainder and "街道" not in remainder:
        f = _FAST.fullmatch(remainder)
        if f:
            road, house, *numbers = f.groups()
            return Slots(road, _digits(house), *(n and _digits(n) for n in numbers))
    rest = remainder
    if "镇" in rest or "乡" in rest or "街道" in rest:
        rest = _SUBDISTRICT.sub("", rest, count=1)
    road = house_no = building = unit = room = None
    pos = 0
    m = _ROAD.search(rest) if _has_road_suffix(rest) else None
    if m:
        road = m.group(1) + (cn_number(m.group(2)) + "弄" if m.group(2) else "")
        pos = m.end()
    h = _HOUSE.search(rest, pos) if "号" in rest else None
    if h:
        number = h.group(2)
        number = "-".join(cn_number(p) for p in number.split("-")) if "-" in number else cn_number(number)
        house_no = (h.group(1) or "") + number
        if h.group(3):
            house_no += "之" + cn_number(h.group(3))
        pos = h.end()
    tail = rest[pos:]
    compact = "#" in tail or "-" in tail
    c = _COMPACT3.search(tail) if compact else None
    if c:
        return Slots(road, house_no, _upper(c.group(1)), cn_number(c.group(2)), cn_number(c.group(3)))
    b = _BUILDING.search(tail) if compact or _has_building_suffix(tail) else None
    if b:
        building = _upper(b.group(1))
        tail_after = tail[b.end() :]
    else:
        c2 = _COMPACT2.search(tail) if compact else None
        if c2:
            return Slots(road, house_no, _upper(c2.group(1)), None, cn_number(c2.group(2)))
        tail_after = tail
    u = _UNIT.search(tail_after) if "单元" in tail_after or "门" in tail_after else None
    if u:
        unit = cn_number(u.group(1))
        tail_after = tail_after[u.end() :]
    r = _ROOM.search(tail_after) if "室" in tail_after or "房" in tail_after or "户" in tail_after else None
    if r:
        room = cn_number(r.group(1))
    elif (building or unit) and tail_after[-1:] in _ENDS_DIGITS:  # ``$`` also matches before a final newline
        t = _TRAILING_ROOM.search(tail_after)
        room = t.group(1).lstrip("0") or None if t else None
    return Slots(road, house_no, building, unit, room)


_ENDS_DIGITS = frozenset("0123456789\n")


def _has_road_suffix(text: str) -> bool:
    return "路" in text or "街" in text or "道" in text or "巷" in text or "胡同" in text


def _has_building_suffix(text: str) -> bool:
    return "栋" in text or "号楼" in text or "幢" in text or "座" in text
