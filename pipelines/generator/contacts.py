"""Addresses, phone numbers and e-mail addresses of simulated persons (true values, then renderings)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pipelines.generator.regions import BUILDING_WORD_PROB, BUILDING_WORDS, ESTATES, ROADS, TOWNS, VILLAGES, Regions
from pipelines.generator.textops import (
    FULLWIDTH_DIGITS,
    S,
    cat,
    cn_digits,
    cn_reading,
    digits,
    pick,
    translate,
    where,
)

# Mobile prefixes valid for phonenumbers, with rough allocation weights.
MOBILE_PREFIXES = (
    [(p, 3.0) for p in range(130, 140)] + [(p, 2.0) for p in (150, 151, 152, 153, 155, 156, 157, 158, 159)]
    + [(p, 2.5) for p in range(180, 190)] + [(p, 0.6) for p in (170, 171, 173, 175, 176, 177, 178)]
    + [(p, 0.8) for p in (190, 191, 193, 195, 196, 197, 198, 199)] + [(p, 0.4) for p in (145, 147, 162, 166)]
)
EMAIL_DOMAINS = ("qq.com", "163.com", "126.com", "sina.com", "gmail.com", "hotmail.com", "139.com",
                 "foxmail.com", "outlook.com", "sohu.com", "aliyun.com")
EMAIL_DOMAIN_PROB = (0.38, 0.2, 0.08, 0.05, 0.05, 0.04, 0.04, 0.05, 0.04, 0.04, 0.03)


@dataclass(frozen=True)
class Address:
    """Components of one address per person (parallel arrays)."""

    region: np.ndarray  # index into Regions
    rural: np.ndarray  # bool
    road: np.ndarray
    house_no: np.ndarray
    estate: np.ndarray  # index into ESTATES, -1 for none
    building: np.ndarray
    unit: np.ndarray
    room: np.ndarray
    bword: np.ndarray  # index into BUILDING_WORDS
    town: np.ndarray
    village: np.ndarray
    group: np.ndarray

    def take(self, idx: np.ndarray) -> Address:
        return Address(**{k: v[idx] for k, v in self.__dict__.items()})

    def where(self, mask: np.ndarray, other: Address) -> Address:
        return Address(**{k: np.where(mask, other.__dict__[k], v) for k, v in self.__dict__.items()})

    def copy_rows(self, dst: np.ndarray, src: np.ndarray) -> Address:
        out = {k: v.copy() for k, v in self.__dict__.items()}
        for v in out.values():
            v[dst] = v[src]
        return Address(**out)


def sample_addresses(rng: np.random.Generator, region: np.ndarray, rural_share: float) -> Address:
    n = len(region)
    return Address(
        region=np.asarray(region, np.int64),
        rural=rng.random(n) < rural_share,
        road=rng.integers(0, len(ROADS), n),
        house_no=np.minimum(rng.geometric(0.02, n), 999),
        estate=np.where(rng.random(n) < 0.6, rng.integers(0, len(ESTATES), n), -1),
        building=rng.integers(1, 31, n),
        unit=rng.integers(1, 7, n),
        room=rng.integers(1, 34, n) * 100 + rng.integers(1, 5, n),
        bword=rng.choice(len(BUILDING_WORDS), size=n, p=BUILDING_WORD_PROB),
        town=rng.integers(0, len(TOWNS), n),
        village=rng.integers(0, len(VILLAGES), n),
        group=rng.integers(1, 13, n),
    )


def moved(rng: np.random.Generator, addr: Address, regions: Regions, rural_share: float) -> Address:
    """An earlier address: half in the same district, half anywhere."""
    n = len(addr.region)
    region = np.where(rng.random(n) < 0.5, addr.region, regions.sample(rng, n))
    return sample_addresses(rng, region, rural_share)


def render_addresses(addr: Address, regions: Regions, short: np.ndarray, dashes: np.ndarray,
                     cn_numerals: np.ndarray, short_kind: np.ndarray) -> np.ndarray:
    """Address strings: 北京市朝阳区建国路88号3栋2单元1203室 and variants selected by the masks.

    ``short_kind`` picks the shortened form where ``short`` is set: 0 no province,
    1 no province and no city, 2 province without its suffix (广西, 内蒙).
    """
    r = addr.region
    province, city, district = regions.province[r], regions.city[r], regions.district[r]
    city = where(regions.municipality[r], "", city)
    province = where(short & (short_kind == 2), regions.province_short[r], province)
    province = where(short & (short_kind <= 1), "", province)
    city = where(short & (short_kind == 1), "", city)
    head = cat(province, city, district)

    def num(values: np.ndarray) -> np.ndarray:
        return where(cn_numerals, cn_reading(values), digits(values))

    estate = where(addr.estate >= 0, np.asarray(ESTATES, dtype=S)[np.maximum(addr.estate, 0)], "")
    street = cat(np.asarray(ROADS, dtype=S)[addr.road], num(addr.house_no), "号", estate)
    room = where(cn_numerals, cn_digits(addr.room), digits(addr.room))
    bword = np.asarray(BUILDING_WORDS, dtype=S)[addr.bword]
    flat_long = cat(num(addr.building), bword, num(addr.unit), "单元", room, "室")
    flat_dash = cat(digits(addr.building), "-", digits(addr.unit), "-", digits(addr.room))
    urban = cat(head, street, where(dashes, flat_dash, flat_long))
    rural = cat(head, np.asarray(TOWNS, dtype=S)[addr.town], "镇", np.asarray(VILLAGES, dtype=S)[addr.village],
                "村", num(addr.group), "组", num(np.minimum(addr.house_no, 99)), "号")
    return where(addr.rural, rural, urban)


def sample_mobiles(rng: np.random.Generator, n: int) -> np.ndarray:
    prefixes = np.asarray([p for p, _ in MOBILE_PREFIXES], dtype=np.int64)
    w = np.asarray([w for _, w in MOBILE_PREFIXES])
    return prefixes[rng.choice(len(prefixes), size=n, p=w / w.sum())] * 10**8 + rng.integers(0, 10**8, n)


@dataclass(frozen=True)
class Landline:
    area: np.ndarray  # "010", "0755"
    number: np.ndarray  # subscriber number, 7 or 8 digits

    def copy_rows(self, dst: np.ndarray, src: np.ndarray) -> Landline:
        area, number = self.area.copy(), self.number.copy()
        area[dst], number[dst] = area[src], number[src]
        return replace(self, area=area, number=number)


def sample_landlines(rng: np.random.Generator, area: np.ndarray) -> Landline:
    n = len(area)
    eight = (np.strings.str_len(area) == 3) | (rng.random(n) < 0.75)
    num8 = rng.integers(2 * 10**7, 9 * 10**7, n)
    num7 = rng.integers(2 * 10**6, 9 * 10**6, n)
    return Landline(np.asarray(area, dtype=S), digits(np.where(eight, num8, num7)))


def format_mobiles(rng: np.random.Generator, mobile: np.ndarray, odd: np.ndarray) -> np.ndarray:
    """Mobiles as 13812345678, or (where ``odd``) one of nine other common writings."""
    s = digits(mobile, 11)
    a, b, c = np.strings.slice(s, 0, 3), np.strings.slice(s, 3, 7), np.strings.slice(s, 7, 11)
    forms = [
        cat(a, "-", b, "-", c), cat(a, " ", b, " ", c), cat("+86 ", s), cat("+86", s), cat("0086", s),
        cat("86-", s), cat("(+86)", s), translate(s, FULLWIDTH_DIGITS), cat("+86-", a, "-", b, "-", c),
    ]
    kind = rng.integers(0, len(forms), len(s))
    out = s.copy()
    for k, f in enumerate(forms):
        m = odd & (kind == k)
        out[m] = f[m]
    return out


def format_landlines(rng: np.random.Generator, line: Landline, odd: np.ndarray) -> np.ndarray:
    """Landlines as 010-12345678, or (where ``odd``) another writing, extensions included."""
    n = len(line.area)
    area, num = line.area, line.number
    half = np.strings.str_len(num) // 2
    first = np.where(half == 4, np.strings.slice(num, 0, 4), np.strings.slice(num, 0, 3))
    rest = np.where(half == 4, np.strings.slice(num, 4, 8), np.strings.slice(num, 3, 7))
    ext = digits(rng.integers(100, 9000, n))
    forms = [
        cat("(", area, ")", num), cat(area, " ", first.astype(S), " ", rest.astype(S)), cat(area, num),
        cat(area, "-", num, "-", ext), cat(area, "-", num, "转", ext),
        cat("+86-", np.strings.slice(area, 1, 4), "-", num),
        translate(cat(area, "-", num), FULLWIDTH_DIGITS),
    ]
    kind = rng.integers(0, len(forms), n)
    out = cat(area, "-", num)
    for k, f in enumerate(forms):
        m = odd & (kind == k)
        out[m] = f[m]
    return out


def sample_emails(rng: np.random.Generator, surname_latin: np.ndarray, given_latin: np.ndarray,
                  birth_year: np.ndarray) -> np.ndarray:
    """E-mail addresses: pinyin + digits, QQ numbers at qq.com, pinyin + birth year."""
    n = len(surname_latin)
    sur = np.strings.lower(np.strings.replace(surname_latin, " ", ""))
    giv = np.strings.lower(np.strings.replace(np.strings.replace(given_latin, " ", ""), "-", ""))
    domain = pick(rng, EMAIL_DOMAINS, n, EMAIL_DOMAIN_PROB)
    style = rng.integers(0, 4, n)
    local = where(style == 0, cat(giv, sur, digits(rng.integers(1, 1000, n))), cat(sur, giv, digits(birth_year)))
    local = where(style == 2, cat(sur, ".", giv), local)
    qq = digits(rng.integers(10**5, 4 * 10**9, n))
    local = where(style == 3, qq, local)
    domain = where(style == 3, "qq.com", domain)
    return cat(local, "@", domain)
