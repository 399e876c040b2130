"""Encryption at rest: the master key, encrypted DuckDB files and encrypted Parquet (and other) files.

Keys come from the environment (``MDM_MASTER_KEY``) or from a Prefect Secret block whose
name is in ``MDM_MASTER_KEY_BLOCK``; never from the repository. Purpose keys are derived
with HKDF-SHA256, so the DuckDB key and the file key differ even though one secret is set.

* **DuckDB files** use DuckDB's own database encryption (AES-GCM, every block). Writing one
  needs the httpfs extension (its crypto module), which the ``duckdb-extension-httpfs``
  package ships and which is loaded from the package folder: no download.
* **Other files** (Parquet, landing files) use an AES-256-GCM envelope (:data:`MAGIC`):
  the plaintext file is cut into 1 MiB segments, each sealed with its own nonce and its
  index and an end marker bound in, so a truncated, reordered or edited file fails to
  open. The header carries a key fingerprint, so a wrong key is told apart from damage.
  Chosen over DuckDB's Parquet encryption because it is authenticated end to end, readable
  with ``cryptography`` + pyarrow alone (no extension, no key in SQL text), rotates by
  streaming bytes without parsing Parquet, and measured faster: 1M rows written in 0.56 s
  (zstd Parquet + envelope) against 1.52 s with ``COPY ... (ENCRYPTION_CONFIG ...)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import logging
import os
import struct
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mdm.errors import SecurityError
from mdm.fsutil import fsync_dir, fsync_file
from schemas.master import plain_schema, plain_values

log = logging.getLogger(__name__)

__all__ = [
    "ENV_MASTER_KEY",
    "ENV_MASTER_KEY_NEW",
    "MAGIC",
    "EnvelopeReader",
    "EnvelopeWriter",
    "FileDigest",
    "connect_duckdb",
    "decrypt_file_bytes",
    "encrypt_bytes_to",
    "is_encrypted",
    "iter_parquet_batches",
    "load_key",
    "open_parquet",
    "read_parquet_encrypted",
    "sort_for_zone_maps",
    "write_duckdb_tables",
    "write_parquet_encrypted",
    "write_parquet_sealed",
]

ENV_MASTER_KEY = "MDM_MASTER_KEY"
ENV_MASTER_KEY_NEW = "MDM_MASTER_KEY_NEW"
MIN_KEY_CHARS = 16
MAGIC = b"MDMENC01"
_HEADER = struct.Struct(">8sB8s8sI")  # magic, version, key fingerprint, nonce prefix, segment size
_SEGMENT = 1 << 20
_TAG = 16
_ROW_GROUP = 1 << 20  # rows per Parquet row group (pyarrow's default)
# A column's dictionary page stops growing at this size and the rest of its row group is stored
# plain. Code columns (a few hundred values) stay well below it; a column of nearly distinct values
# (record keys, ID numbers, addresses) used to build a 1 MiB dictionary first, only to fall back
# anyway. At 1M records: source_records 2.67 -> 2.40 s, golden_customer 1.9 -> 1.6 s (one core),
# and both files a little smaller.
DICTIONARY_PAGE_LIMIT = 64 << 10
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "dictionary_pagesize_limit": DICTIONARY_PAGE_LIMIT}


# --------------------------------------------------------------------------- keys


def load_key(name: str = ENV_MASTER_KEY, required: bool = True) -> bytes | None:
    """The secret in environment variable ``name``, else in the Prefect Secret block named by ``<name>_BLOCK``.

    Raises :class:`SecurityError` naming what to set when ``required`` and no key is found,
    or when the key is shorter than 16 characters.
    """
    value = os.environ.get(name, "")
    source = f"the environment variable {name}"
    if not value:
        block = os.environ.get(f"{name}_BLOCK", "")
        if block:
            value = _secret_block(block, name)
            source = f"the Prefect Secret block {block!r}"
    if not value:
        if required:
            raise SecurityError(
                f"no key found: set the environment variable {name} (at least {MIN_KEY_CHARS} characters, "
                f"e.g. from your key vault) or set {name}_BLOCK to the name of a Prefect Secret block holding it"
            )
        return None
    if len(value) < MIN_KEY_CHARS:
        raise SecurityError(f"the key in {source} is too short; use at least {MIN_KEY_CHARS} random characters")
    return value.encode("utf-8")


def _secret_block(block: str, name: str) -> str:
    try:
        from prefect.blocks.system import Secret

        secret: Any = Secret.load(block)
        value = secret.get()
    except Exception as e:  # prefect raises ValueError, httpx errors, ...
        raise SecurityError(
            f"cannot read the Prefect Secret block {block!r} named by {name}_BLOCK ({type(e).__name__}); "
            f"check the block exists, or set {name} directly"
        ) from e
    return str(value)


def _derive(key: bytes, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"mdm:" + purpose.encode()).derive(key)


def _fingerprint(key: bytes) -> bytes:
    return hmac.new(key, b"mdm key fingerprint", hashlib.sha256).digest()[:8]


def _duckdb_secret(key: bytes) -> str:
    return _derive(key, "duckdb").hex()


def _wrong_key(path: Path, key_name: str) -> SecurityError:
    return SecurityError(
        f"{path} cannot be decrypted with the key in {key_name}; set {key_name} to the key it was written with "
        "(after a rotation: the new key)"
    )


# --------------------------------------------------------------------------- detection


def is_encrypted(path: Path) -> bool:
    """True for an envelope file, an encrypted DuckDB database or a Parquet file with an encrypted footer."""
    try:
        with Path(path).open("rb") as f:
            head = f.read(64)
    except (FileNotFoundError, IsADirectoryError):
        return False
    if head.startswith(MAGIC) or head.startswith(b"PARE"):
        return True
    return len(head) >= 21 and head[8:12] == b"DUCK" and bool(head[20] & 1)


def is_duckdb_file(path: Path) -> bool:
    try:
        with Path(path).open("rb") as f:
            head = f.read(12)
    except (FileNotFoundError, IsADirectoryError):
        return False
    return head[8:12] == b"DUCK"


# --------------------------------------------------------------------------- DuckDB


def _httpfs_path() -> Path:
    try:
        import duckdb_extension_httpfs
    except ModuleNotFoundError as e:
        raise SecurityError(
            f"encrypted DuckDB files need the package duckdb-extension-httpfs=={duckdb.__version__}; "
            "install it into this environment"
        ) from e
    root = Path(duckdb_extension_httpfs.__file__).resolve().parent
    found = sorted(root.glob(f"extensions/v{duckdb.__version__}/*/httpfs.duckdb_extension")) + sorted(
        root.glob(f"extensions/v{duckdb.__version__}/httpfs.duckdb_extension")
    )
    if not found:
        raise SecurityError(
            f"duckdb-extension-httpfs has no extension for duckdb {duckdb.__version__}; "
            f"install duckdb-extension-httpfs=={duckdb.__version__}"
        )
    return found[0]


def load_crypto(con: duckdb.DuckDBPyConnection) -> None:
    """Load the httpfs extension (DuckDB's writable crypto module) into ``con`` from the installed package."""
    path = str(_httpfs_path()).replace("'", "''")
    con.execute(f"LOAD '{path}'")


def attach_encrypted(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    key: bytes,
    alias: str,
    read_only: bool,
    key_name: str = ENV_MASTER_KEY,
) -> None:
    """ATTACH an encrypted database file under ``alias`` (httpfs must be loaded)."""
    file = str(Path(path)).replace("'", "''")
    options = f"ENCRYPTION_KEY '{_duckdb_secret(key)}'" + (", READ_ONLY" if read_only else "")
    try:
        con.execute(f"ATTACH '{file}' AS \"{alias}\" ({options})")
    except duckdb.Error as e:
        text = str(e)
        if "not encrypted" in text:
            raise SecurityError(f"{path} is not encrypted; open it without a key") from None
        if "ncryption" in text or "key" in text.lower():
            raise _wrong_key(Path(path), key_name) from None
        raise SecurityError(f"{path} cannot be opened as a DuckDB database ({type(e).__name__})") from None


def connect_duckdb(
    path: Path, key: bytes | None, read_only: bool = True, key_name: str = ENV_MASTER_KEY
) -> duckdb.DuckDBPyConnection:
    """A connection whose default catalog is the database at ``path`` (decrypted with ``key`` when given).

    A missing key for an encrypted file, or a wrong key, raises :class:`SecurityError`.
    """
    path = Path(path)
    if read_only and not path.is_file():
        raise SecurityError(f"{path} does not exist")
    if key is None:
        if is_encrypted(path):
            raise SecurityError(f"{path} is encrypted; set {key_name} to the key it was written with")
        return duckdb.connect(str(path), read_only=read_only)
    con = duckdb.connect(":memory:")
    try:
        load_crypto(con)
        attach_encrypted(con, path, key, "db", read_only, key_name)
        con.execute('USE "db"')
    except BaseException:
        con.close()
        raise
    return con


def _as_arrow(table: pa.Table | pd.DataFrame) -> pa.Table:
    return table if isinstance(table, pa.Table) else pa.Table.from_pandas(table, preserve_index=False)


_SCAN_BATCH = 122_880  # DuckDB's row-group size


def scan_batches(table: pa.Table) -> pa.Table:
    """``table`` cut into batches of at most one DuckDB row group, without copying (at its chunks' boundaries).

    DuckDB loads one batch per task, on every thread: the 1M-record source_records went from
    12.2 to 8.5 s of CPU and from 17 to 10 s of wall time against one batch per Parquet row group.
    """
    if table.num_rows <= _SCAN_BATCH:
        return table
    return pa.Table.from_batches(table.to_batches(max_chunksize=_SCAN_BATCH), table.schema)


def row_group_batches(table: pa.Table) -> pa.Table | pa.RecordBatchReader:
    """``table`` for a DuckDB load as batches of exactly one DuckDB row group each (the last one shorter),
    cut as DuckDB reads them.

    A batch that fills a row group is compressed and written out by the thread that loaded it.
    :func:`scan_batches` cuts at every chunk boundary of every column, and a table whose columns
    are chunked differently (the 1M-record golden_customer: 131,072-row chunks beside lists in
    66,834- and 150,378-row ones) came in odd sizes (66,834, 64,238, 2,597, 16,709 ... rows); the
    partial row groups those leave were written by a later checkpoint, on one thread: 2.6-2.9 s
    more, and 6.7-10.2 s of CPU for that table instead of 4.1-4.9 s.

    The price is memory: a column whose chunks do not line up with a batch is copied for that
    batch, and DuckDB reads a stream some batches ahead. Loading the 1M-record source_records
    this way held 914 MB more than before the load instead of 508 MB; at 10M records, loaded
    beside matching, it took that step's peak from 14,845 to 17,473 MiB. So the caller chooses
    (:meth:`DuckDBFileWriter.add`): the publish step, far below the run's peak, loads this way;
    a table loaded while matching runs is cut by :func:`scan_batches`.
    """
    table = _one_dictionary(table)
    if table.num_rows <= _SCAN_BATCH:
        return table

    def batches() -> Iterator[pa.RecordBatch]:
        for start in range(0, table.num_rows, _SCAN_BATCH):
            pieces = [column.slice(start, _SCAN_BATCH) for column in table.columns]
            yield pa.RecordBatch.from_arrays(
                [p.chunk(0) if p.num_chunks == 1 else p.combine_chunks() for p in pieces], schema=table.schema
            )

    return pa.RecordBatchReader.from_batches(table.schema, batches())


def _one_dictionary(table: pa.Table) -> pa.Table:
    """Each dictionary-encoded column's chunks given one dictionary (only the few values and the indices'
    mapping: about a millisecond at 1M records), so batches joining chunks join one dictionary."""
    if any(pa.types.is_dictionary(field.type) for field in table.schema):
        return table.unify_dictionaries()
    return table


def _is_sorted(column: pa.ChunkedArray) -> bool:
    """True when ``column`` ascends (nulls anywhere count as unsorted); one linear pass, no sort."""
    n = len(column)
    if n < 2:
        return True
    ascending = pc.all(pc.less_equal(column.slice(0, n - 1), column.slice(1)), skip_nulls=False)
    return ascending.as_py() is True


def sort_for_zone_maps(table: pa.Table, column: str) -> pa.Table:
    """``table`` with its rows ordered by ``column`` (nulls last), or ``table`` itself when they already are.

    DuckDB keeps the minimum and maximum of every column per row group and segment and skips
    those a filter cannot match, so on a table loaded in key order a point look-up reads only
    the blocks holding that key: most of what an index gives, without building one. DuckDB
    compares only the first 8 bytes of strings there, so this suits keys that differ early
    (golden IDs, ``G`` + random symbols), not keys with a long shared prefix (``deposit:...``).
    """
    if _is_sorted(table.column(column)):
        return table
    return table.take(pc.sort_indices(table, sort_keys=[(column, "ascending", "at_end")]))


WRITER_MEMORY_LIMIT = "1GB"
SHRUNK_MEMORY_LIMIT = "32MB"  # what DuckDBFileWriter.shrink_cache lowers the limit to for a moment
# An ART index is built in memory: at 10M records the record_key index of source_records does
# not fit in the loader's 1 GB (DuckDB: "could not allocate block"), so index builds get this
# share of the machine's RAM, and the loading limit is restored afterwards when DuckDB can go
# back to it (a large index stays in memory until the checkpoint: then the raised limit stays).
INDEX_MEMORY_SHARE = 0.2


class DuckDBFileWriter:
    """A new DuckDB file (encrypted when ``key`` is given) filled table by table, published atomically.

    Tables are added one at a time, so a caller can hand each over and drop it (peak memory);
    :meth:`add` may be called from several threads at once (each call loads through its own
    cursor, so two tables load side by side). :meth:`commit` builds the indexes asked for, then
    checkpoints, fsyncs and renames the temporary file into place, :meth:`abort` removes it.
    Use as a context manager: leaving the block without commit aborts.
    """

    def __init__(self, path: Path, key: bytes | None, memory_limit: str | None = WRITER_MEMORY_LIMIT) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._tmp.unlink(missing_ok=True)
        self._con: duckdb.DuckDBPyConnection | None = connect_duckdb(self._tmp, key, read_only=False)
        row = self._con.execute("SELECT current_database()").fetchone()
        self._catalog = str(row[0]) if row else None  # a cursor starts in the default catalog; the file is this one
        # Rows keep no meaningful order in SQL (readers ORDER BY); letting DuckDB load row groups in
        # parallel without preserving the input order took the 1M-record master from ~65 s to ~14 s
        # of CPU and gave a smaller file.
        self._con.execute("SET preserve_insertion_order = false")
        self._con.execute("SET enable_progress_bar = false")
        self._memory_limit = memory_limit or None
        self._index_lock = threading.Lock()
        self._indexes: list[tuple[str, str]] = []  # (table, column): built by commit, after every load
        self._loading = 0  # adds under way (guarded by _index_lock): the cache is not shrunk under a load
        if memory_limit:
            # a bounded buffer pool makes DuckDB write finished blocks out as it loads instead of
            # holding the whole database until the checkpoint: the 1M-record master loaded in
            # 12 s instead of 21 s with 0.4 GB instead of 1.1 GB of growth
            self._con.execute(f"SET memory_limit = '{memory_limit}'")

    def add(
        self,
        name: str,
        table: pa.Table | pd.DataFrame,
        indexes: Sequence[str] = (),
        order_by: str | None = None,
        *,
        whole_row_groups: bool = True,
    ) -> None:
        """Load ``table`` as table ``name``; ``order_by``: rows sorted by that column first
        (:func:`sort_for_zone_maps`); ``indexes``: columns given an (ART) index at :meth:`commit`.

        ``whole_row_groups``: read as :func:`row_group_batches` (faster, more memory while loading);
        False: as :func:`scan_batches` (no copy), for a load beside the run's memory peak.
        """
        if self._con is None:
            raise RuntimeError(f"{self.path}: the writer is closed")
        data = _as_arrow(table)
        columns = set(data.column_names)
        if order_by is not None and order_by in columns:
            data = sort_for_zone_maps(data, order_by)
        with self._index_lock:
            self._loading += 1
        try:
            self._load(name, row_group_batches(data) if whole_row_groups else scan_batches(data))
        finally:
            with self._index_lock:
                self._loading -= 1
        with self._index_lock:
            self._indexes.extend((name, column) for column in indexes if column in columns)

    def _load(self, name: str, data: pa.Table | pa.RecordBatchReader) -> None:
        assert self._con is not None
        cur = self._con.cursor()
        try:
            if self._catalog is not None:
                cur.execute(f'USE "{self._catalog}"')
            cur.register("_mdm_src", data)  # batches of at most a row group: one per task, on every thread
            try:
                cur.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _mdm_src')
            finally:
                cur.unregister("_mdm_src")
            del data
            self._checkpoint(cur, name)
        finally:
            cur.close()

    def _checkpoint(self, cur: duckdb.DuckDBPyConnection, name: str) -> None:
        """Checkpoint the file right after a load, unless another load is writing (then its own checkpoint, or
        :meth:`commit`'s, takes this one's rows along).

        What a load leaves in DuckDB's memory and write-ahead log (the rows short of a full row
        group) is otherwise written by the next automatic checkpoint, which runs in whichever
        statement crosses DuckDB's threshold while no other write is under way: with two threads
        loading, often the first ``CREATE INDEX`` of :meth:`commit`, at the very end of the run
        and on one core. The statement names the file's catalog: a cursor starts in the
        connection's default one.
        """
        target = f' "{self._catalog}"' if self._catalog is not None else ""
        try:
            cur.execute(f"CHECKPOINT{target}")
        except duckdb.TransactionException as err:  # "other write transactions active": the next one will
            log.debug("the master DuckDB was not checkpointed after loading %s: %s", name, err)

    def shrink_cache(self) -> bool:
        """Let DuckDB drop the blocks it keeps cached from the loads so far, when no load is under way;
        True when it could.

        A table loaded ahead of the others (the nightly run's staged ``source_records``) otherwise
        leaves up to the writer's memory limit cached for the rest of the run (1M records: 250 MB
        more resident through matching; at 10M the whole 1 GB). The limit is lowered, which makes
        DuckDB evict what it can, then restored for the loads to come.
        """
        with self._index_lock:
            if self._con is None or self._memory_limit is None or self._loading:
                return False
            try:
                self._con.execute(f"SET memory_limit = '{SHRUNK_MEMORY_LIMIT}'")
            except duckdb.Error as err:  # blocks not written out yet cannot be evicted: keep them
                log.debug("the master DuckDB kept its cache: %s", err)
                return False
            finally:
                self._con.execute(f"SET memory_limit = '{self._memory_limit}'")
            return True

    def _build_indexes(self) -> None:
        """The ART indexes of every table added, built once all are loaded: a caller that hands each
        table over and drops it (publish) no longer holds them, so the index memory does not stack on
        the tables (at 10M records the record_key index alone needs gigabytes)."""
        assert self._con is not None
        if not self._indexes:
            return
        with self._index_memory():
            for name, column in self._indexes:
                self._con.execute(f'CREATE INDEX "idx_{name}_{column}" ON "{name}" ("{column}")')
        self._indexes.clear()

    @contextlib.contextmanager
    def _index_memory(self) -> Iterator[None]:
        """Raise the memory limit while the indexes are built."""
        assert self._con is not None
        with self._index_lock:
            if self._memory_limit is None:
                yield
                return
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            self._con.execute(f"SET memory_limit = '{max(1, int(total * INDEX_MEMORY_SHARE / 2**20))}MB'")
            try:
                yield
            finally:
                try:
                    self._con.execute(f"SET memory_limit = '{self._memory_limit}'")
                except duckdb.OutOfMemoryException:
                    # the built index stays in memory until the checkpoint: DuckDB cannot go back
                    # below it, so the raised limit stays for the rest of this database
                    log.debug("master DuckDB keeps the index memory limit (the index blocks are held)")

    def commit(self) -> Path:
        if self._con is None:
            raise RuntimeError(f"{self.path}: the writer is closed")
        try:
            self._build_indexes()
            self._con.execute("CHECKPOINT")
        finally:
            self._con.close()
            self._con = None
        Path(str(self._tmp) + ".wal").unlink(missing_ok=True)
        fsync_file(self._tmp)
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        self._tmp.unlink(missing_ok=True)
        Path(str(self._tmp) + ".wal").unlink(missing_ok=True)

    def __enter__(self) -> DuckDBFileWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._con is not None:
            self.abort()


def write_duckdb_tables(
    path: Path,
    tables: Mapping[str, pa.Table | pd.DataFrame],
    key: bytes | None,
    indexes: Mapping[str, Sequence[str]] | None = None,
    order_by: Mapping[str, str] | None = None,
) -> Path:
    """Write ``tables`` into a new DuckDB file at ``path`` (encrypted when ``key`` is given), atomically.

    ``indexes``: per table, columns that get an (ART) index for point look-ups; ``order_by``: per
    table, the column its rows are sorted by (zone maps, see :func:`sort_for_zone_maps`).
    """
    with DuckDBFileWriter(path, key) as writer:
        for name, table in tables.items():
            writer.add(name, table, (indexes or {}).get(name, ()), (order_by or {}).get(name))
        return writer.commit()


# --------------------------------------------------------------------------- envelope files






def _is_envelope(path: Path) -> bool:
    with Path(path).open("rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def _aad(header: bytes, index: int, last: bool) -> bytes:
    return header + struct.pack(">QB", index, 1 if last else 0)


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">I", index)


class FileDigest(NamedTuple):
    """Size and SHA-256 of a file as written (taken from the bytes on their way to disk)."""

    size: int
    sha256: str


class HashingSink(io.RawIOBase):
    """Write-through to ``dst`` that counts and hashes the bytes (so a file never has to be re-read)."""

    def __init__(self, dst: BinaryIO) -> None:
        super().__init__()
        self._dst = dst
        self._digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")  # bytes, not items: any buffer Arrow hands over
        self._dst.write(view)
        self._digest.update(view)
        self.size += len(view)
        return len(view)

    def result(self) -> FileDigest:
        return FileDigest(self.size, self._digest.hexdigest())


class EnvelopeWriter(io.RawIOBase):
    """Writable stream that seals its plaintext into envelope segments as they fill.

    Memory stays at about two segments whatever the file size; the last segment (marked as
    such in its associated data) is sealed by :meth:`finish` (or ``close``). ``tell`` is the
    plaintext position, which is what a Parquet writer needs for its offsets.
    """

    def __init__(self, dst: BinaryIO, key: bytes) -> None:
        super().__init__()
        self._prefix = os.urandom(8)
        self._header = _HEADER.pack(MAGIC, 1, _fingerprint(key), self._prefix, _SEGMENT)
        self._aead = AESGCM(_derive(key, "file"))
        self._sink = HashingSink(dst)
        self._sink.write(self._header)
        self._buf = bytearray()
        self._index = 0
        self._written = 0
        self._digest: FileDigest | None = None

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._buf += view
        self._written += len(view)
        if len(self._buf) > _SEGMENT:
            cut = (len(self._buf) - 1) // _SEGMENT * _SEGMENT  # keep at least one byte for the last segment
            mv = memoryview(self._buf)
            for start in range(0, cut, _SEGMENT):
                self._seal(mv[start : start + _SEGMENT], last=False)
            mv.release()
            del self._buf[:cut]
        return len(view)

    def _seal(self, chunk: bytes | bytearray | memoryview, last: bool) -> None:
        nonce, aad = _nonce(self._prefix, self._index), _aad(self._header, self._index, last)
        self._sink.write(self._aead.encrypt(nonce, bytes(chunk), aad))
        self._index += 1

    def finish(self) -> FileDigest:
        """Seal the last segment; the size and SHA-256 of the envelope file written."""
        if self._digest is None:
            self._seal(self._buf, last=True)
            self._buf = bytearray()
            self._digest = self._sink.result()
        return self._digest

    def close(self) -> None:
        if not self.closed:
            self.finish()
        super().close()


def _encrypt_stream(src: BinaryIO, dst: BinaryIO, key: bytes) -> FileDigest:
    writer = EnvelopeWriter(dst, key)
    while chunk := src.read(_SEGMENT):
        writer.write(chunk)
    return writer.finish()


def _decrypt_stream(src: BinaryIO, path: Path, key: bytes, key_name: str) -> Iterator[bytes]:
    header = src.read(_HEADER.size)
    prefix, segment = _open_header(header, path, key, key_name)
    aead = AESGCM(_derive(key, "file"))
    index = 0
    block = src.read(segment + _TAG)
    while True:
        following = src.read(segment + _TAG)
        last = not following
        try:
            yield aead.decrypt(_nonce(prefix, index), block, _aad(header, index, last))
        except InvalidTag:
            raise SecurityError(
                f"{path} fails its integrity check (segment {index}): the file is damaged or was altered"
            ) from None
        if last:
            return
        block, index = following, index + 1


def encrypt_bytes_to(data: bytes, path: Path, key: bytes) -> Path:
    """Write ``data`` to ``path`` as an envelope file, atomically (temp file + fsync + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as out:
        _encrypt_stream(io.BytesIO(data), out, key)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return path


def decrypt_file_bytes(path: Path, key: bytes, key_name: str = ENV_MASTER_KEY) -> bytes:
    """The plaintext of an envelope file; SecurityError on a wrong key or a damaged file."""
    with Path(path).open("rb") as src:
        return b"".join(_decrypt_stream(src, Path(path), key, key_name))


def write_parquet_sealed(table: pa.Table | pd.DataFrame, path: Path, key: bytes | None) -> FileDigest:
    """Write ``table`` as zstd Parquet at ``path`` in one streaming pass, sealed in an envelope when ``key``
    is given; atomic (temp file + fsync + rename). Returns the size and SHA-256 of the file written.

    The plaintext Parquet never exists on disk, and is never held whole in memory: pages are
    encrypted as the writer emits them, and hashed on their way out.
    """
    path = Path(path)
    data = _as_arrow(table)
    schema = plain_schema(data.schema)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as out:
            sink: EnvelopeWriter | HashingSink = EnvelopeWriter(out, key) if key is not None else HashingSink(out)
            stream = pa.PythonFile(sink, mode="w")
            with pq.ParquetWriter(stream, schema, **PARQUET_OPTIONS) as writer:
                if schema.equals(data.schema):
                    writer.write_table(data, row_group_size=_ROW_GROUP)
                else:  # dictionary-encoded (code) columns: stored as their values, a row group at a time
                    for start in range(0, data.num_rows, _ROW_GROUP):
                        writer.write_table(plain_values(data.slice(start, _ROW_GROUP)), row_group_size=_ROW_GROUP)
            digest = sink.finish() if isinstance(sink, EnvelopeWriter) else sink.result()
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return digest


def write_parquet_encrypted(table: pa.Table | pd.DataFrame, path: Path, key: bytes) -> Path:
    """Write ``table`` as zstd Parquet sealed in an AES-256-GCM envelope at ``path``."""
    write_parquet_sealed(table, path, key)
    return Path(path)


def read_parquet_encrypted(
    path: Path, key: bytes, key_name: str = ENV_MASTER_KEY, columns: list[str] | None = None
) -> pa.Table:
    """Read a table written by :func:`write_parquet_encrypted` (only ``columns`` when given)."""
    return pq.read_table(io.BytesIO(decrypt_file_bytes(path, key, key_name)), columns=columns)


def read_parquet_any(
    path: Path, key: bytes | None, key_name: str = ENV_MASTER_KEY, columns: list[str] | None = None
) -> pa.Table:
    """Read a Parquet file (only ``columns`` when given), plain or enveloped; an envelope without a key
    raises SecurityError."""
    if is_encrypted(path):
        if key is None:
            raise SecurityError(f"{path} is encrypted; set {key_name} to the key it was written with")
        return read_parquet_encrypted(path, key, key_name, columns)
    return pq.read_table(path, columns=columns)


# --------------------------------------------------------------------------- rotation


def _sha256_chunks(chunks: Iterator[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def check_file(path: Path, key: bytes, key_name: str = ENV_MASTER_KEY) -> None:
    """Raise SecurityError unless ``key`` opens the encrypted file ``path`` completely."""
    path = Path(path)
    if is_duckdb_file(path):
        con = connect_duckdb(path, key, read_only=True, key_name=key_name)
        try:
            for (name,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'db'").fetchall():
                con.execute(f'SELECT count(*) FROM "{name}"').fetchone()
        finally:
            con.close()
        return
    with path.open("rb") as src:
        _sha256_chunks(_decrypt_stream(src, path, key, key_name))


def _rotate_envelope(path: Path, tmp: Path, old: bytes, new: bytes) -> None:
    plain = decrypt_file_bytes(path, old)
    expected = hashlib.sha256(plain).hexdigest()
    with tmp.open("wb") as out:
        _encrypt_stream(io.BytesIO(plain), out, new)
        out.flush()
        os.fsync(out.fileno())
    with tmp.open("rb") as check:
        if _sha256_chunks(_decrypt_stream(check, tmp, new, ENV_MASTER_KEY_NEW)) != expected:
            raise SecurityError(f"re-encrypting {path} did not round-trip; the file was left as it was")


def _rotate_duckdb(path: Path, tmp: Path, old: bytes, new: bytes) -> None:
    con = duckdb.connect(":memory:")
    try:
        load_crypto(con)
        attach_encrypted(con, path, old, "src", read_only=True)
        attach_encrypted(con, tmp, new, "dst", read_only=False, key_name=ENV_MASTER_KEY_NEW)
        con.execute('COPY FROM DATABASE "src" TO "dst"')
        con.execute('DETACH "dst"')
        attach_encrypted(con, tmp, new, "chk", read_only=True, key_name=ENV_MASTER_KEY_NEW)
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'src'"
        ).fetchall()
        for schema, name in tables:
            a, b = f'"src"."{schema}"."{name}"', f'"chk"."{schema}"."{name}"'
            diff = con.execute(
                f"SELECT (SELECT count(*) FROM {a}) - (SELECT count(*) FROM {b}), "
                f"(SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}))"
            ).fetchone()
            if diff is None or diff != (0, 0):
                raise SecurityError(f"re-encrypting {path}: table {name} differs after the copy; file left as it was")
    finally:
        con.close()
    Path(str(tmp) + ".wal").unlink(missing_ok=True)
    fsync_file(tmp)


def rotate_file(path: Path, old: bytes, new: bytes) -> None:
    """Re-encrypt one file from ``old`` to ``new``: write a temp file, verify it, then replace atomically.

    The original is untouched unless the new file opens with ``new`` and holds the same data.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.rotate.tmp")
    tmp.unlink(missing_ok=True)
    Path(str(tmp) + ".wal").unlink(missing_ok=True)
    try:
        if is_duckdb_file(path):
            _rotate_duckdb(path, tmp, old, new)
        elif _is_envelope(path):
            _rotate_envelope(path, tmp, old, new)
        else:
            raise SecurityError(f"{path} is not in an encryption format this product can rotate")
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".wal").unlink(missing_ok=True)


# --------------------------------------------------------------------------- reading envelopes in place

_CACHED_SEGMENTS = 2  # a read that straddles a boundary, and the one before it: enough for sequential scans
PARQUET_BUFFER = 1 << 20  # bytes a Parquet column reader reads at a time from a streamed file (one segment)


def _open_header(header: bytes, path: Path, key: bytes, key_name: str) -> tuple[bytes, int]:
    """The nonce prefix and segment size of an envelope header, after checking its magic, version and key."""
    if len(header) < _HEADER.size or not header.startswith(MAGIC):
        raise SecurityError(f"{path} is not an encrypted file of this product")
    _magic, version, fingerprint, prefix, segment = _HEADER.unpack(header)
    if version != 1:
        raise SecurityError(f"{path} uses encryption format {version}, which this version cannot read")
    if not hmac.compare_digest(fingerprint, _fingerprint(key)):
        raise _wrong_key(path, key_name)
    if segment < 1:
        raise SecurityError(f"{path} has a damaged header (segment size {segment})")
    return prefix, segment


def _segment_count(body: int, segment: int, path: Path) -> int:
    """Segments in an envelope body of ``body`` bytes, as :class:`EnvelopeWriter` seals them: every segment
    full but the last, which holds 1 to ``segment`` bytes (0 for an empty plaintext); never an empty one after a
    full one. A body that cannot be such a sequence was cut short or padded."""
    sealed = segment + _TAG
    count = -(-body // sealed)
    if count < 1 or body - (count - 1) * sealed < _TAG:
        raise SecurityError(f"{path} fails its integrity check (its length): the file is damaged or was truncated")
    return count


class EnvelopeReader(io.RawIOBase):
    """Readable, seekable plaintext of an envelope file, decrypting only the segments a read touches.

    A Parquet reader reads the footer and then the column chunks it wants, wherever they are:
    this serves those reads from the file in place, so no plaintext is held beyond the last
    :data:`_CACHED_SEGMENTS` segments decrypted (memory does not grow with the file, unlike
    :func:`decrypt_file_bytes`). The header (magic, version, key fingerprint) is checked on
    open, and so is the last segment: its end marker proves the file is whole, so a truncated
    file fails here and :attr:`size` (the plaintext length, from the file size) can be trusted.
    Every other segment is authenticated when first read; a damaged one raises SecurityError
    naming the file. Reads and seeks take a lock, so Arrow's reader threads may share it
    (``pa.PythonFile`` keeps each seek-and-read pair together itself).
    """

    def __init__(self, path: Path, key: bytes, key_name: str = ENV_MASTER_KEY) -> None:
        super().__init__()
        self.path = Path(path)
        self._cache: dict[int, bytes] = {}  # insertion order: the oldest first
        self._file = self.path.open("rb")
        try:
            self._header = self._file.read(_HEADER.size)
            self._prefix, self._segment = _open_header(self._header, self.path, key, key_name)
            body = os.fstat(self._file.fileno()).st_size - _HEADER.size
            self._count = _segment_count(body, self._segment, self.path)
            self._body = body
            self.size = body - self._count * _TAG
            self._aead = AESGCM(_derive(key, "file"))
            self._lock = threading.Lock()
            self._pos = 0
            self._plain(self._count - 1)
        except BaseException:
            self.close()
            raise

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence ({whence})")
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        with self._lock:
            self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes from the current position (all that is left when ``size`` is negative)."""
        self._check_open()
        with self._lock:
            start = self._pos
            n = self.size - start if size is None or size < 0 else min(size, self.size - start)
            if n <= 0:
                return b""
            parts = []
            end = start + n
            while start < end:
                index, offset = divmod(start, self._segment)
                plain = self._plain(index)
                take = min(end - start, len(plain) - offset)
                parts.append(memoryview(plain)[offset : offset + take])
                start += take
            self._pos = end
        return parts[0].tobytes() if len(parts) == 1 else b"".join(parts)

    def readall(self) -> bytes:
        return self.read(-1)

    def _plain(self, index: int) -> bytes:
        """Segment ``index`` decrypted (from the cache when it is there)."""
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        sealed = self._segment + _TAG
        at = index * sealed
        length = min(sealed, self._body - at)
        self._file.seek(_HEADER.size + at)
        blob = self._file.read(length)
        last = index == self._count - 1
        try:
            if len(blob) != length:
                raise InvalidTag  # the file shrank while open
            plain = self._aead.decrypt(_nonce(self._prefix, index), blob, _aad(self._header, index, last))
        except InvalidTag:
            raise SecurityError(
                f"{self.path} fails its integrity check (segment {index}): the file is damaged or was altered"
            ) from None
        if len(self._cache) >= _CACHED_SEGMENTS:
            del self._cache[next(iter(self._cache))]
        self._cache[index] = plain
        return plain

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"I/O operation on closed file {self.path}")

    def close(self) -> None:
        if not self.closed:
            file = getattr(self, "_file", None)  # None when opening it failed
            if file is not None:
                file.close()
            self._cache = {}
        super().close()


class _EnvelopeParquetFile(pq.ParquetFile):
    """A ParquetFile over an :class:`EnvelopeReader` that closes the reader (and its file) with itself.

    A plain ParquetFile leaves a file object it was handed open on ``close()``.
    """

    def __init__(self, reader: EnvelopeReader, **options: Any) -> None:
        self._envelope = reader
        super().__init__(pa.PythonFile(reader, mode="r"), **options)

    def close(self, force: bool = False) -> None:
        try:
            super().close(force=True)
        finally:
            self._envelope.close()


def open_parquet(
    path: Path, key: bytes | None, key_name: str = ENV_MASTER_KEY, buffer_size: int = PARQUET_BUFFER
) -> pq.ParquetFile:
    """A ``pq.ParquetFile`` over a Parquet file, plain or enveloped, read in place in bounded memory.

    An envelope is read through :class:`EnvelopeReader` (decrypted segment by segment as the
    reader asks), never decrypted whole; an envelope without a key raises SecurityError, as in
    :func:`read_parquet_any`. Column chunks are read ``buffer_size`` bytes at a time (0: each
    whole, faster on small files) and nothing is pre-buffered, so reading a row group does not
    hold its compressed columns either. The caller closes it: ``with open_parquet(...) as f:``
    (``close()`` also closes the file it reads).
    """
    path = Path(path)
    options: dict[str, Any] = {"pre_buffer": False, "buffer_size": buffer_size}
    if not is_encrypted(path):
        return pq.ParquetFile(path, **options)
    if key is None:
        raise SecurityError(f"{path} is encrypted; set {key_name} to the key it was written with")
    reader = EnvelopeReader(path, key, key_name)
    try:
        return _EnvelopeParquetFile(reader, **options)
    except BaseException:
        reader.close()
        raise


def iter_parquet_batches(
    path: Path,
    key: bytes | None,
    batch_rows: int,
    columns: list[str] | None = None,
    key_name: str = ENV_MASTER_KEY,
) -> Iterator[pa.RecordBatch]:
    """The rows of a Parquet file (plain or enveloped) in order, ``batch_rows`` at a time (the last batch
    fewer; none for an empty file), read in bounded memory (:func:`open_parquet`).

    Batches are cut at ``batch_rows`` whatever the file's row groups, so a caller chunks a file
    as it would chunk the same table in memory. The file is closed at the end, on an error, or
    when the caller stops early (closing the generator).
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be positive, not {batch_rows}")
    with open_parquet(path, key, key_name) as file:
        pending: list[pa.RecordBatch] = []
        held = 0
        for batch in file.iter_batches(batch_size=batch_rows, columns=columns):
            while batch.num_rows:
                take = min(batch_rows - held, batch.num_rows)
                pending.append(batch.slice(0, take))
                held += take
                batch = batch.slice(take)
                if held == batch_rows:
                    yield _joined(pending)
                    pending, held = [], 0
        if held:
            yield _joined(pending)


def _joined(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    return batches[0] if len(batches) == 1 else pa.concat_batches(batches)
