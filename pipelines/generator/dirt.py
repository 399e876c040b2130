"""Fill each record's fields from its person, applying every dirty-data pattern by a boolean mask.

Each pattern is drawn once over all records with :meth:`PatternLog.draw`, restricted to the
records it can apply to, so ``hits / eligible`` estimates its configured rate.
"""

from __future__ import annotations

import numpy as np

from pipelines.generator import id_damage, ids, names
from pipelines.generator.config import DirtRates
from pipelines.generator.contacts import Landline, format_landlines, format_mobiles, render_addresses
from pipelines.generator.persons import FOREIGNER, HONG_KONG, MACAU, MAINLAND, TAIWAN, Persons
from pipelines.generator.records import (
    CARD,
    DEPOSIT,
    FOREIGN,
    HK_MACAU,
    LOAN,
    MILITARY,
    PASSPORT_CN,
    RES_PERMIT,
    RESIDENT,
    TAIWAN_PERMIT,
    Records,
)
from pipelines.generator.regions import regions
from pipelines.generator.textops import FULLWIDTH_LATIN, S, cat, contains_any, pick, translate, where

# Last business day covered by the extracts (fixed, so output never depends on today's date).
AS_OF = np.datetime64("2026-10-31T18:00:00", "s")
_DOT_VARIANTS = ("•", "・", "･", ".", "．", "", " ")


def apply_dirt(rng: np.random.Generator, recs: Records, p: Persons, rates: DirtRates) -> None:
    """Populate every field of ``recs`` (in place) and record the patterns applied."""
    log, pi = recs.log, recs.person
    kind, dob = p.kind[pi], p.dob[pi]
    mainland = kind == MAINLAND
    minority = p.minority[pi]
    han = ~minority & (kind != FOREIGNER)

    born_before_1990 = dob < np.datetime64("1990-01-01")
    recs.legacy = log.draw(rng, "legacy_name_id_only",
                           (recs.source == DEPOSIT) & mainland & born_before_1990, rates.legacy_name_id_only)
    modern = ~recs.legacy
    _documents(rng, recs, p, rates, kind, mainland, modern)
    _names(rng, recs, p, rates, han, minority)
    _birth_and_gender(rng, recs, p, rates, modern)
    _contacts(rng, recs, p, rates, modern)


def _documents(rng: np.random.Generator, recs: Records, p: Persons, rates: DirtRates,
               kind: np.ndarray, mainland: np.ndarray, modern: np.ndarray) -> None:
    log, pi = recs.log, recs.person
    doc = np.full(len(recs), RESIDENT, dtype=np.int8)
    passport = log.draw(rng, "passport", mainland & modern, rates.passport)
    military = log.draw(rng, "military_id", mainland & modern & ~passport, rates.military_id)
    hk = (kind == HONG_KONG) | (kind == MACAU)
    tw = kind == TAIWAN
    permit_res = log.draw(rng, "residence_permit", hk | tw, rates.residence_permit)
    doc[passport] = PASSPORT_CN
    doc[military] = MILITARY
    doc[hk & ~permit_res] = HK_MACAU
    doc[tw & ~permit_res] = TAIWAN_PERMIT
    doc[permit_res] = RES_PERMIT
    doc[kind == FOREIGNER] = FOREIGN
    log.mark("hmt_permit", hk & ~permit_res, hk & ~permit_res, 1.0)
    log.mark("tw_permit", tw & ~permit_res, tw & ~permit_res, 1.0)
    log.mark("foreign_passport", kind == FOREIGNER, kind == FOREIGNER, 1.0)
    recs.doc = doc
    recs.type_mismatch = log.draw(rng, "type_mismatch",
                                  np.isin(doc, [PASSPORT_CN, HK_MACAU, TAIWAN_PERMIT, FOREIGN, MILITARY]),
                                  rates.type_mismatch)

    number = np.asarray(p.resident_id[pi], dtype=S).copy()
    other = np.isin(doc, [PASSPORT_CN, HK_MACAU, TAIWAN_PERMIT, FOREIGN])
    number[other] = p.document[pi[other]]
    number[military] = p.military[pi[military]]

    # Damage to resident IDs: at most one pattern per record, drawn in a fixed order.
    resident = doc == RESIDENT
    free = resident.copy()
    l15 = log.draw(rng, "legacy15", recs.legacy & resident, rates.legacy15)
    number[l15] = ids.legacy15(p.id_region[pi[l15]], p.dob_ymd[pi[l15]], p.seq[pi[l15]])
    free &= ~l15
    blank = log.draw(rng, "blank_id", free, rates.blank_id)
    number[blank] = ""
    free &= ~blank
    placeholder = log.draw(rng, "placeholder_id", free, rates.placeholder_id)
    number[placeholder] = pick(rng, ids.PLACEHOLDER_IDS, int(placeholder.sum()), ids.PLACEHOLDER_PROB)
    free &= ~placeholder
    for name, rate, fn in (("typo_checksum", rates.typo_checksum, id_damage.typo),
                           ("transposed", rates.transposed, id_damage.transpose),
                           ("truncated", rates.truncated, id_damage.truncate),
                           ("id_spaces", rates.id_spaces, id_damage.spaced)):
        hit = log.draw(rng, name, free, rate)
        if hit.any():
            number[hit] = fn(rng, number[hit])
        free &= ~hit
    has_x = free & (np.strings.endswith(number, "X"))
    for name, rate, style in (("x_lowercase", rates.x_lowercase, "lower"),
                              ("x_fullwidth", rates.x_fullwidth, "fullwidth"),
                              ("x_times", rates.x_times, "times")):
        hit = log.draw(rng, name, has_x, rate)
        if hit.any():
            number[hit] = id_damage.odd_x(rng, number[hit], style)
        has_x &= ~hit
    recs.id_number = number


def _names(rng: np.random.Generator, recs: Records, p: Persons, rates: DirtRates,
           han: np.ndarray, minority: np.ndarray) -> None:
    log, pi, n = recs.log, recs.person, len(recs)
    surname = np.asarray(p.surname[pi], dtype=S).copy()
    given = np.asarray(p.given[pi], dtype=S).copy()
    foreign = p.kind[pi] == FOREIGNER

    trad_chars = "".join(names.TRADITIONAL)
    trad = log.draw(rng, "traditional", han & contains_any(cat(surname, given), trad_chars), rates.traditional)
    table = {ord(k): v for k, v in names.TRADITIONAL.items()}
    surname[trad] = translate(surname[trad], table)
    given[trad] = translate(given[trad], table)

    keys = "".join(names.HOMOPHONES)
    first, rest = np.strings.slice(given, 0, 1), np.strings.slice(given, 1, None)
    first_ok = contains_any(first, keys)
    homo = log.draw(rng, "homophone", han & (first_ok | contains_any(rest, keys)), rates.homophone)
    variant = rng.integers(0, 2, n)
    for v in (0, 1):
        table_v = {ord(k): alts[v] for k, alts in names.HOMOPHONES.items()}
        m0 = homo & first_ok & (variant == v)
        m1 = homo & ~first_ok & (variant == v)
        given[m0] = cat(translate(first[m0], table_v), rest[m0])
        given[m1] = cat(first[m1], translate(rest[m1], table_v))

    spaces = log.draw(rng, "name_spaces", han, rates.name_spaces)
    wide = log.draw(rng, "name_fullwidth", (han | foreign) & ~spaces, rates.name_fullwidth)
    sep = where(spaces, pick(rng, (" ", "  "), n, (0.8, 0.2)), "")
    sep = where(wide & han, "\u3000", sep)
    name = where(foreign, cat(given, " ", surname), cat(surname, sep, given))
    name[wide & foreign] = translate(name[wide & foreign], FULLWIDTH_LATIN)

    dots = log.draw(rng, "middle_dot_variant", minority, rates.middle_dot_variant)
    name[dots] = np.strings.replace(name[dots], "·", pick(rng, _DOT_VARIANTS, int(dots.sum())))

    is_card = recs.source == CARD
    blank = log.draw(rng, "name_cn_blank", is_card, rates.name_cn_blank)
    name[blank] = ""
    recs.name = name

    sl, gl = np.asarray(p.surname_latin[pi], dtype=S), np.asarray(p.given_latin[pi], dtype=S)
    reversed_ = log.draw(rng, "pinyin_reversed", is_card & han, rates.pinyin_reversed)
    latin = where(foreign | minority, gl, cat(sl, " ", gl))
    latin = where(foreign, cat(gl, " ", sl), latin)
    latin = where(reversed_, cat(gl, " ", sl), latin)
    recs.name_latin = where(is_card, latin, "")


def _birth_and_gender(rng: np.random.Generator, recs: Records, p: Persons, rates: DirtRates,
                      modern: np.ndarray) -> None:
    log, pi, n = recs.log, recs.person, len(recs)
    dob = p.dob[pi].copy()
    assert recs.doc is not None
    with_id_dob = np.isin(recs.doc, [RESIDENT, RES_PERMIT])
    typo = log.draw(rng, "dob_typo", modern & with_id_dob, rates.dob_typo)
    year_start = dob.astype("datetime64[Y]")
    month_start = dob.astype("datetime64[M]")
    month = (month_start - year_start.astype("datetime64[M]")).astype(np.int64) + 1
    day = (dob - month_start.astype("datetime64[D]")).astype(np.int64) + 1
    swapped = (year_start.astype("datetime64[M]") + (day - 1)).astype("datetime64[D]") + (month - 1)
    can_swap = (day <= 12) & (day != month)
    shift = np.choose(rng.integers(0, 4, n), [rng.integers(1, 4, n), -rng.integers(1, 4, n),
                                             np.full(n, 365), np.full(n, 30)])
    wrong = np.where(can_swap & (rng.random(n) < 0.3), swapped, dob + shift)
    dob[typo] = wrong[typo]
    dob[~modern] = np.datetime64("NaT")
    recs.dob = dob

    gender = where(p.female[pi], "F", "M")
    missing = log.draw(rng, "gender_missing", modern, rates.gender_missing)
    gender[missing | ~modern] = ""
    recs.gender = gender


def _contacts(rng: np.random.Generator, recs: Records, p: Persons, rates: DirtRates, modern: np.ndarray) -> None:
    log, pi, n = recs.log, recs.person, len(recs)
    stale_phone = log.draw(rng, "stale_phone", modern, rates.stale_phone)
    mobile_no = np.where(stale_phone, p.old_mobile[pi], p.mobile[pi])
    odd = log.draw(rng, "phone_format", modern, rates.phone_format)
    mobile = format_mobiles(rng, mobile_no, odd)
    line = Landline(area=p.landline.area[pi], number=p.landline.number[pi])
    phone = where(p.has_landline[pi] & (recs.source != LOAN), format_landlines(rng, line, odd), "")
    recs.mobile = where(modern, mobile, "")
    recs.phone = where(modern, phone, "")

    stale_addr = log.draw(rng, "stale_address", modern, rates.stale_address)
    addr = p.address.take(pi).where(stale_addr, p.old_address.take(pi))
    short = log.draw(rng, "address_short", modern, rates.address_short)
    dashes = log.draw(rng, "address_dashes", modern & ~addr.rural, rates.address_dashes)
    cn = log.draw(rng, "address_cn_numerals", modern & ~dashes, rates.address_cn_numerals)
    short_kind = rng.choice(3, size=n, p=[0.5, 0.25, 0.25])
    recs.address = where(modern, render_addresses(addr, regions(), short, dashes, cn, short_kind), "")
    recs.email = where(modern & (recs.source != DEPOSIT), p.email[pi], "")

    day = np.timedelta64(86400, "s")
    recent_start = np.datetime64("2017-01-01T00:00:00", "s")
    old_start = np.datetime64("2008-01-01T00:00:00", "s")
    span_recent = (AS_OF - recent_start) // day
    span_old = (recent_start - old_start) // day
    seconds = rng.integers(8 * 3600, 20 * 3600, n) * np.timedelta64(1, "s")
    recent = recent_start + rng.integers(0, span_recent, n) * day + seconds
    older = old_start + rng.integers(0, span_old, n) * day + seconds
    updated = np.where(stale_phone | stale_addr, older, recent)
    recs.updated_at = np.where(modern, updated, np.datetime64("NaT", "s"))
