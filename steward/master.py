"""Read access to the published master for the web app: reopens when a new version is published.

Pages read a version through :meth:`MasterReader.evidence`: from the version's lookup store
when it exists (:mod:`steward.lookup`), else from the master database itself. When the
store is missing (or stale: other key, older layout) the reader can have it built in the
background, in a separate low-priority process, while the pages keep reading the database.
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from mdm.errors import MdmError
from steward.evidence import MasterEvidence
from steward.lookup import LookupStore
from steward.lookup_build import BUSY_EXIT
from steward.views import EvidenceSource

log = logging.getLogger(__name__)

RECHECK_SECONDS = 5.0  # while a version has no lookup store, look for it again this often
REBUILD_AFTER_SECONDS = 60.0  # at most one build started per version this often (another process may build it)
RETRY_AFTER_FAILURE_SECONDS = 600.0


class MasterReader:
    """One read-only DuckDB connection to the current master version, shared by request threads,
    and the version's lookup store once it exists.

    Each request takes its own cursor; when ``CURRENT`` names a new version the next
    request opens it (the old connection is closed once no cursor uses it).
    ``build_lookups``: build a missing lookup store in the background.
    """

    def __init__(self, master_dir: Path, key: bytes | None = None, build_lookups: bool = False) -> None:
        self.master_dir = Path(master_dir)
        self._key = key
        self._build_lookups = build_lookups
        self._lock = threading.Lock()
        self._version: str | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._catalog: str | None = None
        self._lookup: LookupStore | None = None
        self._next_check: dict[str, float] = {}
        self._next_build: dict[str, float] = {}
        self._builders: dict[str, subprocess.Popen[bytes]] = {}

    def _pointer(self) -> str | None:
        try:
            return (self.master_dir / "CURRENT").read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def version_name(self) -> str | None:
        return self._pointer()

    def version_dir(self, version: str) -> Path:
        return self.master_dir / "versions" / version  # the layout pipelines.publish writes

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

    # -- the lookup store ----------------------------------------------------------------------------

    def lookup(self) -> LookupStore | None:
        """The current version's lookup store, or None while it does not exist (a build may be started)."""
        version = self._pointer()
        if version is None:
            return None
        with self._lock:
            store = self._lookup
            if store is not None and store.version == version:
                return store
            now = time.monotonic()
            if now < self._next_check.get(version, -math.inf):
                return None
            self._next_check[version] = now + RECHECK_SECONDS
        store = LookupStore.open(self.version_dir(version), self._key)
        with self._lock:
            if store is not None:
                # Stores of older versions are dropped, not closed: requests still reading them finish first.
                self._lookup = store
                self._next_check.clear()
                log.info("steward pages read master version %s from its lookup store", version)
                return store
            if (self._build_lookups and version not in self._builders
                    and time.monotonic() >= self._next_build.get(version, -math.inf)):
                self._start_build(version)
        return None

    def _start_build(self, version: str) -> None:
        """Build the version's lookup store in a separate low-priority process (the key goes through a pipe)."""
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "steward.lookup_build", "--background", "--key-stdin",
                 str(self.version_dir(version).resolve())],
                stdin=subprocess.PIPE, cwd=Path(__file__).resolve().parent.parent,
            )
        except OSError as e:
            log.warning("cannot start building the lookup store of master version %s: %s", version, e)
            self._next_build[version] = time.monotonic() + RETRY_AFTER_FAILURE_SECONDS
            return
        self._next_build[version] = time.monotonic() + REBUILD_AFTER_SECONDS
        self._builders[version] = proc
        log.info("building the lookup store of master version %s in the background (process %d); pages read "
                 "the master database meanwhile", version, proc.pid)
        threading.Thread(target=self._await_build, args=(version, proc), name=f"lookup-{version}", daemon=True).start()

    def _await_build(self, version: str, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write((self._key or b"").hex().encode() + b"\n")
            proc.stdin.close()
        except OSError:
            pass  # the child is gone already; its exit code says why
        code = proc.wait()
        with self._lock:
            self._builders.pop(version, None)
            now = time.monotonic()
            if code == 0:
                self._next_check.pop(version, None)  # look again on the next request
            elif code == BUSY_EXIT:  # another worker or the nightly run builds it: look for it now and then
                self._next_build[version] = now + REBUILD_AFTER_SECONDS
            else:
                log.warning("building the lookup store of master version %s failed (exit code %d); pages keep "
                            "reading the master database, next attempt in %.0f min", version, code,
                            RETRY_AFTER_FAILURE_SECONDS / 60)
                self._next_build[version] = now + RETRY_AFTER_FAILURE_SECONDS

    @contextmanager
    def evidence(self) -> Iterator[EvidenceSource]:
        """What a page reads the current version from: its lookup store, else the master database."""
        store = self.lookup()
        if store is not None:
            yield store
            return
        with self.cursor() as con:
            yield MasterEvidence(con)

    def close(self) -> None:
        with self._lock:
            builders = list(self._builders.values())
            if self._con is not None:
                self._con.close()
                self._con = None
            if self._lookup is not None:
                self._lookup.close()
                self._lookup = None
        for proc in builders:  # an unfinished build leaves only a temporary file, removed by the next build
            proc.terminate()
        for proc in builders:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if builders:
            log.info("stopped %d unfinished lookup build(s)", len(builders))
