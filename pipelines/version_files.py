"""The files of one master version: every table as Parquet, and all of them in ``master.duckdb``.

:class:`VersionFiles` writes them into a folder (the version's ``.partial`` folder: publishing it
is :mod:`pipelines.publish`'s job). A table can be handed over early with :meth:`VersionFiles.stage`:
it is written on a background thread while the run goes on. The nightly run stages
``source_records`` once the standardized records pass their gates, so its Parquet file and its
DuckDB load run on the core that matching and survivorship leave idle instead of in the publish
step. The other tables come together in :meth:`VersionFiles.write`, which writes them on both
cores, waits for the staged ones, builds the indexes and commits the database.

Every table is dropped as soon as its file and its load are done: the caller hands each one over
(a staged table is referenced by the background job only; the dict given to ``write`` is
consumed), so the master is never held whole while it is written.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from collections.abc import MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from mdm.crypto import DuckDBFileWriter, FileDigest, write_parquet_sealed
from mdm.errors import PublishError

log = logging.getLogger(__name__)

DUCKDB_FILE = "master.duckdb"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DuckDBLayout:
    """How one master table is stored in ``master.duckdb`` for the look-ups that read it there.

    ``order_by``: rows loaded sorted by this column, so DuckDB's zone maps skip the blocks a
    point look-up cannot match (:func:`mdm.crypto.sort_for_zone_maps`); ``indexes``: columns
    given an ART index.
    """

    order_by: str | None = None
    indexes: tuple[str, ...] = ()


# Who reads master.duckdb, and by which columns: steward/evidence.py (the web app while a version
# has no lookup store yet, and `mdm review show` / `export`): golden_customer, golden_id_registry,
# customer_systems and golden_id_events by golden_id, golden_id_events by related_golden_id,
# customer_xref by golden_id and by record_key, match_links by (record_key_l, record_key_r),
# source_records by record_key, and the search fallback by id_number / name_norm /
# name_latin_key / mobile (phones: always a scan). steward/lookup_build.py and the analyst mart
# read whole tables. Analysts query the mart, never this database.
#
# Golden IDs are ``G`` + random symbols: a table sorted by golden_id is pruned by zone maps, a
# point look-up costs 2-3 ms more than through an index at 1M records, so the narrow golden-ID
# tables have none; golden_customer (57 columns, 10-25 ms more without) keeps its index, cheap
# to build on sorted keys. Record keys share long prefixes (``deposit:6100...``), which zone maps
# cannot tell apart, so look-ups by record key keep an index; these tables arrive in (nearly)
# record-key order, which makes it cheap too (0.3 s instead of 2 s at 1M rows). Not indexed: the
# search columns of source_records (the web app searches its lookup store; the fallback scans a
# column in 10-30 ms instead of 1-5 ms) and match_links.record_key_r (no query filters on it
# alone). At 1M records: 6 indexes instead of 14, about 10 s less CPU and a third less file.
DUCKDB_LAYOUT: dict[str, DuckDBLayout] = {
    "golden_customer": DuckDBLayout(order_by="golden_id", indexes=("golden_id",)),
    "customer_xref": DuckDBLayout(indexes=("record_key", "golden_id")),
    "golden_id_registry": DuckDBLayout(order_by="golden_id"),
    "golden_id_events": DuckDBLayout(order_by="golden_id", indexes=("related_golden_id",)),
    "match_links": DuckDBLayout(indexes=("record_key_l",)),
    "customer_systems": DuckDBLayout(order_by="golden_id"),
    "source_records": DuckDBLayout(indexes=("record_key",)),
}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_parquet_file(table: pa.Table, path: Path, key: bytes | None = None) -> FileDigest:
    """Write one table as Parquet, encrypted when ``key`` is given (the single place a master Parquet is written).

    One streaming pass: encrypted page by page and hashed on the way to disk (then fsynced);
    returns the file's size and SHA-256 for the manifest.
    """
    return write_parquet_sealed(table, path, key)


class _HeldTables:
    """The tables of a version being written, each dropped as soon as both its Parquet file is written and
    its DuckDB load is done, so a table is not held for the rest of the publish (at 10M records the master
    tables are several GB). The two parts finish on different threads: one lock."""

    _PARTS = frozenset({"parquet", "duckdb"})

    def __init__(self, tables: MutableMapping[str, pa.Table]) -> None:
        self._tables = tables
        self._left = {name: set(self._PARTS) for name in tables}
        self._lock = threading.Lock()

    def get(self, name: str) -> pa.Table:
        with self._lock:
            return self._tables[name]

    def done(self, name: str, part: str) -> None:
        """``part`` of table ``name`` is written; the table is dropped once every part is."""
        with self._lock:
            left = self._left[name]
            left.discard(part)
            if not left:
                del self._tables[name]


class _TableQueue:
    """The tables not yet handed to a DuckDB loader, largest first; :meth:`stop` hands out no more."""

    def __init__(self, names: list[str]) -> None:
        self._names = deque(names)
        self._lock = threading.Lock()

    def next(self) -> str | None:
        with self._lock:
            return self._names.popleft() if self._names else None

    def stop(self) -> None:
        with self._lock:
            self._names.clear()


def _load_duckdb(writer: DuckDBFileWriter, tables: _HeldTables, queue: _TableQueue) -> None:
    while (name := queue.next()) is not None:
        layout = DUCKDB_LAYOUT.get(name, DuckDBLayout())
        writer.add(name, tables.get(name), layout.indexes, layout.order_by)
        tables.done(name, "duckdb")


class VersionFiles:
    """The Parquet files and the database of one version, written into ``folder`` (which must exist).

    Use as a context manager: leaving the block without :meth:`write` having finished aborts
    (the staged writes are waited for, the database's temporary file removed; the Parquet files
    written so far stay in ``folder`` for its owner to remove).
    """

    def __init__(self, folder: Path, key: bytes | None) -> None:
        self.folder = Path(folder)
        self._key = key
        self._writer = DuckDBFileWriter(self.folder / DUCKDB_FILE, key)
        self._early = ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish-early")
        self._staged: dict[str, Future[FileDigest]] = {}
        self._open = True

    @property
    def staged(self) -> frozenset[str]:
        """The tables handed over with :meth:`stage`."""
        return frozenset(self._staged)

    def stage(self, name: str, table: pa.Table) -> None:
        """Write ``table`` (conformed to its master schema) as table ``name`` now, on a background thread.

        The job holds the only reference this object keeps, and drops it once the Parquet file is
        written and the DuckDB load done. A failure is raised by :meth:`write` (or :meth:`check`).
        """
        if not self._open:
            raise PublishError(f"the files of {self.folder.name} are already written or aborted")
        if name in self._staged:
            raise PublishError(f"table {name} is already staged for {self.folder.name}")
        self._staged[name] = self._early.submit(self._write_staged, name, table)

    def _write_staged(self, name: str, table: pa.Table) -> FileDigest:
        digest = write_parquet_file(table, self.folder / f"{name}.parquet", self._key)
        layout = DUCKDB_LAYOUT.get(name, DuckDBLayout())
        # loaded beside matching, the run's memory peak: no batch copies (mdm.crypto.row_group_batches)
        self._writer.add(name, table, layout.indexes, layout.order_by, whole_row_groups=False)
        rows = table.num_rows
        del table
        shrunk = self._writer.shrink_cache()  # the run goes on for a while: DuckDB's cache need not stay
        log.info("staged table %s written (%d rows; DuckDB's cache %s)", name, rows, "dropped" if shrunk else "kept")
        return digest

    def check(self) -> None:
        """Raise the error of a staged write that has failed (one still running is not waited for)."""
        for future in self._staged.values():
            if future.done():
                future.result()

    def write(self, tables: MutableMapping[str, pa.Table]) -> dict[str, FileDigest]:
        """Write ``tables`` (consumed: each is removed once its file is written and its load done), wait for
        the staged tables, build the indexes and commit the database; the files' sizes and SHA-256.

        A second thread loads the tables into DuckDB, largest first, while this one writes the
        Parquet files and then loads the tables that thread has not started (DuckDB, the Parquet
        writer and the ciphers release the GIL). The database is written only from the Arrow
        tables in memory, never read back. An error in either thread stops the other and is raised
        here; the database is then still a temporary file, so nothing is published.
        """
        if not self._open:
            raise PublishError(f"the files of {self.folder.name} are already written or aborted")
        self.check()  # a staged write that failed stops the publish before more is written
        digests = self._write_tables(tables)
        for name, future in self._staged.items():
            digests[f"{name}.parquet"] = future.result()
        self._early.shutdown(wait=True)
        self._writer.commit()
        self._open = False
        path = self.folder / DUCKDB_FILE
        digests[DUCKDB_FILE] = FileDigest(path.stat().st_size, sha256_file(path))
        return digests

    def _write_tables(self, tables: MutableMapping[str, pa.Table]) -> dict[str, FileDigest]:
        by_size = sorted(tables, key=lambda name: -tables[name].nbytes)
        held = _HeldTables(tables)
        queue = _TableQueue(by_size)
        digests: dict[str, FileDigest] = {}
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish-duckdb") as pool:
            loader = pool.submit(_load_duckdb, self._writer, held, queue)
            try:
                for name in by_size:
                    if loader.done():
                        loader.result()  # the loader failed: stop here with its error
                    path = self.folder / f"{name}.parquet"
                    digests[path.name] = write_parquet_file(held.get(name), path, self._key)
                    held.done(name, "parquet")
                _load_duckdb(self._writer, held, queue)
            except BaseException:
                queue.stop()  # the loader finishes the table it holds and stops
                raise
            finally:
                wait([loader])
            loader.result()
        return digests

    def abort(self) -> None:
        """Stop: the staged writes not started are cancelled, a running one is waited for, the database removed."""
        if not self._open:
            return
        self._open = False
        self._early.shutdown(wait=True, cancel_futures=True)
        self._writer.abort()

    def __enter__(self) -> VersionFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()
