"""What the steward pages show, assembled from plain rows (pure: no database here).

Both places the web app reads from hand rows to these functions: the per-version lookup
store (:mod:`steward.lookup`) and the published master itself (:mod:`steward.evidence`),
so a page looks the same whichever one answered. Values arrive as display text already
(formatted in SQL by :mod:`steward.projection`), lists of quality flags as lists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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
# Columns of a source record shown in the member tables (pair page, customer page).
MEMBER_COLUMNS: tuple[str, ...] = (
    "source_system", "source_record_id", "name_norm", "name_latin", "id_number", "birth_date", "mobile", "address_norm",
)
# Golden-customer columns on a search result line.
SUMMARY_COLUMNS: tuple[str, ...] = ("name", "birth_date", "n_records", "systems")
_LINEAGE_SUFFIXES = ("_source_system", "_source_record_id", "_updated_at")


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
class LinkScore:
    """The model's score of one record pair (a ``match_links`` row)."""

    contributions: list[Contribution]
    match_weight: float | None
    match_probability: float | None
    decision: str | None
    rules: str


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


@dataclass
class CustomerView:
    golden_id: str
    current_id: str
    attributes: list[dict[str, str]]
    records: list[dict[str, Any]]
    systems: list[dict[str, Any]]
    events: list[dict[str, Any]]


class EvidenceSource(Protocol):
    """Where the pages read a master version from (the lookup store, or the master database)."""

    def pair_evidence(self, key_l: str, key_r: str) -> PairEvidence: ...

    def customer_view(self, golden_id: str) -> CustomerView | None: ...

    def search(self, kind: str, value: str, limit: int = 25) -> list[dict[str, Any]]: ...

    def cluster_members(self, golden_ids: list[str]) -> dict[str, list[dict[str, Any]]]: ...


def _float(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return None if f != f else f


def link_score(row: Mapping[str, Any] | None) -> LinkScore:
    """Contributions (one per ``bf_<comparison>`` column, in column order), weight, probability, decision."""
    if row is None:
        return LinkScore([], None, None, None, "")
    contributions = []
    for col, value in row.items():
        if col.startswith("bf_"):
            name = col[3:]
            level = _float(row.get(f"gamma_{name}"))
            contributions.append(Contribution(name, None if level is None else int(level), float(value or 0.0)))
    rules = row.get("rules")
    return LinkScore(
        contributions=contributions,
        match_weight=_float(row.get("match_weight")),
        match_probability=_float(row.get("match_probability")),
        decision=row.get("decision"),
        rules=", ".join(str(r) for r in rules) if isinstance(rules, list | tuple) else str(rules or ""),
    )


def member(record_key: str, golden_id: str | None, link_type: str | None, link_weight: float | None,
           text: Mapping[str, str]) -> dict[str, Any]:
    """One row of a member table: the record's key, its link and its :data:`MEMBER_COLUMNS` as text."""
    return {"golden_id": golden_id, "record_key": record_key, "link_type": link_type,
            "link_weight": _float(link_weight), **{c: text.get(c, "") for c in MEMBER_COLUMNS}}


def pair(key_l: str, key_r: str, left: Mapping[str, Any], right: Mapping[str, Any], score: LinkScore,
         golden: Mapping[str, str | None], members: dict[str, list[dict[str, Any]]]) -> PairEvidence:
    """The pair page: ``left`` / ``right`` map a record's columns to text (``quality_flags`` to a list)."""
    rows: list[FieldRow] = []
    for label, raw_col, std_col in FIELDS:
        std_l, std_r = str(left.get(std_col) or ""), str(right.get(std_col) or "")
        same = None if not std_l or not std_r else std_l == std_r
        rows.append(FieldRow(label, str(left.get(raw_col) or ""), str(right.get(raw_col) or ""), std_l, std_r, same))
    return PairEvidence(
        record_key_l=key_l,
        record_key_r=key_r,
        system_l=str(left.get("source_system") or ""),
        system_r=str(right.get("source_system") or ""),
        golden_id_l=golden.get(key_l),
        golden_id_r=golden.get(key_r),
        fields=rows,
        contributions=score.contributions,
        match_weight=score.match_weight,
        match_probability=score.match_probability,
        decision=score.decision,
        rules=score.rules,
        cluster_members=members,
        flags_l=[str(f) for f in left.get("quality_flags") or []],
        flags_r=[str(f) for f in right.get("quality_flags") or []],
    )


def golden_attributes(columns: Sequence[str], values: Sequence[str | None]) -> list[dict[str, str]]:
    """The golden record as (attribute, value, lineage) rows; lineage columns fold into their attribute."""
    row = dict(zip(columns, values, strict=True))
    return [
        {
            "attribute": col,
            "value": value or "",
            "source_system": row.get(f"{col}_source_system") or "",
            "source_record_id": row.get(f"{col}_source_record_id") or "",
            "updated_at": row.get(f"{col}_updated_at") or "",
        }
        for col, value in row.items()
        if col != "golden_id" and not col.endswith(_LINEAGE_SUFFIXES)
    ]


def summary(golden_id: str, columns: Sequence[str], values: Sequence[str | None]) -> dict[str, Any]:
    """One search result line: the :data:`SUMMARY_COLUMNS` the golden record has, as text."""
    row = dict(zip(columns, values, strict=True))
    return {"golden_id": golden_id, "attributes": {c: row[c] or "" for c in SUMMARY_COLUMNS if c in row}}


def search_lookups(kind: str, value: str) -> list[list[tuple[str, str]]]:
    """The exact look-ups a search runs, normalized the way the pipeline normalizes records.

    A list of stages of (column, value); the first stage that finds anyone answers (a phone
    is looked up as a mobile first, then among every record's phones). Golden-ID searches
    are answered directly and return no stages.
    """
    import pandas as pd

    from validators.id_documents import standardize_ids
    from validators.names import standardize_name
    from validators.names_tables import load_tables
    from validators.phones import standardize_phones

    value = value.strip()
    if not value or kind == "golden_id":
        return []
    if kind == "id_number":
        number = standardize_ids(pd.Series([None]), pd.Series([value]))["id_number"].iloc[0] or value.upper()
        return [[("id_number", str(number))]]
    if kind == "phone":
        phones = standardize_phones(pd.Series([value]), pd.Series([None]))["phones"].iloc[0]
        e164 = str(phones[0]) if phones is not None and len(phones) else value
        return [[("mobile", e164)], [("phones", e164)]]
    name = standardize_name(load_tables(None), value)  # the kernel standardize_names runs per distinct value
    norm = name.norm or value
    latin = name.latin_key or norm
    return [[("name_norm", norm), ("name_latin_key", latin)]]


def follow_merges(golden_id: str, registry_row: Callable[[str], tuple[Any, Any] | None]) -> str | None:
    """Follow ``merged_into`` from a retired golden ID to the active one (cycle-safe); None if there is none.

    ``registry_row(gid)`` gives ``(status, merged_into)`` of one golden ID, or None when unknown.
    """
    seen: set[str] = set()
    current = golden_id
    while current not in seen:
        seen.add(current)
        row = registry_row(current)
        if row is None:
            return None
        status, merged_into = row
        if status == "active" or not merged_into:
            return current if status == "active" else None
        current = merged_into
    return None
