"""Read-only analyst SQL over the mart (``mdm query``).

Three layers, each enough on its own against the common mistakes and together against abuse:

1. :func:`check_sql` parses the text with DuckDB's own parser: exactly one statement, of type
   SELECT, not a PRAGMA in disguise; its syntax tree (``json_serialize_sql``) may call no
   table function but ``range`` / ``generate_series`` / ``unnest`` and no file-reading or
   environment function, and may name no file as a table;
2. the mart is opened read-only;
3. the connection has ``enable_external_access = false`` and a locked configuration, so no
   file outside the mart can be read even if something slipped through.

Every query, refused or run, is written to the audit log with the user, the SQL text and the row count.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from mdm.audit import AuditLog
from mdm.crypto import connect_duckdb, is_encrypted
from mdm.errors import MdmError, SecurityError
from mdm.mart import MART_DB, current_mart

log = logging.getLogger(__name__)

__all__ = ["QueryResult", "check_sql", "run_query"]

ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
_DENIED_PREFIXES = ("read_", "parquet_", "sniff_", "iceberg_", "delta_", "st_read", "duckdb_secret", "which_secret")
_DENIED_FUNCTIONS = frozenset({"glob", "query", "query_table", "getenv", "read_text", "read_blob", "load_extension"})
_DENIED_FIRST_WORDS = frozenset(
    {
        "PRAGMA",
        "SET",
        "RESET",
        "CALL",
        "COPY",
        "ATTACH",
        "DETACH",
        "INSTALL",
        "LOAD",
        "EXPORT",
        "IMPORT",
        "USE",
        "CHECKPOINT",
        "VACUUM",
        "SUMMARIZE",
    }
)
_SHOW = re.compile(r"^\s*(DESCRIBE|SHOW)\s+([A-Za-z_][A-Za-z0-9_]*)\s*;?\s*$", re.IGNORECASE)
_COMMENT = re.compile(r"(--[^\n]*\n?)|(/\*.*?\*/)", re.DOTALL)
_FILE_LIKE = re.compile(r"[./\\:~]")


@dataclass(frozen=True)
class QueryResult:
    """The rows of one analyst query and the mart version it ran on."""

    table: pa.Table
    mart_version: str

    @property
    def rows(self) -> int:
        return self.table.num_rows


def _first_word(text: str) -> str:
    stripped = _COMMENT.sub(" ", text).lstrip(" \t\r\n(")
    return stripped.split(None, 1)[0].upper() if stripped else ""


def _walk(node: Any, found: list[tuple[str, str]]) -> None:
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            fn = node.get("function", {})
            found.append(("table_function", str(fn.get("function_name", "")) if isinstance(fn, dict) else ""))
        elif kind == "BASE_TABLE":
            found.append(("table", str(node.get("table_name", ""))))
        if "function_name" in node:
            found.append(("function", str(node["function_name"])))
        for value in node.values():
            _walk(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found)


def _denied_function(name: str) -> bool:
    low = name.lower()
    return low in _DENIED_FUNCTIONS or low.startswith(_DENIED_PREFIXES)


def check_sql(sql: str) -> None:
    """Raise SecurityError unless ``sql`` is one read-only SELECT over mart tables (see module doc)."""
    if _SHOW.match(sql):
        return
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise SecurityError(f"the query does not parse: {str(e).splitlines()[0]}") from None
    if len(statements) != 1:
        raise SecurityError(f"one SELECT statement per query, please ({len(statements)} given)")
    statement = statements[0]
    kind = statement.type.name
    first = _first_word(sql)
    if kind != "SELECT" or first in _DENIED_FIRST_WORDS or _first_word(statement.query) in _DENIED_FIRST_WORDS:
        raise SecurityError(f"only SELECT queries may run against the mart ({first or kind} refused)")
    tree = json.loads(duckdb.execute("SELECT json_serialize_sql(?)", [statement.query]).fetchone()[0])  # type: ignore[index]
    if tree.get("error"):
        raise SecurityError(f"only plain SELECT queries may run against the mart ({first} refused)")
    found: list[tuple[str, str]] = []
    _walk(tree, found)
    for what, name in found:
        if what == "table_function" and name.lower() not in ALLOWED_TABLE_FUNCTIONS:
            raise SecurityError(f"table function {name}() is not allowed in analyst queries; query the mart tables")
        if what == "function" and _denied_function(name):
            raise SecurityError(f"function {name}() is not allowed in analyst queries (no file or environment access)")
        if what == "table" and (_FILE_LIKE.search(name) or name.lower().startswith(("pragma_", "duckdb_"))):
            raise SecurityError("analyst queries may only read mart tables, not files")


def _connect(db: Path, key: bytes | None) -> duckdb.DuckDBPyConnection:
    if key is None and not is_encrypted(db):
        return duckdb.connect(str(db), read_only=True, config={"enable_external_access": False})
    con = connect_duckdb(db, key, read_only=True)
    con.execute("SET enable_external_access = false")
    return con


def run_query(
    sql: str,
    mart_dir: Path,
    user: str,
    audit: AuditLog | None,
    *,
    key: bytes | None = None,
    output: str = "screen",
) -> QueryResult:
    """Run one analyst query read-only against the current mart and audit it (refusals too)."""
    try:
        check_sql(sql)
    except SecurityError as e:
        if audit is not None:
            audit.append(user, "query", "mart", {"sql": sql, "refused": str(e)})
        raise
    version = current_mart(mart_dir)
    con = _connect(version / MART_DB, key)
    try:
        con.execute("SET lock_configuration = true")
        try:
            table = con.execute(sql).to_arrow_table()
        except duckdb.Error as e:
            if audit is not None:
                audit.append(user, "query", f"mart:{version.name}", {"sql": sql, "error": type(e).__name__})
            raise MdmError(f"the query failed: {str(e).splitlines()[0]}") from None
    finally:
        con.close()
    if audit is not None:
        audit.append(user, "query", f"mart:{version.name}", {"sql": sql, "rows": table.num_rows, "output": output})
    log.info("query by %s on mart %s: %d rows", user, version.name, table.num_rows)
    return QueryResult(table, version.name)
