"""SQLite connections for the state files, one per thread (the web app serves from a thread pool)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from urllib.parse import quote

_MMAP_BYTES = 1 << 32


class ThreadLocalSQLite:
    """Hands each thread its own connection to one database file; transactions never collide.

    Writable databases use WAL. ``read_only`` opens a file that never changes in place
    (it is replaced by renaming a new one over it) as immutable: no locking, no journal.
    """

    def __init__(self, path: Path, foreign_keys: bool = False, read_only: bool = False) -> None:
        self.path = path
        self._foreign_keys = foreign_keys
        self._read_only = read_only
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._read_only:
            uri = f"file:{quote(str(Path(self.path).resolve()))}?mode=ro&immutable=1"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")  # reads are memory accesses, not read() calls
            return conn
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        if self._foreign_keys:
            conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._guard:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
