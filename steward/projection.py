"""The SQL that turns master columns into the text a steward page shows (one definition for every reader).

The lookup builder and the master fallback select through these expressions, so a value
reads the same whichever served the page: dates ``1980-01-01``, timestamps
``2026-11-01 08:30:00``, lists joined by ``", "``, booleans ``True`` / ``False``, NaN and
NULL as nothing. Columns a version does not have (``source_records`` is an open table)
are selected as NULL.
"""

from __future__ import annotations

import duckdb

from steward.views import FIELDS, MEMBER_COLUMNS

# Every source-record column a page shows as text (pair fields, then member-table columns), in a fixed order.
RECORD_TEXT_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys([*(c for _, raw, std in FIELDS for c in (raw, std)), "source_system", *MEMBER_COLUMNS])
)
FLAGS_COLUMN = "quality_flags"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """Column name → DuckDB type of ``table`` in the connection's current database; {} when it is missing."""
    try:
        rows = con.execute(f"DESCRIBE {quote(table)}").fetchall()
    except duckdb.CatalogException:
        return {}
    return {str(r[0]): str(r[1]) for r in rows}


def text_sql(column: str, type_: str | None, prefix: str = "") -> str:
    """A VARCHAR expression showing ``column`` (of DuckDB type ``type_``; None: not in the table) as page text."""
    if type_ is None:
        return "CAST(NULL AS VARCHAR)"
    q = prefix + quote(column)
    t = type_.upper()
    if t.endswith("[]"):
        return f"array_to_string(list_transform({q}, x -> coalesce(CAST(x AS VARCHAR), '')), ', ')"
    if t == "BOOLEAN":
        return f"CASE WHEN {q} THEN 'True' WHEN NOT {q} THEN 'False' END"
    if t in ("DOUBLE", "FLOAT", "REAL"):
        return f"CASE WHEN isnan({q}) THEN NULL ELSE CAST({q} AS VARCHAR) END"
    if t == "VARCHAR":
        return q
    return f"CAST({q} AS VARCHAR)"


def record_text_sql(types: dict[str, str], prefix: str = "") -> list[str]:
    """The :data:`RECORD_TEXT_COLUMNS` of ``source_records`` as text, then its quality flags as a list."""
    exprs = [text_sql(c, types.get(c), prefix) for c in RECORD_TEXT_COLUMNS]
    flags = types.get(FLAGS_COLUMN, "")
    exprs.append(f"{prefix}{quote(FLAGS_COLUMN)}" if flags.upper().endswith("[]") else "CAST(NULL AS VARCHAR[])")
    return exprs


def golden_text_sql(types: dict[str, str], prefix: str = "") -> list[str]:
    """Every ``golden_customer`` column as text, in table order."""
    return [text_sql(c, t, prefix) for c, t in types.items()]
