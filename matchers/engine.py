"""The one interface through which the matcher runs SQL, and its DuckDB implementation.

Blocking, comparisons and scoring are relational steps over named tables. They talk to
an :class:`Engine` only: register a table, run SQL, get Arrow back. Python functions
(character-level similarity) enter through :meth:`Engine.register_function` as
vectorized functions over Arrow arrays. Engine-specific SQL lives in
:mod:`matchers.dialect`; a Spark engine is a new subclass here plus a new dialect.
"""

from __future__ import annotations

import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from types import TracebackType

import duckdb
import duckdb.func as duckdb_func
import pandas as pd
import pyarrow as pa

from matchers.dialect import UDF_NAMES, Dialect, DuckDBDialect
from matchers.similarity import VECTOR_FUNCTIONS
from mdm.errors import MdmError
from mdm.logs import redact

log = logging.getLogger(__name__)

VectorFunction = Callable[..., pa.Array]


class EngineError(MdmError):
    """The engine refused a query; the message carries the failing SQL (never data values)."""


class Engine(ABC):
    """A SQL engine holding named tables for one matcher run."""

    dialect: Dialect

    @abstractmethod
    def register(self, name: str, table: pa.Table | pd.DataFrame) -> None:
        """Make ``table`` queryable as ``name`` (replaces an earlier table of that name)."""

    @abstractmethod
    def unregister(self, name: str) -> None:
        """Forget a table registered or created under ``name`` (no error if absent)."""

    @abstractmethod
    def sql(self, query: str) -> pa.Table:
        """Run a query and return its result as an Arrow table."""

    @abstractmethod
    def execute(self, query: str) -> None:
        """Run a statement (e.g. ``CREATE TEMP TABLE ... AS``) without fetching a result."""

    @abstractmethod
    def schema(self, name: str) -> pa.Schema:
        """Arrow schema of a table known to the engine."""

    @abstractmethod
    def register_function(
        self, name: str, fn: VectorFunction, arg_types: Sequence[pa.DataType], return_type: pa.DataType
    ) -> None:
        """Expose a vectorized function (Arrow arrays in, Arrow array out) to SQL as ``name``."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def register_similarity_functions(engine: Engine) -> None:
    """Register the character-level similarity functions under their dialect names."""
    for key, (fn, rtype) in VECTOR_FUNCTIONS.items():
        engine.register_function(UDF_NAMES[key], fn, [pa.string(), pa.string()], rtype)


_DUCKDB_TYPES: dict[pa.DataType, str] = {
    pa.string(): "VARCHAR",
    pa.large_string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.int8(): "TINYINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.date32(): "DATE",
}


class DuckDBEngine(Engine):
    """In-process DuckDB. ``threads`` / ``memory_limit`` default to DuckDB's own settings.

    DuckDB's default memory limit is 80% of the machine's RAM, on top of what the Python
    process already holds: a large run then meets the kernel's OOM killer before DuckDB ever
    spills. ``memory_limit`` (e.g. ``"6GB"``) caps DuckDB's buffer pool, and joins, sorts and
    aggregates that outgrow it spill to ``temp_directory`` (which should be a private folder:
    spilled blocks hold record values).
    """

    def __init__(
        self,
        threads: int | None = None,
        memory_limit: str | None = None,
        *,
        temp_directory: str | None = None,
        connection: duckdb.DuckDBPyConnection | None = None,
    ) -> None:
        self.dialect = DuckDBDialect()
        self._con = connection if connection is not None else duckdb.connect(":memory:")
        self._con.execute("SET enable_progress_bar = false")  # no bar on stdout during long queries
        if threads is not None:
            self._con.execute(f"SET threads = {int(threads)}")
        if memory_limit is not None:
            self._con.execute("SELECT 1")  # fail early on a closed connection
            self._con.execute(f"SET memory_limit = '{_sql_literal(memory_limit)}'")
        if temp_directory is not None:
            self._con.execute(f"SET temp_directory = '{_sql_literal(temp_directory)}'")
        self._registered: set[str] = set()
        register_similarity_functions(self)

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        return self._con

    def register(self, name: str, table: pa.Table | pd.DataFrame) -> None:
        self.unregister(name)
        self._con.register(name, table)
        self._registered.add(name)

    def unregister(self, name: str) -> None:
        if name in self._registered:
            self._con.unregister(name)
            self._registered.discard(name)
        else:
            self._run(f"DROP TABLE IF EXISTS {self.dialect.quote(name)}")

    def sql(self, query: str) -> pa.Table:
        result = self._run(query)
        return result.fetch_arrow_table() if result is not None else pa.table({})

    def execute(self, query: str) -> None:
        self._run(query)

    def schema(self, name: str) -> pa.Schema:
        return self.sql(f"SELECT * FROM {self.dialect.quote(name)} LIMIT 0").schema

    def register_function(
        self, name: str, fn: VectorFunction, arg_types: Sequence[pa.DataType], return_type: pa.DataType
    ) -> None:
        with contextlib.suppress(duckdb.Error):
            self._con.remove_function(name)
        self._con.create_function(
            name,
            fn,
            [_duck_type(t) for t in arg_types],
            _duck_type(return_type),
            type=duckdb_func.ARROW,
            null_handling=duckdb_func.SPECIAL,
            side_effects=False,
        )

    def close(self) -> None:
        self._con.close()

    def _run(self, query: str) -> duckdb.DuckDBPyConnection | None:
        try:
            return self._con.execute(query)
        except duckdb.Error as e:
            first = redact(str(e).splitlines()[0]) if str(e) else type(e).__name__
            raise EngineError(f"DuckDB refused the query ({first}); SQL:\n{query}") from e


def _duck_type(t: pa.DataType) -> str:
    try:
        return _DUCKDB_TYPES[t]
    except KeyError as e:
        raise ValueError(f"no DuckDB type for Arrow type {t}") from e


def _sql_literal(text: str) -> str:
    return text.replace("'", "''")
