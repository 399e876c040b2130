"""The simulated population: one row per real person, with true identity and contact values.

Hard cases are built here at person level: twins, families sharing phone and address,
namesakes born on the same day, foreigners and HK/Macau/Taiwan residents.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.generator import ids, names
from pipelines.generator.config import DirtRates, SourceMix
from pipelines.generator.contacts import (
    Address,
    Landline,
    moved,
    sample_addresses,
    sample_emails,
    sample_landlines,
    sample_mobiles,
)
from pipelines.generator.regions import regions
from pipelines.generator.textops import S, cat, where

MAINLAND, FOREIGNER, HONG_KONG, MACAU, TAIWAN = 0, 1, 2, 3, 4
# Birth-year weights 1930..2005 (more working-age customers).
_YEARS = np.arange(1930, 2006)
_YEAR_W = np.select([_YEARS < 1950, _YEARS < 1960, _YEARS < 1996], [0.3, 0.8, 1.6], 0.9)


@dataclass
class Persons:
    """Parallel arrays, one element per person."""

    person_id: np.ndarray
    kind: np.ndarray  # MAINLAND / FOREIGNER / HONG_KONG / MACAU / TAIWAN
    minority: np.ndarray
    female: np.ndarray
    surname: np.ndarray  # Han surname, or Latin surname for foreigners
    given: np.ndarray
    surname_latin: np.ndarray  # uppercase romanization
    given_latin: np.ndarray
    dob: np.ndarray  # datetime64[D]
    id_region: np.ndarray  # adcode (810000/820000/830000 for residence permits)
    seq: np.ndarray
    resident_id: np.ndarray  # resident ID or residence permit; "" for foreigners
    document: np.ndarray  # PRC passport, HK/Macau/Taiwan permit or foreign passport
    military: np.ndarray
    address: Address
    old_address: Address
    mobile: np.ndarray  # int64
    old_mobile: np.ndarray
    landline: Landline
    has_landline: np.ndarray
    email: np.ndarray  # "" when none
    case: np.ndarray  # hard-case tag or ""

    def __len__(self) -> int:
        return len(self.person_id)

    @property
    def dob_ymd(self) -> np.ndarray:
        return np.strings.replace(self.dob.astype(S), "-", "").astype(np.int64)

    @property
    def full_name(self) -> np.ndarray:
        """Han names surname first; foreigners' Latin names given name first."""
        return where(self.kind == FOREIGNER, cat(self.given, " ", self.surname), cat(self.surname, self.given))


def _birth_dates(rng: np.random.Generator, n: int) -> np.ndarray:
    year = _YEARS[rng.choice(len(_YEARS), size=n, p=_YEAR_W / _YEAR_W.sum())]
    start = (year - 1970).astype("datetime64[Y]").astype("datetime64[D]")
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    return start + (rng.random(n) * np.where(leap, 366, 365)).astype(np.int64)


def _assign_kinds(rng: np.random.Generator, n: int, rates: DirtRates) -> tuple[np.ndarray, np.ndarray]:
    u = rng.random(n)
    edges = np.cumsum([rates.foreigner, rates.hk_macau * 0.8, rates.hk_macau * 0.2, rates.taiwan, rates.minority])
    bucket = np.searchsorted(edges, u, side="right")
    kind = np.choose(np.minimum(bucket, 5), [FOREIGNER, HONG_KONG, MACAU, TAIWAN, MAINLAND, MAINLAND])
    return kind.astype(np.int8), bucket == 4


def _names(rng: np.random.Generator, kind: np.ndarray, minority: np.ndarray) -> dict[str, np.ndarray]:
    n = len(kind)
    female = rng.random(n) < 0.5
    sv = names.surnames()
    s_idx = sv.sample(rng, n)
    surname, surname_latin = sv.text[s_idx].copy(), sv.latin[s_idx].copy()
    given, given_latin, popular = names.sample_given(rng, female)
    m = np.flatnonzero(minority)
    if len(m):
        text, latin, fem = names.sample_minority(rng, len(m))
        surname[m], given[m], surname_latin[m], given_latin[m], female[m] = "", text, "", latin, fem
        popular[m] = False
    for code, s_map, g_map, fem_set in ((HONG_KONG, names.HK_SURNAMES, names.HK_GIVEN, names.HK_FEMALE),
                                        (MACAU, names.HK_SURNAMES, names.HK_GIVEN, names.HK_FEMALE),
                                        (TAIWAN, names.TW_SURNAMES, names.TW_GIVEN, names.TW_FEMALE)):
        k = np.flatnonzero(kind == code)
        if len(k):
            s_v, g_v = names.romanized_table(s_map, g_map)
            i, j = s_v.sample(rng, len(k)), g_v.sample(rng, len(k))
            surname[k], surname_latin[k] = s_v.text[i], s_v.latin[i]
            given[k], given_latin[k] = g_v.text[j], g_v.latin[j]
            female[k] = np.isin(g_v.text[j], np.asarray(sorted(fem_set), dtype=S))
            popular[k] = False
    f = np.flatnonzero(kind == FOREIGNER)
    nat = np.full(n, "", dtype=S)
    shape = np.full(n, "", dtype=S)
    if len(f):
        which = rng.integers(0, len(names.FOREIGN), len(f))
        for t, (iso, surs, males, females, pshape) in enumerate(names.FOREIGN):
            rows = f[which == t]
            if not len(rows):
                continue
            sur = np.asarray(surs.split(), dtype=S)
            gm, gf = np.asarray(males.split(), dtype=S), np.asarray(females.split(), dtype=S)
            surname[rows] = sur[rng.integers(0, len(sur), len(rows))]
            g = np.where(female[rows], gf[rng.integers(0, len(gf), len(rows))], gm[rng.integers(0, len(gm), len(rows))])
            given[rows] = g
            surname_latin[rows], given_latin[rows] = surname[rows], g
            nat[rows], shape[rows] = iso, pshape
        popular[f] = False
    return {"female": female, "surname": surname, "given": given, "surname_latin": surname_latin,
            "given_latin": given_latin, "popular": popular, "passport_shape": shape}


def _households(rng: np.random.Generator, family: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split ``family`` into households of 2-3; return (head of each member, member) index pairs."""
    f = len(family)
    if f < 2:
        return family[:0], family[:0]
    sizes = np.where(rng.random(f) < 0.6, 2, 3)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    household = np.searchsorted(ends, np.arange(f), side="right")
    owner = starts[household]
    if owner[-1] == f - 1:  # a lone last person joins the previous household
        owner[-1] = owner[-2]
    is_member = np.arange(f) != owner
    return family[owner[is_member]], family[is_member]


def build_persons(rng: np.random.Generator, n: int, rates: DirtRates, mix: SourceMix) -> Persons:
    """Simulate ``n`` persons with their hard cases (see :class:`DirtRates`)."""
    reg = regions()
    kind, minority = _assign_kinds(rng, n, rates)
    nm = _names(rng, kind, minority)
    female = nm["female"]
    dob = _birth_dates(rng, n)
    id_region_idx = reg.sample(rng, n)
    xj = np.flatnonzero(minority)
    id_region_idx[xj] = reg.sample_xinjiang(rng, len(xj))
    live_idx = np.where(rng.random(n) < mix.migrant_share, reg.sample(rng, n), id_region_idx)
    seq = rng.integers(0, 498, n) * 2 + (~female).astype(np.int64)
    address = sample_addresses(rng, live_idx, mix.rural_share)
    old_address = moved(rng, address, reg, mix.rural_share)
    mobile, old_mobile = sample_mobiles(rng, n), sample_mobiles(rng, n)
    landline = sample_landlines(rng, reg.area_code[live_idx])
    has_landline = rng.random(n) < mix.landline_share
    id_region = reg.adcode[id_region_idx].copy()
    surname, given = nm["surname"], nm["given"]
    surname_latin, given_latin = nm["surname_latin"], nm["given_latin"]
    case: np.ndarray = np.full(n, "", dtype=S)

    # Hard cases among mainland Han persons: disjoint groups drawn from one permutation.
    pool = rng.permutation(np.flatnonzero((kind == MAINLAND) & ~minority))
    n_twin = round(n * rates.twin / 2)
    n_name = round(n * rates.namesake_same_dob / 2)
    n_family = round(n * rates.family_shared_contact)
    twins_a, twins_b = pool[:n_twin], pool[n_twin:2 * n_twin]
    rest = pool[2 * n_twin:]
    popular_rest = rest[nm["popular"][rest]]
    names_a, names_b = popular_rest[:n_name], popular_rest[n_name:2 * n_name]
    rest = rest[~np.isin(rest, np.concatenate([names_a, names_b]))]
    family = rest[:n_family]

    # Twins: same surname, DOB, address, phone; own given name; sequence differs.
    for arr in (surname, surname_latin, dob, id_region, mobile, old_mobile, has_landline):
        arr[twins_b] = arr[twins_a]
    address = address.copy_rows(twins_b, twins_a)
    old_address = old_address.copy_rows(twins_b, twins_a)
    landline = landline.copy_rows(twins_b, twins_a)
    seq[twins_b] = (seq[twins_a] + np.where(female[twins_a] == female[twins_b], 2, 1)) % 996
    for _ in range(20):
        same = given[twins_b] == given[twins_a]
        if not same.any():
            break
        g, gl, _ = names.sample_given(rng, female[twins_b[same]])
        given[twins_b[same]], given_latin[twins_b[same]] = g, gl
    case[twins_a] = case[twins_b] = "twin"

    # Namesakes: strangers with the same (common) name, gender and birth date.
    for arr in (surname, given, surname_latin, given_latin, female, dob):
        arr[names_b] = arr[names_a]
    seq[names_b] = seq[names_b] - (seq[names_b] % 2) + (~female[names_b]).astype(np.int64)
    case[names_a] = case[names_b] = "namesake_same_dob"

    # Families: households of 2-3 share address, landline and one mobile; children keep the surname.
    heads, members = _households(rng, family)
    for arr in (mobile, old_mobile, has_landline):
        arr[members] = arr[heads]
    address = address.copy_rows(members, heads)
    old_address = old_address.copy_rows(members, heads)
    landline = landline.copy_rows(members, heads)
    child = rng.random(len(members)) < 0.5
    surname[members[child]] = surname[heads[child]]
    surname_latin[members[child]] = surname_latin[heads[child]]
    case[family] = "family_shared_contact"

    case = where((case == "") & (kind == FOREIGNER), "foreigner", case)
    case = where((case == "") & (kind >= HONG_KONG), "hmt_permit", case)
    case = where((case == "") & minority, "ethnic_name", case)

    # Resident IDs / residence permits, unique per person.
    hmt_region = np.select([kind == HONG_KONG, kind == MACAU, kind == TAIWAN], [810000, 820000, 830000], 0)
    id_region = np.where(kind >= HONG_KONG, hmt_region, id_region)
    ymd = np.strings.replace(dob.astype(S), "-", "").astype(np.int64)
    seq = ids.unique_sequences(id_region, ymd, seq)
    resident_id = where(kind == FOREIGNER, "", ids.resident_ids(id_region, ymd, seq))

    document = ids.prc_passports(rng, n)
    hk = np.flatnonzero((kind == HONG_KONG) | (kind == MACAU))
    document[hk] = ids.hk_macau_permits(rng, kind[hk] == MACAU)
    tw = np.flatnonzero(kind == TAIWAN)
    document[tw] = ids.taiwan_permits(rng, len(tw))
    fo = np.flatnonzero(kind == FOREIGNER)
    document[fo] = ids.foreign_passports(rng, nm["passport_shape"][fo])

    year = dob.astype("datetime64[Y]").astype(np.int64) + 1970
    email_latin = where(minority, np.strings.replace(given_latin, " ", ""), given_latin)
    email = where(rng.random(n) < mix.email_share, sample_emails(rng, surname_latin, email_latin, year), "")
    return Persons(
        person_id=np.arange(1, n + 1, dtype=np.int64), kind=kind, minority=minority, female=female,
        surname=surname, given=given, surname_latin=surname_latin, given_latin=given_latin, dob=dob,
        id_region=id_region, seq=seq, resident_id=resident_id, document=document,
        military=ids.military_ids(rng, n), address=address, old_address=old_address, mobile=mobile,
        old_mobile=old_mobile, landline=landline, has_landline=has_landline, email=email, case=case,
    )
