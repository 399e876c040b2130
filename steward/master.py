"""Read access to the published master for the web app: reopens when a new version is published."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from mdm.errors import MdmError


class MasterReader:
    """One read-only DuckDB connection to the current master version, shared by request threads.

    Each request takes its own cursor; when ``CURRENT`` names a new version the next
    request opens it (the old connection is closed once no cursor uses it).
    """

    def __init__(self, master_dir: Path, key: bytes | None = None) -> None:
        self.master_dir = Path(master_dir)
        self._key = key
        self._lock = threading.Lock()
        self._version: str | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._catalog: str | None = None

    def _pointer(self) -> str | None:
        try:
            return (self.master_dir / "CURRENT").read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def version_name(self) -> str | None:
        return self._pointer()

    def _connection(self) -> duckdb.DuckDBPyConnection:
        version = self._pointer()
        if version is None:
            raise MdmError(f"no master is published under {self.master_dir} yet; run `mdm run` first")
        with self._lock:
            if self._con is None or version != self._version:
                from pipelines.publish import connect_version

                # The old connection is dropped, not closed: requests still holding its cursors finish first.
                con = connect_version(self.master_dir, version, self._key)
                row = con.execute("SELECT current_database()").fetchone()
                # the shared connection is only touched here, under the lock; requests use cursors
                self._con, self._version, self._catalog = con, version, (str(row[0]) if row else None)
            return self._con

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = self._connection()
        with self._lock:
            cur = con.cursor()
            catalog = self._catalog
        if catalog is not None:
            # a cursor starts in the default catalog; the (possibly encrypted) master is attached by name
            cur.execute(f'USE "{catalog}"')
        try:
            yield cur
        finally:
            cur.close()

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None
