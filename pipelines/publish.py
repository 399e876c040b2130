"""The versioned master: atomic publish, the CURRENT pointer, the run lock, rollback and retention.

Layout under ``master_dir``::

    .lock                     fcntl lock held by the running publisher (holder: pid, start time)
    CURRENT                   name of the published version (switched with os.replace)
    versions/<run_id>/        <table>.parquet for every master table, master.duckdb, manifest.json
    versions/<run_id>.partial a publish in progress (or killed); removed by the next publish

A version is written completely under ``.partial``, fsynced, renamed into place, and only
then named in ``CURRENT``. A run killed at any point leaves the previous version and
``CURRENT`` as they were. Readers open the version ``CURRENT`` names and never see a
half-written one.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import threading
from collections import deque
from collections.abc import Iterator, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from mdm.crypto import DuckDBFileWriter, FileDigest, connect_duckdb, read_parquet_any, write_parquet_sealed
from mdm.errors import MdmError, PublishError, RunLockedError
from mdm.fsutil import fsync_dir, fsync_file
from schemas.master import MASTER_TABLES, REQUIRED_TABLES, conform_table, empty_table

log = logging.getLogger(__name__)

__all__ = [
    "MasterNotFoundError",
    "PreviousMaster",
    "VersionInfo",
    "connect_version",
    "current_version",
    "list_versions",
    "load_previous",
    "master_lock",
    "open_master",
    "publish_master",
    "rollback",
    "verify_version",
]

MANIFEST = "manifest.json"
DUCKDB_FILE = "master.duckdb"
CURRENT = "CURRENT"
LOCK = ".lock"
PARTIAL = ".partial"
DELETING = ".deleting"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CHUNK = 1 << 20


class MasterNotFoundError(MdmError):
    """No master has been published yet (or CURRENT names a version that is gone)."""


@dataclass(frozen=True)
class VersionInfo:
    """A complete published version."""

    name: str
    path: Path
    sequence: int
    published_at: str
    rows: dict[str, int]


@dataclass(frozen=True)
class PreviousMaster:
    """The tables of the current master a new run builds on."""

    version: str
    path: Path
    xref: pd.DataFrame
    registry: pd.DataFrame
    golden: pd.DataFrame
    run_log: pd.DataFrame


# --------------------------------------------------------------------------- file primitives


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


def _sha256(path: Path) -> str:
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


def _load_duckdb(writer: DuckDBFileWriter, tables: _HeldTables, queue: _TableQueue) -> None:
    while (name := queue.next()) is not None:
        layout = DUCKDB_LAYOUT.get(name, DuckDBLayout())
        writer.add(name, tables.get(name), layout.indexes, layout.order_by)
        tables.done(name, "duckdb")


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


def _write_version_files(
    folder: Path, tables: MutableMapping[str, pa.Table], key: bytes | None
) -> dict[str, FileDigest]:
    """Every table as Parquet plus the DuckDB database (:data:`DUCKDB_LAYOUT`), on both cores; ``tables``
    is consumed: each table is removed from it once its file is written and its load done (:class:`_HeldTables`).

    A second thread loads the tables into DuckDB, largest first, while this one writes the
    Parquet files and then loads the tables that thread has not started (DuckDB, the Parquet
    writer and the ciphers release the GIL). The database is written only from the Arrow
    tables in memory, never read back. An error in either thread stops the other and is raised
    here; the folder is still ``.partial`` and the database file a temporary one, so nothing is
    published.
    """
    by_size = sorted(tables, key=lambda name: -tables[name].nbytes)
    held = _HeldTables(tables)
    queue = _TableQueue(by_size)
    digests: dict[str, FileDigest] = {}
    path = folder / DUCKDB_FILE
    with DuckDBFileWriter(path, key) as writer, ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="publish-duckdb"
    ) as pool:
        loader = pool.submit(_load_duckdb, writer, held, queue)
        try:
            for name in by_size:
                if loader.done():
                    loader.result()  # the loader failed: stop here with its error
                digests[f"{name}.parquet"] = write_parquet_file(held.get(name), folder / f"{name}.parquet", key)
                held.done(name, "parquet")
            _load_duckdb(writer, held, queue)
        except BaseException:
            queue.stop()  # the loader finishes the table it holds and stops; the writer then aborts
            raise
        finally:
            wait([loader])
        loader.result()
        writer.commit()
    digests[DUCKDB_FILE] = FileDigest(path.stat().st_size, _sha256(path))
    return digests


def connect_version(master_dir: Path, version: str, key: bytes | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection to one published version's database (decrypted with ``key``)."""
    path = _versions_dir(Path(master_dir)) / version / DUCKDB_FILE
    if not path.is_file():
        raise MasterNotFoundError(f"master version {version!r} has no database under {master_dir}")
    return connect_duckdb(path, key, read_only=True)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


# --------------------------------------------------------------------------- lock

_held: dict[Path, tuple[int, int]] = {}
_held_guard = threading.Lock()


def _holder_text(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096).decode("utf-8", "replace")
    try:
        info = json.loads(raw)
    except ValueError:
        return "holder unknown"
    return f"pid {info.get('pid')}, started {info.get('started_at')} on host {info.get('host')}"


@contextmanager
def master_lock(master_dir: Path) -> Iterator[None]:
    """Hold the exclusive run lock on ``master_dir`` (non-blocking; re-entrant in one process).

    Raises :class:`RunLockedError` naming the holder when another process holds it. The
    lock is an ``flock`` on ``master_dir/.lock``: the kernel frees it when the holder dies.
    """
    master_dir = Path(master_dir)
    master_dir.mkdir(parents=True, exist_ok=True)
    key = master_dir.resolve()
    with _held_guard:
        if key in _held:
            fd, depth = _held[key]
            _held[key] = (fd, depth + 1)
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                fd, depth = _held[key]
                _held[key] = (fd, depth - 1)
        return
    fd = os.open(key / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder_text(fd)
        os.close(fd)
        raise RunLockedError(
            f"another run holds the lock on the master at {key} ({holder}); wait for it to finish. "
            "If that process no longer runs, the lock is already free: just retry."
        ) from None
    try:
        info = {
            "pid": os.getpid(),
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        with _held_guard:
            _held[key] = (fd, 1)
        yield
    finally:
        with _held_guard:
            _held.pop(key, None)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# --------------------------------------------------------------------------- versions


def _versions_dir(master_dir: Path) -> Path:
    return Path(master_dir) / "versions"


def _read_manifest(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def list_versions(master_dir: Path) -> list[VersionInfo]:
    """Every complete version, oldest first (by publish sequence)."""
    root = _versions_dir(master_dir)
    if not root.is_dir():
        return []
    out: list[VersionInfo] = []
    for path in root.iterdir():
        if not path.is_dir() or path.name.endswith((PARTIAL, DELETING)):
            continue
        manifest = _read_manifest(path)
        if manifest is None:
            continue
        tables = manifest.get("tables", {})
        rows = {k: int(v["rows"]) for k, v in tables.items()} if isinstance(tables, dict) else {}
        seq = manifest.get("sequence", 0)
        out.append(
            VersionInfo(
                name=path.name,
                path=path,
                sequence=seq if isinstance(seq, int) else 0,
                published_at=str(manifest.get("published_at", "")),
                rows=rows,
            )
        )
    return sorted(out, key=lambda v: (v.sequence, v.name))


def current_version(master_dir: Path) -> Path | None:
    """Folder of the published version ``CURRENT`` names, or None before the first publish."""
    pointer = Path(master_dir) / CURRENT
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    path = _versions_dir(master_dir) / name
    if not name or _read_manifest(path) is None:
        raise MasterNotFoundError(
            f"{pointer} names version {name!r}, which is missing or incomplete; "
            "run `mdm versions` and `mdm rollback VERSION` to point it at a complete version"
        )
    return path


def verify_version(path: Path) -> None:
    """Check every file of a version against its manifest (size and SHA-256); raise PublishError if not."""
    manifest = _read_manifest(path)
    if manifest is None:
        raise PublishError(f"version {path.name} has no readable manifest; it cannot be used")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise PublishError(f"version {path.name} has a manifest without a file list; it cannot be used")
    for name, meta in files.items():
        file = path / name
        if not file.is_file() or file.stat().st_size != meta["bytes"] or _sha256(file) != meta["sha256"]:
            raise PublishError(f"version {path.name}: file {name} is missing or does not match its checksum")


def open_master(master_dir: Path, read_only: bool = True, key: bytes | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to the current version's ``master.duckdb`` (decrypted with ``key``)."""
    path = current_version(master_dir)
    if path is None:
        raise MasterNotFoundError(f"no master has been published under {master_dir} yet; run `mdm run` first")
    return connect_duckdb(path / DUCKDB_FILE, key, read_only=read_only)


# What a run reads of the previous master: golden IDs are inherited through the xref and the
# registry; survivorship carries first_seen_* over from the previous golden records. At 10M
# records the whole golden_customer table as Python objects would hold several gigabytes.
PREVIOUS_COLUMNS: dict[str, list[str] | None] = {
    "customer_xref": ["record_key", "golden_id"],
    "golden_id_registry": None,
    "golden_customer": ["golden_id", "first_seen_run", "first_seen_date"],
    "run_log": None,
}


def load_previous(master_dir: Path, key: bytes | None = None) -> PreviousMaster | None:
    """What a run needs of the current master (:data:`PREVIOUS_COLUMNS`), or None before the first publish.

    Text stays Arrow-backed (``pd.ArrowDtype``): the xref of 10M records as Python strings
    would cost about 3 GB more.
    """
    path = current_version(master_dir)
    if path is None:
        return None

    def read(table: str) -> pd.DataFrame:
        file = path / f"{table}.parquet"
        columns = PREVIOUS_COLUMNS[table]
        data = read_parquet_any(file, key, columns=columns) if file.is_file() else empty_table(MASTER_TABLES[table])
        if columns is not None:
            data = data.select(columns)
        if table == "run_log":
            return data.to_pandas(date_as_object=False)
        return data.to_pandas(types_mapper=_arrow_text, date_as_object=False)

    return PreviousMaster(
        version=path.name,
        path=path,
        xref=read("customer_xref"),
        registry=read("golden_id_registry"),
        golden=read("golden_customer"),
        run_log=read("run_log"),
    )


def _arrow_text(t: pa.DataType) -> pd.ArrowDtype | None:
    """Text columns as Arrow-backed pandas columns; other types as pandas makes them."""
    return pd.ArrowDtype(t) if pa.types.is_string(t) or pa.types.is_large_string(t) else None


# --------------------------------------------------------------------------- publish


def _remove_tree(path: Path) -> None:
    """Rename out of the way first (atomic), then delete: a kill mid-delete leaves a *.deleting folder."""
    target = path if path.name.endswith(DELETING) else path.with_name(path.name + DELETING)
    if target != path:
        os.rename(path, target)
    shutil.rmtree(target, ignore_errors=True)


def _clean_leftovers(root: Path) -> None:
    for path in root.iterdir():
        if path.is_dir() and path.name.endswith((PARTIAL, DELETING)):
            log.warning("removing leftover folder %s of an interrupted publish", path.name)
            _remove_tree(path)


def _prune(master_dir: Path, keep_versions: int) -> list[str]:
    versions = list_versions(master_dir)
    current = current_version(master_dir)
    keep = {v.name for v in versions[-keep_versions:]}
    if current is not None:
        keep.add(current.name)
    removed = [v.name for v in versions if v.name not in keep]
    for name in removed:
        _remove_tree(_versions_dir(master_dir) / name)
    if removed:
        fsync_dir(_versions_dir(master_dir))
        log.info("retention: removed %d old master version(s): %s", len(removed), ", ".join(removed))
    return removed


def conform_tables(tables: Mapping[str, pa.Table | pd.DataFrame]) -> dict[str, pa.Table]:
    """Every master table checked against its schema and cast to it (missing optional tables empty)."""
    unknown = sorted(set(tables) - set(MASTER_TABLES))
    if unknown:
        raise PublishError(f"unknown master table(s) {', '.join(unknown)}; schemas/master.py lists the tables")
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        raise PublishError(f"cannot publish without table(s) {', '.join(missing)}")
    return {
        name: conform_table(spec, tables[name]) if name in tables else empty_table(spec)
        for name, spec in MASTER_TABLES.items()
    }


def publish_master(
    master_dir: Path,
    run_id: str,
    tables: Mapping[str, pa.Table | pd.DataFrame],
    keep_versions: int,
    key: bytes | None = None,
) -> Path:
    """Publish ``tables`` as version ``run_id`` and make it current; return the version folder.

    Steps: check every table against its schema; write Parquet files, ``master.duckdb`` and
    ``manifest.json`` into ``versions/<run_id>.partial``; fsync; rename to ``versions/<run_id>``;
    switch ``CURRENT`` atomically; prune versions beyond ``keep_versions`` (never the current).

    A mutable mapping (a dict) is consumed: once the tables are checked and the version can be
    written (the lock held, the run id new), the caller's mapping is emptied and publish holds
    the only references, dropping each table as soon as its Parquet file is written and its
    DuckDB load done, so the master is not held whole through the publish (at 10M records:
    12-16 GB). Read what is needed afterwards from the version (its files, the manifest); a
    retry needs the tables again. A read-only Mapping is left as it is (its tables stay held by
    the caller). A failure still leaves only ``.partial``, the previous master untouched.
    """
    if not _RUN_ID.match(run_id) or run_id.endswith((PARTIAL, DELETING)):
        raise PublishError(f"run id {run_id!r} is not a valid version name (letters, digits, '.', '_', '-')")
    if keep_versions < 1:
        raise PublishError("keep_versions must be at least 1")
    if not tables and isinstance(tables, MutableMapping):
        raise PublishError(
            "no tables to publish: the mapping is empty (publish_master empties a dict it is given, "
            "so a second attempt needs the tables again)"
        )
    conformed = conform_tables(tables)
    shapes = {name: (t.num_rows, t.column_names) for name, t in conformed.items()}  # for the manifest
    master_dir = Path(master_dir)
    with master_lock(master_dir):
        root = _versions_dir(master_dir)
        root.mkdir(parents=True, exist_ok=True)
        _clean_leftovers(root)
        final = root / run_id
        if final.exists():
            raise PublishError(f"version {run_id} is already published; every run needs a new run id")
        previous = list_versions(master_dir)
        sequence = (previous[-1].sequence + 1) if previous else 1
        partial = root / (run_id + PARTIAL)
        partial.mkdir()
        if isinstance(tables, MutableMapping):
            tables.clear()  # the caller's references go: each table is freed once written (_HeldTables)
        digests = _write_version_files(partial, conformed, key)
        files: dict[str, dict[str, object]] = {
            name: {"bytes": d.size, "sha256": d.sha256} for name, d in sorted(digests.items())
        }
        manifest = {
            "run_id": run_id,
            "sequence": sequence,
            "published_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            "tables": {
                name: {"rows": rows, "file": f"{name}.parquet", "columns": columns}
                for name, (rows, columns) in shapes.items()
            },
            "files": files,
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        fsync_file(partial / MANIFEST)
        fsync_dir(partial)
        os.rename(partial, final)
        fsync_dir(root)
        _write_text_atomic(master_dir / CURRENT, run_id + "\n")
        log.info(
            "published master version %s (%d golden customers, %d source records)",
            run_id,
            shapes["golden_customer"][0],
            shapes["customer_xref"][0],
        )
        try:
            _prune(master_dir, keep_versions)
        except OSError as e:  # the new version is published; a failed clean-up must not hide that
            log.warning("retention could not remove old versions (%s); the next publish retries", e)
    return final


def rollback(master_dir: Path, version: str | None = None) -> Path:
    """Point ``CURRENT`` at ``version`` (default: the version published before the current one)."""
    master_dir = Path(master_dir)
    with master_lock(master_dir):
        versions = list_versions(master_dir)
        current = current_version(master_dir)
        if version is None:
            if current is None:
                raise MasterNotFoundError(f"no master has been published under {master_dir}; nothing to roll back")
            names = [v.name for v in versions]
            idx = names.index(current.name) if current.name in names else len(names)
            if idx == 0:
                raise PublishError(
                    f"version {current.name} is the oldest kept version; there is nothing earlier to roll back to"
                )
            target = versions[idx - 1]
        else:
            found = [v for v in versions if v.name == version]
            if not found:
                kept = ", ".join(v.name for v in versions) or "none"
                raise PublishError(f"version {version!r} is not a complete published version (kept: {kept})")
            target = found[0]
        verify_version(target.path)
        _write_text_atomic(master_dir / CURRENT, target.name + "\n")
        log.info(
            "rolled the master back from %s to %s", current.name if current is not None else "nothing", target.name
        )
        return target.path
