"""The evidence a steward needs, read straight from the published master database.

For a record pair: both records' raw and standardized values side by side, which fields
differ, the contribution of each comparison to the match weight, and the other records of
both current golden customers. For a golden customer: the golden record with the lineage
of every attribute and its source records.

The web app reads these from the version's lookup store (:mod:`steward.lookup`) once it
exists; this module answers meanwhile, and for the command line. Every query is a point
look-up on an indexed column with explicit values (DuckDB uses its index for those).
"""

from __future__ import annotations

from typing import Any

import duckdb

from steward import projection
from steward.views import (
    FIELDS,
    SENSITIVE,
    Contribution,
    CustomerView,
    FieldRow,
    PairEvidence,
    follow_merges,
    golden_attributes,
    link_score,
    member,
    pair,
    search_lookups,
    summary,
)

__all__ = [
    "FIELDS",
    "SENSITIVE",
    "Contribution",
    "CustomerView",
    "FieldRow",
    "MasterEvidence",
    "PairEvidence",
    "cluster_members",
    "customer_summaries",
    "customer_view",
    "pair_evidence",
    "resolve",
    "search_customers",
]

# Record keys read per search look-up at most (a name shared by more records than this is not useful anyway).
MAX_SEARCH_RECORDS = 10_000


def _in(values: list[str]) -> str:
    """Placeholders for an IN list: explicit values let DuckDB use the table's index."""
    return "(" + ", ".join("?" * len(values)) + ")" if values else "(NULL)"


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _records(con: duckdb.DuckDBPyConnection, keys: list[str]) -> dict[str, dict[str, Any]]:
    """Record key → its :data:`projection.RECORD_TEXT_COLUMNS` as text and its quality flags as a list."""
    if not keys:
        return {}
    types = projection.columns(con, "source_records")
    exprs = projection.record_text_sql(types)
    names = [*projection.RECORD_TEXT_COLUMNS, projection.FLAGS_COLUMN]
    rows = con.execute(
        f"SELECT record_key, {', '.join(exprs)} FROM source_records WHERE record_key IN {_in(keys)}", keys
    ).fetchall()
    return {str(r[0]): dict(zip(names, r[1:], strict=True)) for r in rows}


def cluster_members(con: duckdb.DuckDBPyConnection, golden_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The records of each golden customer, by record key."""
    # Two index look-ups (xref by golden ID, then the records by key) instead of a join that scans.
    links = con.execute(
        f"SELECT golden_id, record_key, link_type, link_weight FROM customer_xref WHERE golden_id IN {_in(golden_ids)}"
        " ORDER BY golden_id, record_key",
        golden_ids,
    ).fetchall()
    records = _records(con, [str(k) for _, k, _, _ in links])
    out: dict[str, list[dict[str, Any]]] = {g: [] for g in golden_ids}
    for gid, key, link_type, weight in links:
        out.setdefault(str(gid), []).append(member(str(key), gid, link_type, weight, records.get(str(key), {})))
    return out


def pair_evidence(con: duckdb.DuckDBPyConnection, key_l: str, key_r: str) -> PairEvidence:
    recs = _records(con, [key_l, key_r])
    link = None
    for a, b in ((key_l, key_r), (key_r, key_l)):
        found = _dicts(con.execute("SELECT * FROM match_links WHERE record_key_l = ? AND record_key_r = ? LIMIT 1",
                                   [a, b]))
        if found:
            link = found[0]
            break
    golden = dict(con.execute(
        f"SELECT record_key, golden_id FROM customer_xref WHERE record_key IN {_in([key_l, key_r])}", [key_l, key_r]
    ).fetchall())
    members = cluster_members(con, sorted({g for g in golden.values() if g}))
    return pair(key_l, key_r, recs.get(key_l, {}), recs.get(key_r, {}), link_score(link), golden, members)


def resolve(con: duckdb.DuckDBPyConnection, golden_id: str) -> str | None:
    """Follow merged_into from a retired golden ID to the current one (cycle-safe)."""
    sql = "SELECT status, merged_into FROM golden_id_registry WHERE golden_id = ?"
    return follow_merges(golden_id, lambda gid: con.execute(sql, [gid]).fetchone())


def _golden_rows(con: duckdb.DuckDBPyConnection, golden_ids: list[str]) -> tuple[list[str], list[tuple[Any, ...]]]:
    types = projection.columns(con, "golden_customer")
    rows = con.execute(
        f"SELECT golden_id, {', '.join(projection.golden_text_sql(types))} FROM golden_customer "
        f"WHERE golden_id IN {_in(golden_ids)} ORDER BY golden_id",
        golden_ids,
    ).fetchall()
    return list(types), rows


def customer_view(con: duckdb.DuckDBPyConnection, golden_id: str) -> CustomerView | None:
    current = resolve(con, golden_id)
    if current is None:
        return None
    cols, rows = _golden_rows(con, [current])
    if not rows:
        return None
    records = cluster_members(con, [current]).get(current, [])
    systems = _dicts(con.execute(
        "SELECT source_system, n_records FROM customer_systems WHERE golden_id = ? ORDER BY source_system", [current]))
    events = _dicts(con.execute(
        """SELECT * FROM golden_id_events WHERE golden_id = ?
           UNION ALL SELECT * FROM golden_id_events WHERE related_golden_id = ? AND golden_id != ?
           ORDER BY run_id, event_id""",
        [current, current, current],
    ))
    return CustomerView(golden_id, current, golden_attributes(cols, rows[0][1:]), records, systems, events)


def customer_summaries(con: duckdb.DuckDBPyConnection, golden_ids: list[str]) -> list[dict[str, Any]]:
    """One line per golden customer for a result list (one query, whatever the number of hits)."""
    if not golden_ids:
        return []
    cols, rows = _golden_rows(con, golden_ids)
    return [summary(str(r[0]), cols, r[1:]) for r in rows]


def search_customers(con: duckdb.DuckDBPyConnection, kind: str, value: str, limit: int = 25) -> list[str]:
    """Golden IDs (sorted, at most ``limit``) by ID number, phone, name or golden ID, values normalized
    like the pipeline normalizes records."""
    value = value.strip()
    if not value:
        return []
    if kind == "golden_id":
        return [str(g) for (g,) in con.execute(
            "SELECT DISTINCT golden_id FROM customer_xref WHERE golden_id = ?", [value]).fetchall()]
    for stage in search_lookups(kind, value):
        keys = [str(k) for column, v in stage for (k,) in _record_keys(con, column, v)]
        found = con.execute(
            f"SELECT DISTINCT golden_id FROM customer_xref WHERE record_key IN {_in(keys)} ORDER BY golden_id LIMIT ?",
            [*keys, limit],
        ).fetchall()
        if found:
            return [str(g) for (g,) in found]
    return []


def _record_keys(con: duckdb.DuckDBPyConnection, column: str, value: str) -> list[tuple[Any, ...]]:
    if column == "phones":  # landlines live only in the phones lists: a scan
        sql = "SELECT record_key FROM source_records WHERE list_contains(phones, ?) LIMIT ?"
    else:  # an indexed column
        sql = f"SELECT record_key FROM source_records WHERE {projection.quote(column)} = ? LIMIT ?"
    return con.execute(sql, [value, MAX_SEARCH_RECORDS]).fetchall()


class MasterEvidence:
    """:class:`steward.views.EvidenceSource` over a cursor on the master database."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def pair_evidence(self, key_l: str, key_r: str) -> PairEvidence:
        return pair_evidence(self.con, key_l, key_r)

    def customer_view(self, golden_id: str) -> CustomerView | None:
        return customer_view(self.con, golden_id)

    def search(self, kind: str, value: str, limit: int = 25) -> list[dict[str, Any]]:
        return customer_summaries(self.con, search_customers(self.con, kind, value, limit))

    def cluster_members(self, golden_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        return cluster_members(self.con, golden_ids)
