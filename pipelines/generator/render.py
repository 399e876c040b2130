"""Render records in each source system's own layout (codes, date formats, column names)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.generator.persons import Persons
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
    SOURCES,
    TAIWAN_PERMIT,
    Records,
)
from pipelines.generator.textops import S, cat, digits, translate, where

DEPOSIT_COLUMNS = ("KHH", "KHMC", "ZJLX", "ZJHM", "XB", "CSRQ", "SJHM", "LXDH", "TXDZ", "GXRQ")
CARD_COLUMNS = ("cust_id", "name_cn", "embossed_name", "id_type", "id_no", "gender", "birth_date", "mobile",
                "home_phone", "bill_address", "email", "last_update")
LOAN_SCHEMA = pa.schema([
    ("borrower_id", pa.int64()), ("customer_name", pa.string()), ("cert_type", pa.string()),
    ("cert_no", pa.string()), ("gender", pa.string()), ("birth_date", pa.date32()),
    ("mobile_phone", pa.string()), ("contact_address", pa.string()), ("email", pa.string()),
    ("updated_at", pa.timestamp("us")),
])
TRUTH_SCHEMA = pa.schema([
    ("source_system", pa.string()), ("source_record_id", pa.string()), ("person_id", pa.int64()),
    ("patterns", pa.list_(pa.string())), ("case", pa.string()),
])

# Document kind -> each system's type code (data/config/sources.yaml code tables).
_DOC_KINDS = (RESIDENT, PASSPORT_CN, HK_MACAU, TAIWAN_PERMIT, RES_PERMIT, FOREIGN, MILITARY)
_TYPE_CODES = {
    DEPOSIT: dict(zip(_DOC_KINDS, ("01", "03", "04", "05", "07", "08", "02"), strict=True)),
    CARD: dict(zip(_DOC_KINDS, ("I", "P", "H", "T", "R", "X", "O"), strict=True)),
    LOAN: dict(zip(_DOC_KINDS, ("ID_CARD", "PASSPORT", "HK_MACAU_PASS", "TW_PASS", "RES_PERMIT",
                                "FOREIGN_PASSPORT", "MILITARY"), strict=True)),
}
_KEY_BASE = {DEPOSIT: 610_000_000_001, CARD: 3_000_000_001, LOAN: 880_000_000_001}


@dataclass(frozen=True)
class Rendered:
    """Per source: file-order record indices, record keys (text) and the output columns."""

    order: dict[str, np.ndarray]
    keys: dict[str, np.ndarray]
    deposit: dict[str, np.ndarray]
    card: dict[str, np.ndarray]
    loan: pa.Table


def assign_keys(rng: np.random.Generator, recs: Records) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Random customer numbers per source; records come back sorted by number (file order)."""
    order: dict[str, np.ndarray] = {}
    keys: dict[str, np.ndarray] = {}
    for s, name in enumerate(SOURCES):
        idx = np.flatnonzero(recs.source == s)
        idx = idx[rng.permutation(len(idx))]
        number = _KEY_BASE[s] + np.arange(len(idx), dtype=np.int64)
        order[name] = idx
        keys[name] = cat("C", digits(number, 10)) if s == CARD else digits(number)
    return order, keys


def _type_code(recs: Records, idx: np.ndarray, source: int) -> np.ndarray:
    assert recs.doc is not None and recs.type_mismatch is not None
    table = _TYPE_CODES[source]
    codes = np.asarray([table.get(k, "") for k in range(max(_DOC_KINDS) + 1)], dtype=S)
    doc = np.where(recs.type_mismatch[idx], RESIDENT, recs.doc[idx])
    return codes[doc]


def _date_text(values: np.ndarray, fmt: str) -> np.ndarray:
    """datetime64 -> 'YYYYMMDD', 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'; NaT -> ''."""
    text = np.datetime_as_string(values, unit="D" if fmt != "datetime" else "s")
    text = np.asarray(text, dtype=S)
    if fmt == "compact":
        text = np.strings.replace(text, "-", "")
    elif fmt == "datetime":
        text = np.strings.replace(text, "T", " ")
    return where(np.isnat(values), "", text)


def _clean(values: np.ndarray) -> np.ndarray:
    """No delimiter, quote or line break inside a field of the '|'-delimited file."""
    return translate(np.asarray(values, dtype=S), {ord("|"): "", ord("\n"): "", ord("\r"): ""})


def render(rng: np.random.Generator, recs: Records, persons: Persons) -> Rendered:
    order, keys = assign_keys(rng, recs)
    assert recs.name is not None and recs.id_number is not None and recs.gender is not None
    assert recs.dob is not None and recs.mobile is not None and recs.phone is not None
    assert recs.address is not None and recs.email is not None and recs.updated_at is not None
    assert recs.name_latin is not None and recs.legacy is not None

    d = order["deposit"]
    legacy = recs.legacy[d]
    gender_d = np.select([recs.gender[d] == "M", recs.gender[d] == "F"], ["1", "2"],
                         np.where(rng.random(len(d)) < 0.5, "0", "")).astype(S)
    gender_d = where(legacy, "", gender_d)
    deposit = {
        "KHH": keys["deposit"], "KHMC": recs.name[d], "ZJLX": _type_code(recs, d, DEPOSIT),
        "ZJHM": recs.id_number[d], "XB": gender_d, "CSRQ": _date_text(recs.dob[d], "compact"),
        "SJHM": recs.mobile[d], "LXDH": recs.phone[d], "TXDZ": recs.address[d],
        "GXRQ": _date_text(recs.updated_at[d].astype("datetime64[D]"), "compact"),
    }
    deposit = {k: _clean(v) for k, v in deposit.items()}

    c = order["card"]
    card = {
        "cust_id": keys["card"], "name_cn": recs.name[c], "embossed_name": recs.name_latin[c],
        "id_type": _type_code(recs, c, CARD), "id_no": recs.id_number[c], "gender": recs.gender[c],
        "birth_date": _date_text(recs.dob[c], "iso"), "mobile": recs.mobile[c], "home_phone": recs.phone[c],
        "bill_address": recs.address[c], "email": recs.email[c],
        "last_update": _date_text(recs.updated_at[c], "datetime"),
    }

    sl = order["loan"]

    def text(values: np.ndarray) -> pa.Array:
        arr = pa.array(np.asarray(values, dtype=S), pa.string())
        return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)

    loan = pa.table({
        "borrower_id": pa.array(keys["loan"].astype(np.int64), pa.int64()),
        "customer_name": text(recs.name[sl]),
        "cert_type": text(_type_code(recs, sl, LOAN)),
        "cert_no": text(recs.id_number[sl]),
        "gender": text(np.select([recs.gender[sl] == "M", recs.gender[sl] == "F"], ["男", "女"], "").astype(S)),
        "birth_date": pa.array(recs.dob[sl].astype("datetime64[D]"), pa.date32()),
        "mobile_phone": text(recs.mobile[sl]),
        "contact_address": text(recs.address[sl]),
        "email": text(recs.email[sl]),
        "updated_at": pa.array(recs.updated_at[sl].astype("datetime64[us]"), pa.timestamp("us")),
    }, schema=LOAN_SCHEMA)
    return Rendered(order=order, keys=keys, deposit=deposit, card=card, loan=loan)


def person_cases(recs: Records, persons: Persons) -> np.ndarray:
    """Person-level hard-case tags, plus ``placeholder_id`` for persons given a placeholder ID."""
    case = np.asarray(persons.case, dtype=S).copy()
    hit = recs.log.hits.get("placeholder_id")
    if hit is not None:
        who = np.unique(recs.person[hit])
        case[who] = where(case[who] == "", "placeholder_id", case[who])
    return case


def truth_table(recs: Records, persons: Persons, rendered: Rendered) -> pa.Table:
    """One row per source record, in file order: deposit, card, loan."""
    cases = person_cases(recs, persons)
    order = np.concatenate([rendered.order[s] for s in SOURCES])
    system = np.concatenate([np.full(len(rendered.order[s]), s, dtype=S) for s in SOURCES])
    rid = np.concatenate([np.asarray(rendered.keys[s], dtype=S) for s in SOURCES])
    pi = recs.person[order]
    case = pa.array(np.asarray(cases[pi], dtype=S), pa.string())
    case = pc.if_else(pc.equal(case, ""), pa.scalar(None, pa.string()), case)
    return pa.table({
        "source_system": pa.array(system, pa.string()),
        "source_record_id": pa.array(rid, pa.string()),
        "person_id": pa.array(persons.person_id[pi], pa.int64()),
        "patterns": recs.log.list_array(order),
        "case": case,
    }, schema=TRUTH_SCHEMA)
