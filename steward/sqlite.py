"""SQLite connections for the state files, one per thread (the web app serves from a thread pool)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class ThreadLocalSQLite:
    """Hands each thread its own connection to one database file (WAL); transactions never collide."""

    def __init__(self, path: Path, foreign_keys: bool = False) -> None:
        self.path = path
        self._foreign_keys = foreign_keys
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()

    @property
    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            if self._foreign_keys:
                conn.execute("PRAGMA foreign_keys=ON")
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
