"""Administrative regions (real names, adcodes and telephone area codes) and address vocabularies.

``regions.tsv`` holds 601 districts and counties of 66 cities across all 31 provinces,
taken from the 2024 civil-affairs table (codes that already existed in 1995 where a city has
enough of them, so that they are valid as the region prefix of an older ID). ``weight`` is
the city's population weight spread over its districts.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

import numpy as np

S = np.dtypes.StringDType()


def _words(text: str) -> list[str]:
    return text.split()


ROADS = _words(
    "中山路 人民路 解放路 建设路 和平路 新华路 建国路 长江路 黄河路 朝阳路 文化路 胜利路 光明路 团结路 东风路 "
    "青年路 北京路 南京路 江南大道 滨江路 科技路 学府路 幸福路 迎宾大道 延安路 淮海路 工业大道 体育路 花园路 "
    "府前街 西大街 东大街 南门外街 金桥路 世纪大道 锦绣路 湖滨路 环城北路 望江路 振兴路"
)
ESTATES = _words(
    "阳光花园 锦绣家园 翠湖小区 金色家园 万科城 碧桂园 幸福里 绿地新城 世纪花园 丽景苑 华府 名都 "
    "东方明珠苑 桃源小区 滨江花园 和谐家园 紫荆苑 怡景湾 书香门第 星河湾"
)
TOWNS = _words("城关 新安 永丰 太平 龙泉 石桥 清河 双河 长乐 白马 高桥 柳林")
VILLAGES = _words("王庄 李家 张家湾 刘河 陈村 杨柳 大树 前进 红星 新农 东岗 西沟 南塘 北洼")
BUILDING_WORDS = ("栋", "幢", "号楼", "座")
BUILDING_WORD_PROB = (0.6, 0.15, 0.2, 0.05)
# Provinces written with their suffix dropped in addresses.
SHORT_PROVINCE = {"广西壮族自治区": "广西", "内蒙古自治区": "内蒙", "新疆维吾尔自治区": "新疆",
                  "宁夏回族自治区": "宁夏", "西藏自治区": "西藏"}


@dataclass(frozen=True)
class Regions:
    """District table as parallel arrays."""

    province: np.ndarray
    province_short: np.ndarray
    city: np.ndarray
    district: np.ndarray
    adcode: np.ndarray  # int64
    area_code: np.ndarray
    prob: np.ndarray
    municipality: np.ndarray  # bool: city == province
    xinjiang: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.district)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(len(self), size=n, p=self.prob)

    def sample_xinjiang(self, rng: np.random.Generator, n: int) -> np.ndarray:
        idx = np.flatnonzero(self.xinjiang)
        p = self.prob[idx] / self.prob[idx].sum()
        return idx[rng.choice(len(idx), size=n, p=p)]


@lru_cache(maxsize=1)
def regions() -> Regions:
    text = files("pipelines.generator").joinpath("regions.tsv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines(), delimiter="\t"))
    province = np.asarray([r["province"] for r in rows], dtype=S)
    short = [SHORT_PROVINCE.get(r["province"], r["province_short"]) for r in rows]
    weight = np.asarray([float(r["weight"]) for r in rows])
    city = np.asarray([r["city"] for r in rows], dtype=S)
    return Regions(
        province=province,
        province_short=np.asarray(short, dtype=S),
        city=city,
        district=np.asarray([r["district"] for r in rows], dtype=S),
        adcode=np.asarray([int(r["adcode"]) for r in rows], dtype=np.int64),
        area_code=np.asarray([r["area_code"] for r in rows], dtype=S),
        prob=weight / weight.sum(),
        municipality=province == city,
        xinjiang=np.asarray([r["adcode"].startswith("65") for r in rows]),
    )
