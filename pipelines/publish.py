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
import json
import logging
import os
import re
import shutil
import socket
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from mdm.crypto import connect_duckdb, read_parquet_any
from mdm.errors import MdmError, PublishError, RunLockedError
from mdm.fsutil import fsync_dir, fsync_file
from pipelines.version_files import DUCKDB_FILE, DUCKDB_LAYOUT, DuckDBLayout, VersionFiles, sha256_file
from schemas.master import MASTER_TABLES, REQUIRED_TABLES, conform_table, empty_table

log = logging.getLogger(__name__)

__all__ = [
    "DUCKDB_FILE",
    "DUCKDB_LAYOUT",
    "DuckDBLayout",
    "MasterNotFoundError",
    "PendingVersion",
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
CURRENT = "CURRENT"
LOCK = ".lock"
PARTIAL = ".partial"
DELETING = ".deleting"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


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
        if not file.is_file() or file.stat().st_size != meta["bytes"] or sha256_file(file) != meta["sha256"]:
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


def conform_tables(
    tables: Mapping[str, pa.Table | pd.DataFrame], staged: frozenset[str] = frozenset()
) -> dict[str, pa.Table]:
    """Every master table checked against its schema and cast to it (missing optional tables empty).

    ``staged``: tables already handed to the version (:meth:`PendingVersion.stage`), neither
    required here nor filled in.
    """
    unknown = sorted(set(tables) - set(MASTER_TABLES))
    if unknown:
        raise PublishError(f"unknown master table(s) {', '.join(unknown)}; schemas/master.py lists the tables")
    twice = sorted(set(tables) & staged)
    if twice:
        raise PublishError(f"table(s) {', '.join(twice)} were staged already and are given again")
    missing = [t for t in REQUIRED_TABLES if t not in tables and t not in staged]
    if missing:
        raise PublishError(f"cannot publish without table(s) {', '.join(missing)}")
    return {
        name: conform_table(spec, tables[name]) if name in tables else empty_table(spec)
        for name, spec in MASTER_TABLES.items()
        if name not in staged
    }


def _refuse_emptied(tables: Mapping[str, object]) -> None:
    """An empty dict is most likely one a publish already consumed: say so rather than "missing tables"."""
    if not tables and isinstance(tables, MutableMapping):
        raise PublishError(
            "no tables to publish: the mapping is empty (publish_master empties a dict it is given, "
            "so a second attempt needs the tables again)"
        )


def _check_publish_args(run_id: str, keep_versions: int) -> None:
    if not _RUN_ID.match(run_id) or run_id.endswith((PARTIAL, DELETING)):
        raise PublishError(f"run id {run_id!r} is not a valid version name (letters, digits, '.', '_', '-')")
    if keep_versions < 1:
        raise PublishError("keep_versions must be at least 1")


class PendingVersion:
    """Version ``run_id`` being written under ``versions/<run_id>.partial``, published by :meth:`publish`.

    Opening it takes the run lock (held until it is published or aborted), removes the leftovers
    of interrupted publishes and refuses a run id already published. :meth:`stage` hands a table
    over early: it is written on a background thread while the run goes on
    (:class:`pipelines.version_files.VersionFiles`). :meth:`publish` writes the rest and makes the
    version current. Use as a context manager: leaving the block unpublished aborts and removes
    the ``.partial`` folder; the previous master is untouched either way.
    """

    def __init__(self, master_dir: Path, run_id: str, keep_versions: int, key: bytes | None = None) -> None:
        _check_publish_args(run_id, keep_versions)
        self.master_dir = Path(master_dir)
        self.run_id = run_id
        self._keep_versions = keep_versions
        self._shapes: dict[str, tuple[int, list[str]]] = {}  # per table: rows and columns, for the manifest
        self._published: Path | None = None
        self._stack = ExitStack()
        self._stack.enter_context(master_lock(self.master_dir))
        try:
            self._root = _versions_dir(self.master_dir)
            self._root.mkdir(parents=True, exist_ok=True)
            _clean_leftovers(self._root)
            if (self._root / run_id).exists():
                raise PublishError(f"version {run_id} is already published; every run needs a new run id")
            self._partial = self._root / (run_id + PARTIAL)
            self._partial.mkdir()
            self._stack.callback(self._remove_partial)
            self._files = self._stack.enter_context(VersionFiles(self._partial, key))
        except BaseException:
            self._stack.close()
            raise

    @property
    def staged(self) -> frozenset[str]:
        """The tables handed over with :meth:`stage`."""
        return self._files.staged

    def stage(self, name: str, table: pa.Table | pd.DataFrame) -> None:
        """Check ``table`` against its master schema now and write it on a background thread.

        Keep no other reference to the table if it is to be freed once written; a write that
        fails is raised by :meth:`publish`.
        """
        if name not in MASTER_TABLES:
            raise PublishError(f"unknown master table {name}; schemas/master.py lists the tables")
        conformed = conform_table(MASTER_TABLES[name], table)
        self._shapes[name] = (conformed.num_rows, conformed.column_names)
        self._files.stage(name, conformed)

    def publish(self, tables: Mapping[str, pa.Table | pd.DataFrame]) -> Path:
        """Publish the staged tables and ``tables`` as this version, make it current; the version folder.

        Every table is checked against its schema before anything more is written. A mutable
        mapping (a dict) is then consumed: the caller's mapping is emptied and each table dropped
        as soon as its Parquet file is written and its DuckDB load done, so the master is not held
        whole through the publish (at 10M records: 12-16 GB). Read what is needed afterwards from
        the version. A read-only Mapping is left as it is.
        """
        if self._published is not None:
            raise PublishError(f"version {self.run_id} is already published")
        _refuse_emptied(tables)
        conformed = conform_tables(tables, self.staged)
        return self._publish_conformed(conformed, tables if isinstance(tables, MutableMapping) else None)

    def _publish_conformed(self, conformed: dict[str, pa.Table], consume: MutableMapping[str, object] | None) -> Path:
        self._shapes.update((name, (t.num_rows, t.column_names)) for name, t in conformed.items())
        shapes = {name: self._shapes[name] for name in MASTER_TABLES if name in self._shapes}
        if consume is not None:
            consume.clear()  # the caller's references go: each table is freed once written
        digests = self._files.write(conformed)
        del conformed
        sequence = max((v.sequence for v in list_versions(self.master_dir)), default=0) + 1
        manifest = {
            "run_id": self.run_id,
            "sequence": sequence,
            "published_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            "tables": {
                name: {"rows": rows, "file": f"{name}.parquet", "columns": columns}
                for name, (rows, columns) in shapes.items()
            },
            "files": {name: {"bytes": d.size, "sha256": d.sha256} for name, d in sorted(digests.items())},
        }
        partial = self._partial
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        fsync_file(partial / MANIFEST)
        fsync_dir(partial)
        final = self._root / self.run_id
        os.rename(partial, final)
        self._published = final
        fsync_dir(self._root)
        _write_text_atomic(self.master_dir / CURRENT, self.run_id + "\n")
        log.info(
            "published master version %s (%d golden customers, %d source records)",
            self.run_id,
            shapes["golden_customer"][0],
            shapes["customer_xref"][0],
        )
        try:
            _prune(self.master_dir, self._keep_versions)
        except OSError as e:  # the new version is published; a failed clean-up must not hide that
            log.warning("retention could not remove old versions (%s); the next publish retries", e)
        self.close()
        return final

    def _remove_partial(self) -> None:
        if self._published is None and self._partial.exists():
            _remove_tree(self._partial)

    def close(self) -> None:
        """Abort unless published (the staged writes are waited for, ``.partial`` removed), release the lock."""
        self._stack.close()

    def __enter__(self) -> PendingVersion:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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

    A mutable mapping (a dict) is consumed once the tables are checked and the version can be
    written (the lock held, the run id new): see :meth:`PendingVersion.publish`. A read-only
    Mapping is left as it is. A refused publish (bad schema, lock held, run id used) leaves the
    mapping as it was; any failure leaves the previous master untouched.
    """
    _check_publish_args(run_id, keep_versions)
    _refuse_emptied(tables)
    conformed = conform_tables(tables)  # schema errors before the lock is taken or anything is written
    with PendingVersion(master_dir, run_id, keep_versions, key) as version:
        return version._publish_conformed(conformed, tables if isinstance(tables, MutableMapping) else None)


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
