"""The analyst mart: the master with personal data masked and tokenized, published like the master.

Layout under ``mart_dir`` (e.g. ``data/mart/``)::

    CURRENT                      name of the current mart version (switched with os.replace)
    versions/<version>/          <table>.parquet, mart.duckdb, manifest.json

Every master table found in the version folder is passed through
:func:`validators.masking.mask_table`: ID numbers, phones, names and e-mails appear only
masked and as keyed tokens, addresses down to the district, ``quarantine.raw_text`` and
every column the masking config does not classify are dropped. ``customer_360`` adds
per-customer counts by source system.

Tables are masked and written in chunks of rows (:func:`validators.masking.mask_chunks`),
streamed to each table's Parquet file and to ``mart.duckdb``: the build's own memory stays
about the same whatever the size of the master (1M records: 1.5-1.9 GB above its start when
whole masked tables and a memo of every token were held, 0.4 GB chunked). A master table the
caller does not hand over in memory is streamed from its (encrypted) Parquet file a chunk at
a time too (:func:`mdm.crypto.iter_parquet_batches`), never read whole; only the narrow
``customer_xref`` is, for ``customer_360``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import json
import logging
import os
import queue
import re
import shutil
from collections.abc import Generator, Iterator, Mapping, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from mdm.crypto import (
    PARQUET_OPTIONS,
    EnvelopeWriter,
    FileDigest,
    HashingSink,
    connect_duckdb,
    iter_parquet_batches,
    open_parquet,
    read_parquet_any,
)
from mdm.errors import MdmError
from schemas.masking import MaskingConfig
from validators.masking import MASK_CHUNK_ROWS, mask_chunks

log = logging.getLogger(__name__)

__all__ = ["MART_DB", "MartNotFoundError", "build_mart", "current_mart", "customer_360"]

MART_DB = "mart.duckdb"
MANIFEST = "manifest.json"
CURRENT = "CURRENT"
PARTIAL = ".partial"
_IDENT = re.compile(r"[^a-z0-9_]+")
# Rows masked, written and loaded at a time: as many as hold about MART_CHUNK_BYTES of the master
# table (the 1M-record source_records, about 615 bytes a row: 54,500 rows; golden_customer 44,500),
# at most MART_CHUNK_ROWS (a Parquet row group of pyarrow's default size): narrow tables (the xref,
# the links) keep large row groups, which compress as before. 1M records, the build's peak above
# its start: 400-420 MB with 65,536 rows of every table, 440-490 MB with 40 MiB, 410 MB with 32 MiB.
MART_CHUNK_BYTES = 32 << 20
MART_CHUNK_ROWS = 1 << 20
# DuckDB's memory while loading the mart and computing customer_360: finished blocks are written
# out as they fill, and beyond it DuckDB spills (1M records, build's peak above its start: 256 MB
# gave 540 MB, 128 MB 410 MB, 64 MB 350 MB; 128 MB leaves room for wider tables).
MART_DB_MEMORY = "128MB"


class MartNotFoundError(MdmError):
    """No analyst mart has been built yet."""


def current_mart(mart_dir: Path) -> Path:
    """Folder of the current mart version; MartNotFoundError before the first build."""
    pointer = Path(mart_dir) / CURRENT
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise MartNotFoundError(
            f"no analyst mart under {mart_dir} yet; it is built after each published run (`mdm run`)"
        ) from None
    path = Path(mart_dir) / "versions" / name
    if not name or not (path / MANIFEST).is_file():
        raise MartNotFoundError(f"{pointer} names mart version {name!r}, which is missing or incomplete")
    return path


def _customer_360_sql(con: duckdb.DuckDBPyConnection) -> tuple[str, list[str]]:
    """The customer_360 query over the registered xref ``x`` and its parameters.

    The same values as ``count(DISTINCT source_system)`` and ``list(DISTINCT source_system ORDER
    BY source_system)`` per golden ID (a missing system is listed once, last, and not counted),
    but built from one count per system: a list or distinct-set aggregate holds its values
    per golden ID and cannot spill, which at 6M golden IDs overran a bounded DuckDB; counts are
    fixed-size states that can.
    """
    systems = [
        r[0] for r in con.execute("SELECT DISTINCT source_system FROM x ORDER BY 1").fetchall() if r[0] is not None
    ]
    counts = "".join(f", count(*) FILTER (WHERE source_system = ?) AS c{i}" for i in range(len(systems)))
    n_systems = " + ".join(f"CAST(c{i} > 0 AS BIGINT)" for i in range(len(systems))) or "CAST(0 AS BIGINT)"
    present = (
        (
            f"list_filter(list_value({', '.join(f'CASE WHEN c{i} > 0 THEN ? END' for i in range(len(systems)))}), "
            "s -> s IS NOT NULL)"
        )
        if systems
        else "CAST([] AS VARCHAR[])"
    )
    per_system = "".join(f', c{i} AS "n_{_IDENT.sub("_", str(s).lower())}"' for i, s in enumerate(systems) if s)
    sql = (
        f"SELECT golden_id, n_records, {n_systems} AS n_systems, "
        f"CASE WHEN c_null > 0 THEN list_append(p, NULL) ELSE p END AS systems{per_system} "
        f"FROM (SELECT *, {present} AS p FROM ("
        "SELECT golden_id, count(*) AS n_records, count(*) FILTER (WHERE source_system IS NULL) AS c_null"
        f"{counts} FROM x GROUP BY golden_id)) ORDER BY golden_id"
    )
    return sql, [*systems, *systems]  # the ? in ``present``, then in ``counts``


def _customer_360_batches(con: duckdb.DuckDBPyConnection, xref: pa.Table, batch_rows: int) -> pa.RecordBatchReader:
    """customer_360 of ``xref`` as a stream of record batches from ``con`` (which must stay open while read)."""
    con.register("x", xref.select(["golden_id", "source_system"]))
    sql, params = _customer_360_sql(con)
    return con.execute(sql, params).fetch_record_batch(batch_rows)


def customer_360(xref: pa.Table) -> pa.Table:
    """Per golden ID: number of source records, of systems, the systems, and ``n_<system>`` counts."""
    con = duckdb.connect()
    try:
        return _customer_360_batches(con, xref, MASK_CHUNK_ROWS).read_all()
    finally:
        con.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _version_name(root: Path, base: str) -> str:
    name, n = base, 1
    while (root / name).exists():
        n += 1
        name = f"{base}-r{n}"
    return name


def _prune(root: Path, keep: int, current: str) -> None:
    versions = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.endswith(PARTIAL) and (p / MANIFEST).is_file()),
        key=lambda p: p.stat().st_mtime,
    )
    for old in versions[:-keep]:
        if old.name != current:
            shutil.rmtree(old, ignore_errors=True)


def _write_customer_360(
    database: _MartDatabase, xref: pa.Table, path: Path, key: bytes | None, spill: Path, chunk_rows: int
) -> tuple[tuple[int, list[str]], FileDigest]:
    """customer_360 of the (unmasked) xref streamed from its own bounded DuckDB into the mart."""
    con = duckdb.connect()
    try:
        _bounded(con, MART_DB_MEMORY, spill / "customer_360", encrypt=key is not None)
        reader = _customer_360_batches(con, xref, chunk_rows)
        chunks = (pa.Table.from_batches([batch]) for batch in reader)
        rows, digest = _write_table(database, "customer_360", reader.schema, chunks, path, key)
        return (rows, reader.schema.names), digest
    finally:
        con.close()


class _ParquetOut:
    """One mart table's Parquet file written chunk by chunk (a row group each), zstd, sealed in an
    envelope when ``key`` is given: the table is never held whole. The file is inside the
    partial version folder, which is renamed into place (and fsynced) only once complete."""

    def __init__(self, path: Path, schema: pa.Schema, key: bytes | None) -> None:
        self._file = path.open("wb")
        self._sink: EnvelopeWriter | HashingSink = (
            EnvelopeWriter(self._file, key) if key is not None else HashingSink(self._file)
        )
        self._writer = pq.ParquetWriter(pa.PythonFile(self._sink, mode="w"), schema, **PARQUET_OPTIONS)
        self.rows = 0

    def write(self, chunk: pa.Table) -> None:
        self._writer.write_table(chunk)
        self.rows += chunk.num_rows

    def finish(self) -> FileDigest:
        self._writer.close()
        digest = self._sink.finish() if isinstance(self._sink, EnvelopeWriter) else self._sink.result()
        self._file.close()
        return digest

    def close(self) -> None:
        """Release the file after a failure (the partial folder is removed by the next build)."""
        with contextlib.suppress(Exception):
            self._writer.close()
        self._file.close()


class _MartDatabase:
    """The mart's DuckDB file, each table loaded from a stream of record batches.

    DuckDB pulls the batches as it loads (on a loader thread, while the next chunk is masked),
    so no table is ever held whole. Its buffer pool is bounded and spills to a folder beside
    the versions (removed when the build ends); rows keep no meaningful order in SQL (readers
    ORDER BY), so DuckDB need not preserve the input order either.
    """

    def __init__(self, path: Path, key: bytes | None, spill: Path) -> None:
        self.path = path
        self._spill = spill
        self._con: duckdb.DuckDBPyConnection | None = connect_duckdb(path, key, read_only=False)
        _bounded(self._con, MART_DB_MEMORY, spill, encrypt=key is not None)
        self._con.execute("SET preserve_insertion_order = false")
        # one loading thread: the other core masks the next chunk meanwhile; a second one only held
        # another row group in the making (1M-record source_records: 260 instead of 410 MB, same time)
        self._con.execute("SET threads = 1")

    def load(self, name: str, batches: pa.RecordBatchReader) -> None:
        if self._con is None:
            raise RuntimeError(f"{self.path}: the mart database is closed")
        self._con.register("_mart_src", batches)
        try:
            self._con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _mart_src')
        finally:
            self._con.unregister("_mart_src")

    def commit(self) -> None:
        if self._con is None:
            raise RuntimeError(f"{self.path}: the mart database is closed")
        try:
            self._con.execute("CHECKPOINT")
        finally:
            self.close()

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        Path(str(self.path) + ".wal").unlink(missing_ok=True)
        shutil.rmtree(self._spill, ignore_errors=True)


def _bounded(con: duckdb.DuckDBPyConnection, memory_limit: str, spill: Path, encrypt: bool) -> None:
    """A DuckDB connection with a bounded buffer pool spilling to ``spill`` (not the working
    directory), encrypted when the mart is."""
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET temp_directory = '{_sql_text(str(spill))}'")
    if encrypt:
        con.execute("SET temp_file_encryption = true")


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


def _write_table(
    database: _MartDatabase, name: str, schema: pa.Schema, chunks: Iterator[pa.Table], path: Path, key: bytes | None
) -> tuple[int, FileDigest]:
    """Stream ``chunks`` (of ``schema``) into the mart database as table ``name`` and into its Parquet
    file at ``path``; the rows written and the file's digest.

    The chunks are made (masked) on this thread while a loader thread writes the previous ones
    to Parquet and DuckDB (both release the GIL): the two cores overlap, and at most
    :data:`_IN_FLIGHT` chunks wait between them. An error on either side stops both and is
    raised here as it was raised.
    """
    loader = _Loader(_ParquetOut(path, schema, key))
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mart-load") as pool:
            loading = pool.submit(database.load, name, pa.RecordBatchReader.from_batches(schema, loader.batches()))
            try:
                for chunk in chunks:
                    loader.hand_over(chunk, loading)
                    del chunk
                loader.hand_over(None, loading)
            except BaseException as e:
                with contextlib.suppress(Exception):
                    loader.hand_over(e, loading)  # stops the loader (unless it stopped first)
                with contextlib.suppress(Exception):
                    loading.result()
                raise
            loader.result(loading)
        digest = loader.out.finish()
    finally:
        loader.out.close()
    return loader.out.rows, digest


_IN_FLIGHT = 1  # chunks queued for the loader besides the one it is writing


class _Loader:
    """The loader thread's side of one table: chunks from a bounded queue, each written to the
    Parquet file and its batches handed to DuckDB (which pulls them)."""

    def __init__(self, out: _ParquetOut) -> None:
        self.out = out
        self._feed: queue.Queue[pa.Table | BaseException | None] = queue.Queue(maxsize=_IN_FLIGHT)
        # raised while writing a chunk: DuckDB itself only reports that the Arrow stream failed
        self._error: BaseException | None = None

    def batches(self) -> Iterator[pa.RecordBatch]:
        while (item := self._feed.get()) is not None:
            if isinstance(item, BaseException):
                raise RuntimeError("the mart chunks stopped") from item  # abandons the load
            try:
                self.out.write(item)
            except BaseException as e:
                self._error = e
                raise
            yield from item.to_batches()

    def hand_over(self, item: pa.Table | BaseException | None, loading: Future[None]) -> None:
        """Queue ``item`` for the loader; raise the loader's error if it stopped meanwhile."""
        while True:
            try:
                self._feed.put(item, timeout=0.2)
                return
            except queue.Full:
                if loading.done():
                    self.result(loading)
                    raise RuntimeError("the mart loader stopped before taking every chunk") from None

    def result(self, loading: Future[None]) -> None:
        """Wait for the load; its error as raised (not as DuckDB reports a failed stream)."""
        try:
            loading.result()
        except Exception:
            if self._error is not None:
                raise self._error from None
            raise


def chunk_rows_for(table: pa.Table, chunk_bytes: int | None = None, most: int | None = None) -> int:
    """Rows of ``table`` holding about ``chunk_bytes`` (:data:`MART_CHUNK_BYTES`) at its average row
    size, at least 1 and at most ``most`` (:data:`MART_CHUNK_ROWS`)."""
    return _rows_for(table.nbytes / max(table.num_rows, 1), chunk_bytes, most)


_SAMPLE_ROWS = 8192  # rows of a file whose size in memory stands for its rows' (chunk_rows_for_file)


def chunk_rows_for_file(
    path: Path, key: bytes | None, chunk_bytes: int | None = None, most: int | None = None
) -> int:
    """:func:`chunk_rows_for` of the table in a Parquet file (plain or enveloped, opened with ``key``),
    at the row size of its first :data:`_SAMPLE_ROWS` rows as read (the file is not read whole).

    Not from the file's metadata: its uncompressed sizes are those of the encoded pages, where
    repetitive text (systems, regions, statuses) is dictionary-encoded and weighs a few bytes a
    row instead of its length once read. On a generated 30,000-record master (tests/test_mart_stream.py)
    the metadata made chunks 1.3-2 times :data:`MART_CHUNK_BYTES`; the first rows came within 1%.
    """
    with open_parquet(path, key) as file:
        sample = next(iter(file.iter_batches(batch_size=_SAMPLE_ROWS)), None)
    per_row = sample.nbytes / sample.num_rows if sample is not None else 0.0
    return _rows_for(per_row, chunk_bytes, most)


def _rows_for(per_row: float, chunk_bytes: int | None, most: int | None) -> int:
    chunk_bytes = MART_CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    most = MART_CHUNK_ROWS if most is None else most
    return max(1, min(most, int(chunk_bytes / per_row) if per_row else most))


def _whole_source(
    file: Path, held: object, key: bytes | None, chunk_rows: int | None
) -> tuple[pa.Table | None, int]:
    """The master table of ``file`` when it is held whole (``held``, or ``customer_xref``, which
    :func:`customer_360` needs whole and is read whole: it is narrow), else None (it is streamed);
    and the rows to mask at a time (``chunk_rows``, else from the table's row size)."""
    table = held if isinstance(held, pa.Table) else None
    if table is None and file.stem == "customer_xref":
        table = read_parquet_any(file, key)
    if chunk_rows:
        return table, chunk_rows
    return table, chunk_rows_for(table) if table is not None else chunk_rows_for_file(file, key)


def _source_parts(
    file: Path, held: pa.Table | None, key: bytes | None, chunk_rows: int
) -> Generator[pa.Table, None, None]:
    """A master table to mask: ``held`` whole when given, else the file's rows ``chunk_rows`` at a time,
    read in bounded memory (an empty file: one empty table, which still carries the schema).

    Close it when done (a generator): that closes the file even when the build stops early.
    """
    if held is not None:
        yield held
        return
    empty = True
    for batch in iter_parquet_batches(file, key, chunk_rows):
        empty = False
        yield pa.Table.from_batches([batch])
    if empty:
        with open_parquet(file, key) as source:
            yield source.schema_arrow.empty_table()


def _masked_chunks(
    parts: Iterator[pa.Table], config: MaskingConfig, key: bytes, chunk_rows: int
) -> tuple[pa.Schema, list[str], Iterator[pa.Table]]:
    """The masked schema, the columns removed, and the masked chunks of ``parts`` (each masked
    ``chunk_rows`` rows at a time; the first chunk is masked here, for its schema).

    A part of at most ``chunk_rows`` rows is one chunk, so a table streamed from its file is cut
    where the same table held in memory would be: the mart comes out the same either way.
    """
    chunks = (masked for part in parts for masked in mask_chunks(part, config, key, chunk_rows))
    first, dropped = next(chunks)
    return first.schema, dropped, itertools.chain([first], (chunk for chunk, _ in chunks))


def build_mart(
    master_version_dir: Path,
    mart_dir: Path,
    config: MaskingConfig,
    token_key: bytes,
    *,
    master_key: bytes | None = None,
    mart_key: bytes | None = None,
    keep_versions: int = 3,
    master_tables: Mapping[str, pa.Table] | None = None,
    chunk_rows: int | None = None,
) -> Path:
    """Build the analyst mart from one published master version and make it current; return its folder.

    ``master_key`` opens an encrypted master; ``mart_key`` (optional) encrypts the mart too.
    ``master_tables``: that version's tables already in memory (as published), so the files
    are not read and decrypted again; only tables with a file in the version are used. A
    mutable mapping is consumed: each table is removed from it once masked, so the caller's
    copy is freed as the build goes (peak memory). A table not held is streamed from its file
    ``chunk_rows`` rows at a time (decrypted segment by segment), never held whole; only
    ``customer_xref``, which :func:`customer_360` needs whole, is read whole (it is narrow).
    Either way the mart is the same.

    Each table is masked ``chunk_rows`` rows at a time (by default as many as hold about
    :data:`MART_CHUNK_BYTES` of it, :func:`chunk_rows_for`; for a file, at the row size of its
    first rows: :func:`chunk_rows_for_file`) and each chunk goes straight to the
    table's Parquet file and to ``mart.duckdb``, so the build's own memory does not grow with
    the master: no masked table, and no memo of tokens, is ever held whole (a chunk's distinct
    values are hashed afresh, which costs less than looking them up in a run-wide memo).
    """
    master_version_dir, mart_dir = Path(master_version_dir), Path(mart_dir)
    if not token_key:
        raise MdmError("the analyst mart needs a token key: set MDM_TOKEN_KEY")
    sources = sorted(master_version_dir.glob("*.parquet"))
    if not sources:
        raise MartNotFoundError(f"{master_version_dir} holds no master tables (*.parquet)")
    root = mart_dir / "versions"
    root.mkdir(parents=True, exist_ok=True)
    name = _version_name(root, master_version_dir.name)
    partial = root / (name + PARTIAL)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    spill = mart_dir / f".spill-{os.getpid()}"  # DuckDB's spill files, beside the versions: never published
    shutil.rmtree(spill, ignore_errors=True)
    spill.mkdir(mode=0o700)
    dropped_report: dict[str, list[str]] = {}
    shapes: dict[str, tuple[int, list[str]]] = {}
    digests: dict[str, FileDigest] = {}
    in_memory: MutableMapping[str, pa.Table] = (
        master_tables if isinstance(master_tables, MutableMapping) else dict(master_tables or {})
    )
    try:
        database = _MartDatabase(partial / MART_DB, mart_key, spill / "mart")
        try:
            # One table at a time, largest first: the biggest tables the caller hands over are freed earliest.
            for file in sorted(sources, key=lambda f: -f.stat().st_size):
                table, rows_at_a_time = _whole_source(file, in_memory.pop(file.stem, None), master_key, chunk_rows)
                with contextlib.closing(_source_parts(file, table, master_key, rows_at_a_time)) as parts:
                    schema, dropped, chunks = _masked_chunks(parts, config, token_key, rows_at_a_time)
                    if dropped:
                        dropped_report[file.stem] = dropped
                        log.info("mart: table %s without column(s) %s", file.stem, ", ".join(dropped))
                    rows, digests[f"{file.stem}.parquet"] = _write_table(
                        database, file.stem, schema, chunks, partial / f"{file.stem}.parquet", mart_key
                    )
                    shapes[file.stem] = (rows, schema.names)
                    del chunks
                if file.stem == "customer_xref":
                    shapes["customer_360"], digests["customer_360.parquet"] = _write_customer_360(
                        database, table, partial / "customer_360.parquet", mart_key, spill, rows_at_a_time
                    )
                del table
            database.commit()
        finally:
            database.close()
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    digests[MART_DB] = FileDigest((partial / MART_DB).stat().st_size, _sha256(partial / MART_DB))
    manifest = {
        "version": name,
        "master_version": master_version_dir.name,
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "encrypted": mart_key is not None,
        "tables": {t: {"rows": rows, "columns": cols} for t, (rows, cols) in sorted(shapes.items())},
        "dropped_columns": dropped_report,
        "files": {name: {"bytes": d.size, "sha256": d.sha256} for name, d in sorted(digests.items())},
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    for f in partial.iterdir():
        _fsync(f)
    _fsync(partial)
    os.rename(partial, root / name)
    _fsync(root)
    tmp = mart_dir / f".{CURRENT}.{os.getpid()}.tmp"
    tmp.write_text(name + "\n", encoding="utf-8")
    _fsync(tmp)
    os.replace(tmp, mart_dir / CURRENT)
    _fsync(mart_dir)
    _prune(root, max(1, keep_versions), name)
    log.info("analyst mart %s built from master %s (%d tables)", name, master_version_dir.name, len(shapes))
    return root / name
