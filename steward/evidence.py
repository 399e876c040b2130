"""The evidence a steward needs for a decision, read from the published master.

For a record pair: both records' raw and standardized values side by side, which fields
differ, the contribution of each comparison to the match weight, and the other records of
both current golden customers. For a golden customer: the golden record with the lineage
of every attribute and its source records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

# (label, raw column, standardized column) in the order a steward reads a customer.
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("Name", "name", "name_norm"),
    ("Latin name", "name_latin", "name_latin_key"),
    ("ID type", "id_type_raw", "id_type"),
    ("ID number", "id_number_raw", "id_number"),
    ("Gender", "gender_raw", "gender"),
    ("Birth date", "birth_date_raw", "birth_date"),
    ("Mobile", "mobile_raw", "mobile"),
    ("Other phone", "phone_raw", "phones"),
    ("Address", "address_raw", "address_norm"),
    ("E-mail", "email_raw", "email"),
    ("Updated", "updated_at_raw", "updated_at"),
)
SENSITIVE = {"ID number", "Mobile", "Other phone"}


@dataclass
class FieldRow:
    label: str
    raw_l: str
    raw_r: str
    std_l: str
    std_r: str
    same: bool | None  # None when either side is missing


@dataclass
class Contribution:
    comparison: str
    level: int | None
    weight: float


@dataclass
class PairEvidence:
    record_key_l: str
    record_key_r: str
    system_l: str
    system_r: str
    golden_id_l: str | None
    golden_id_r: str | None
    fields: list[FieldRow]
    contributions: list[Contribution]
    match_weight: float | None
    match_probability: float | None
    decision: str | None
    rules: str
    cluster_members: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    flags_l: list[str] = field(default_factory=list)
    flags_r: list[str] = field(default_factory=list)


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v != v:
        return ""
    if isinstance(v, list | tuple):
        return ", ".join(_text(x) for x in v)
    if hasattr(v, "tolist") and not isinstance(v, str):
        return _text(v.tolist())
    return str(v)


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]


def _as_list(v: Any) -> list[str]:
    if v is None or (isinstance(v, float) and v != v):
        return []
    return [str(x) for x in (v.tolist() if hasattr(v, "tolist") else v)]


def _in(values: list[str]) -> str:
    """Placeholders for an IN list: explicit values let DuckDB use the table's index."""
    return "(" + ", ".join("?" * len(values)) + ")" if values else "(NULL)"


def _records(con: duckdb.DuckDBPyConnection, keys: list[str]) -> dict[str, dict[str, Any]]:
    frame = con.execute(f"SELECT * FROM source_records WHERE record_key IN {_in(keys)}", keys).df()
    return {str(r["record_key"]): {str(k): v for k, v in r.items()} for r in frame.to_dict("records")}


def _golden_of(con: duckdb.DuckDBPyConnection, keys: list[str]) -> dict[str, str]:
    rows = con.execute(
        f"SELECT record_key, golden_id FROM customer_xref WHERE record_key IN {_in(keys)}", keys
    ).fetchall()
    return {k: g for k, g in rows}


def cluster_members(con: duckdb.DuckDBPyConnection, golden_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    # Two index look-ups (xref by golden ID, then the records by key) instead of a join that scans.
    links = con.execute(
        f"SELECT golden_id, record_key, link_type, link_weight FROM customer_xref WHERE golden_id IN {_in(golden_ids)}",
        golden_ids,
    ).df()
    keys = [str(k) for k in links["record_key"]]
    records = con.execute(
        f"""SELECT record_key, source_system, source_record_id, name_norm, name_latin, id_number, birth_date,
                   mobile, address_norm FROM source_records WHERE record_key IN {_in(keys)}""",
        keys,
    ).df()
    frame = links.merge(records, on="record_key", how="left").sort_values(["golden_id", "record_key"])
    out: dict[str, list[dict[str, Any]]] = {g: [] for g in golden_ids}
    for rec in _rows(frame):
        out.setdefault(str(rec["golden_id"]), []).append(rec)
    return out


def pair_evidence(con: duckdb.DuckDBPyConnection, key_l: str, key_r: str) -> PairEvidence:
    recs = _records(con, [key_l, key_r])
    left, right = recs.get(key_l, {}), recs.get(key_r, {})
    rows: list[FieldRow] = []
    for label, raw_col, std_col in FIELDS:
        std_l, std_r = _text(left.get(std_col)), _text(right.get(std_col))
        same = None if not std_l or not std_r else std_l == std_r
        rows.append(FieldRow(label, _text(left.get(raw_col)), _text(right.get(raw_col)), std_l, std_r, same))
    link = con.execute("SELECT * FROM match_links WHERE record_key_l = ? AND record_key_r = ? LIMIT 1",
                       [key_l, key_r]).df()
    if link.empty:
        link = con.execute("SELECT * FROM match_links WHERE record_key_l = ? AND record_key_r = ? LIMIT 1",
                           [key_r, key_l]).df()
    contributions: list[Contribution] = []
    weight = prob = None
    decision = None
    rules = ""
    if len(link):
        row = link.iloc[0]
        for col in link.columns:
            if col.startswith("bf_"):
                name = col[3:]
                level = row.get(f"gamma_{name}")
                contributions.append(
                    Contribution(name, None if pd.isna(level) else int(level), float(row[col] or 0.0))
                )
        weight = float(row["match_weight"]) if pd.notna(row.get("match_weight")) else None
        prob = float(row["match_probability"]) if pd.notna(row.get("match_probability")) else None
        decision = row.get("decision")
        rules = _text(row.get("rules"))
    golden = _golden_of(con, [key_l, key_r])
    gids = sorted({g for g in golden.values() if g})
    return PairEvidence(
        record_key_l=key_l,
        record_key_r=key_r,
        system_l=_text(left.get("source_system")),
        system_r=_text(right.get("source_system")),
        golden_id_l=golden.get(key_l),
        golden_id_r=golden.get(key_r),
        fields=rows,
        contributions=contributions,
        match_weight=weight,
        match_probability=prob,
        decision=decision,
        rules=rules,
        cluster_members=cluster_members(con, gids),
        flags_l=_as_list(left.get("quality_flags")),
        flags_r=_as_list(right.get("quality_flags")),
    )


@dataclass
class CustomerView:
    golden_id: str
    current_id: str
    attributes: list[dict[str, str]]
    records: list[dict[str, Any]]
    systems: list[dict[str, Any]]
    events: list[dict[str, Any]]


def resolve(con: duckdb.DuckDBPyConnection, golden_id: str) -> str | None:
    """Follow merged_into from a retired golden ID to the current one (cycle-safe)."""
    seen: set[str] = set()
    current = golden_id
    while current not in seen:
        seen.add(current)
        row = con.execute(
            "SELECT status, merged_into FROM golden_id_registry WHERE golden_id = ?", [current]
        ).fetchone()
        if row is None:
            return None
        status, merged_into = row
        if status == "active" or not merged_into:
            return current if status == "active" else None
        current = merged_into
    return None


def customer_view(con: duckdb.DuckDBPyConnection, golden_id: str) -> CustomerView | None:
    current = resolve(con, golden_id)
    if current is None:
        return None
    frame = con.execute("SELECT * FROM golden_customer WHERE golden_id = ?", [current]).df()
    if frame.empty:
        return None
    row = {str(k): v for k, v in frame.iloc[0].to_dict().items()}
    attrs: list[dict[str, str]] = []
    for col, value in row.items():
        if col.endswith(("_source_system", "_source_record_id", "_updated_at")) or col == "golden_id":
            continue
        attrs.append(
            {
                "attribute": col,
                "value": _text(value),
                "source_system": _text(row.get(f"{col}_source_system")),
                "source_record_id": _text(row.get(f"{col}_source_record_id")),
                "updated_at": _text(row.get(f"{col}_updated_at")),
            }
        )
    records = cluster_members(con, [current]).get(current, [])
    systems = _rows(con.execute("SELECT * FROM customer_systems WHERE golden_id = ?", [current]).df())
    events = _rows(
        con.execute(
            """SELECT * FROM golden_id_events WHERE golden_id = ?
               UNION ALL SELECT * FROM golden_id_events WHERE related_golden_id = ? AND golden_id != ?
               ORDER BY run_id, event_id""",
            [current, current, current],
        ).df()
    )
    return CustomerView(golden_id, current, attrs, records, systems, events)


def customer_summaries(con: duckdb.DuckDBPyConnection, golden_ids: list[str]) -> list[dict[str, Any]]:
    """One line per golden customer for a result list (one query, whatever the number of hits)."""
    if not golden_ids:
        return []
    frame = con.execute(
        """SELECT golden_id, COLUMNS('^(name|birth_date|n_records|systems)$') FROM golden_customer
           WHERE golden_id IN (SELECT unnest(?)) ORDER BY golden_id""",
        [golden_ids],
    ).df()
    return [
        {"golden_id": r["golden_id"], "attributes": {k: _text(v) for k, v in r.items() if k != "golden_id"}}
        for r in _rows(frame)
    ]


def search_customers(con: duckdb.DuckDBPyConnection, kind: str, value: str, limit: int = 25) -> pd.DataFrame:
    """Golden customers by ID number, phone, name or golden ID (values normalized like the pipeline does)."""
    from validators.id_documents import standardize_ids
    from validators.names import standardize_names
    from validators.phones import standardize_phones

    value = value.strip()
    if not value:
        return pd.DataFrame(columns=["golden_id"])
    if kind == "golden_id":
        return con.execute("SELECT DISTINCT golden_id FROM customer_xref WHERE golden_id = ?", [value]).df()
    if kind == "id_number":
        number = standardize_ids(pd.Series([None]), pd.Series([value]))["id_number"].iloc[0] or value.upper()
        return _golden_ids_by(con, [("id_number", number)], limit)
    if kind == "phone":
        phones = standardize_phones(pd.Series([value]), pd.Series([None]))["phones"].iloc[0] or []
        e164 = phones[0] if phones else value
        found = _golden_ids_by(con, [("mobile", e164)], limit)
        if len(found):
            return found
        keys = [str(k) for (k,) in con.execute(  # landlines live only in the phones lists: a scan
            "SELECT record_key FROM source_records WHERE list_contains(phones, ?) LIMIT ?", [e164, limit * 4]
        ).fetchall()]
        return _golden_ids_of_keys(con, keys, limit)
    names = standardize_names(pd.Series([value]))
    norm = names["name_norm"].iloc[0] or value
    latin = names["name_latin_key"].iloc[0] or norm
    return _golden_ids_by(con, [("name_norm", norm), ("name_latin_key", latin)], limit)


def _golden_ids_by(con: duckdb.DuckDBPyConnection, lookups: list[tuple[str, str]], limit: int) -> pd.DataFrame:
    """Golden IDs of the records whose indexed column equals a value (index look-ups, no join scan)."""
    keys = [
        str(k)
        for column, v in lookups
        for (k,) in con.execute(f"SELECT record_key FROM source_records WHERE {column} = ? LIMIT ?",
                                [v, limit * 4]).fetchall()
    ]
    return _golden_ids_of_keys(con, keys, limit)


def _golden_ids_of_keys(con: duckdb.DuckDBPyConnection, keys: list[str], limit: int) -> pd.DataFrame:
    return con.execute(
        f"SELECT DISTINCT golden_id FROM customer_xref WHERE record_key IN {_in(keys)} LIMIT ?", [*keys, limit]
    ).df()
