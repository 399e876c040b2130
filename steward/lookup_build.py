"""Build the steward lookup store of one published master version (a read model, made once per version).

The web app's pages are point look-ups; on the encrypted master database each costs a few
milliseconds and a page needs a dozen, and a name search may scan. The lookup store holds
what the pages show, precomputed per record, per record pair and per golden customer, in
a SQLite file (``<master>/steward-lookup/<run_id>.sqlite``, see :mod:`steward.lookup_layout`):

* ``records``: per source record its pair-page fields and member-table columns as text
  (sealed), its golden ID and link; indexed by record key and by golden ID;
* ``links``: per scored record pair the match weight and each comparison's contribution;
* ``customers``: per golden ID its registry status and, for golden customers, the golden
  record, records per system and ID history (sealed);
* ``search``: keyed tokens of every record's normalized name, Latin name key, ID number,
  mobile and phones, each to its golden ID: a search is one exact index look-up.

Personal data is sealed row by row under keys derived from the master key, and search
values are stored only as keyed tokens (:mod:`steward.sealing`). The file is written to a
temporary name and renamed into place; building again is a no-op while the store matches
its version and key.

The build's memory does not grow with the master: DuckDB works within a fixed memory limit
on one thread and spills beside the store (encrypted when the master is), the customers are
read in golden-ID ranges, and rows go to SQLite in small batches (1M records: 0.4 GB above
the build's start instead of 2.5 GB; 5M records: 0.4 GB).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from mdm.crypto import connect_duckdb
from mdm.errors import MdmError
from mdm.fsutil import fsync_dir, fsync_file
from steward import lookup_layout as layout
from steward import projection
from steward.sealing import Sealer

log = logging.getLogger(__name__)

__all__ = ["LookupBuildError", "build_lookup"]

# Looked up by search, per source-record column (``phones`` is a list: every element is a key).
SEARCH_COLUMNS: tuple[str, ...] = ("name_norm", "name_latin_key", "id_number", "mobile", "phones")
_BATCH = 10_000  # rows fetched from DuckDB, sealed and inserted at a time (about 20 MB of payloads)
# DuckDB's memory while it joins, aggregates and sorts the master for the store: beyond it, it spills
# to a folder beside the store (encrypted when the master is), so the build's memory does not grow
# with the master. Left at DuckDB's default (80% of RAM), 1M records took 2.5 GB.
LOOKUP_DB_MEMORY = "256MB"  # 1M records: the build's peak 410 MB above its start, 5M records 380 MB
LOOKUP_DB_MEMORY_RETRY = "1GB"  # should DuckDB run out of it all the same (the store is built again)
# One DuckDB thread: each thread of a sort holds runs of its own (the 1M-record ``records`` query
# needed more than 384 MB on two threads, 300 MB on one, in the same 6 s of wall time).
LOOKUP_DB_THREADS = 1
# Golden IDs per customers query: their payload lists (systems, ID events) are aggregated in
# memory (DuckDB cannot spill list aggregates), so the customers are read in golden-ID ranges.
CUSTOMERS_PER_QUERY = 50_000
SQLITE_CACHE_KIB = 32_768  # the store's page cache while it is written (SQLite's sorts spill to files beyond it)
BUSY_EXIT = 3  # main()'s exit code when another process holds the build lock (steward.master waits for it)


class LookupBuildError(MdmError):
    """The lookup store could not be built (the pages keep reading the master database)."""


@contextlib.contextmanager
def _build_lock(path: Path, wait: bool) -> Iterator[bool]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def build_lookup(version_dir: Path, key: bytes | None, *, force: bool = False, wait: bool = True) -> Path | None:
    """Build the steward lookup store of the published master version in ``version_dir`` and return its path.

    ``key`` is the master key (None when the master is not encrypted). A no-op when a
    fitting store exists (unless ``force``). One build per version at a time: with
    ``wait=False`` returns None at once while another process builds it. Raises
    :class:`LookupBuildError` when the version's database cannot be read.
    """
    version_dir = Path(version_dir).resolve()
    path = layout.lookup_path(version_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    sealer = Sealer(key)
    with _build_lock(path.with_suffix(".lock"), wait) as locked:
        if not locked:
            return None
        if not force and layout.lookup_fits(version_dir, sealer):
            return path
        for leftover in path.parent.glob(f".{path.stem}.*.tmp"):
            leftover.unlink(missing_ok=True)  # an interrupted build (we hold the lock: nobody else writes)
        for leftover in path.parent.glob(f".{path.stem}.*.spill"):
            shutil.rmtree(leftover, ignore_errors=True)
        started = time.perf_counter()
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
        try:
            master = connect_duckdb(version_dir / layout.DUCKDB_FILE, key, read_only=True)
        except MdmError as e:
            raise LookupBuildError(f"cannot read master version {version_dir.name} to build its lookup: {e}") from e
        spill = path.with_name(f".{path.stem}.{os.getpid()}.spill")
        try:
            counts = _write_bounded(master, tmp, version_dir, sealer, spill, encrypted=key is not None)
            os.chmod(tmp, 0o600)
            fsync_file(tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            master.close()
            shutil.rmtree(spill, ignore_errors=True)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    log.info(
        "steward lookup of master version %s built in %.1f s (%s)",
        version_dir.name,
        time.perf_counter() - started,
        ", ".join(f"{n} {k}" for k, n in counts.items()),
    )
    layout.prune_lookups(version_dir)
    return path


def _write_bounded(
    master: duckdb.DuckDBPyConnection, tmp: Path, version_dir: Path, sealer: Sealer, spill: Path, encrypted: bool
) -> dict[str, int]:
    """:func:`_write` with DuckDB's memory bounded; once more with :data:`LOOKUP_DB_MEMORY_RETRY` if
    DuckDB runs out of it (not every operator spills), then :class:`LookupBuildError` (the run
    that published the version goes on; the web app reads the master meanwhile)."""
    _spill_to(master, spill, encrypted)
    for memory in (LOOKUP_DB_MEMORY, LOOKUP_DB_MEMORY_RETRY):
        master.execute(f"SET memory_limit = '{memory}'")
        try:
            return _write(master, tmp, version_dir, sealer)
        except duckdb.OutOfMemoryException as e:
            tmp.unlink(missing_ok=True)
            log.warning("steward lookup: DuckDB ran out of its %s (%s)", memory, str(e).splitlines()[0])
    raise LookupBuildError(
        f"the lookup store of master version {version_dir.name} needs more DuckDB memory than {LOOKUP_DB_MEMORY_RETRY}"
    )


def _spill_to(master: duckdb.DuckDBPyConnection, spill: Path, encrypted: bool) -> None:
    """DuckDB on :data:`LOOKUP_DB_THREADS` threads, spilling to ``spill`` in the store's own folder
    (0700), encrypted when the master is: a sort that spills holds personal data."""
    master.execute(f"SET threads = {LOOKUP_DB_THREADS}")
    master.execute("SET temp_directory = '{}'".format(str(spill).replace("'", "''")))
    if encrypted:
        master.execute("SET temp_file_encryption = true")


def _write(master: duckdb.DuckDBPyConnection, tmp: Path, version_dir: Path, sealer: Sealer) -> dict[str, int]:
    out = sqlite3.connect(tmp, isolation_level=None)
    try:
        for pragma in (
            "page_size=8192",
            "journal_mode=OFF",
            "synchronous=OFF",
            "locking_mode=EXCLUSIVE",
            f"cache_size=-{SQLITE_CACHE_KIB}",
            "temp_store=FILE",
        ):
            out.execute(f"PRAGMA {pragma}")
        out.executescript(layout.SCHEMA)
        out.execute("BEGIN")
        counts = {}
        for name, step in (
            ("records", _records),
            ("links", _links),
            ("customers", _customers),
            ("search keys", _search),
        ):
            t0 = time.perf_counter()
            counts[name] = step(master, out, sealer)
            log.debug("lookup %s: %d rows in %.1f s", name, counts[name], time.perf_counter() - t0)
        for index in layout.INDEXES:
            out.execute(index)
        meta = {
            **layout.expected_meta(version_dir, sealer),
            "golden_columns": json.dumps(list(projection.columns(master, "golden_customer"))),
            "link_columns": json.dumps(_link_columns(master)),
        }
        out.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))  # last: marks the store complete
        out.execute("COMMIT")
        out.execute("ANALYZE")
    finally:
        out.close()
    return counts


def _batches(
    master: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None
) -> Iterator[list[tuple[Any, ...]]]:
    cur = master.execute(sql, params) if params else master.execute(sql)
    while rows := cur.fetchmany(_BATCH):
        yield rows


def _records(master: duckdb.DuckDBPyConnection, out: sqlite3.Connection, sealer: Sealer) -> int:
    types = projection.columns(master, "source_records")
    weight = "CASE WHEN isnan(x.link_weight) THEN NULL ELSE x.link_weight END"
    payload = f"json_array(x.link_type, {weight}, {', '.join(projection.record_text_sql(types, 's.'))})"
    n = 0
    # Every record of the xref and of source_records (a full join, as the pages see them), a customer's together.
    sql = f"""SELECT coalesce(x.record_key, s.record_key) AS k, x.golden_id, CAST({payload} AS VARCHAR)
              FROM customer_xref x FULL OUTER JOIN source_records s ON s.record_key = x.record_key
              ORDER BY x.golden_id NULLS LAST, k"""
    for rows in _batches(master, sql):
        out.executemany(
            "INSERT INTO records VALUES (?, ?, ?)",
            [(k, g, sealer.seal(p.encode(), layout.RECORD_AAD.format(k).encode())) for k, g, p in rows],
        )
        n += len(rows)
    return n


def _link_columns(master: duckdb.DuckDBPyConnection) -> list[str]:
    return [c for c in projection.columns(master, "match_links") if c not in ("record_key_l", "record_key_r")]


def _links(master: duckdb.DuckDBPyConnection, out: sqlite3.Connection, sealer: Sealer) -> int:
    cols = _link_columns(master)
    if not cols:
        return 0
    n = 0
    sql = f"""SELECT record_key_l, record_key_r, CAST(json_array({", ".join(map(projection.quote, cols))}) AS VARCHAR)
              FROM match_links ORDER BY record_key_l, record_key_r"""
    for rows in _batches(master, sql):
        out.executemany(
            "INSERT OR IGNORE INTO links VALUES (?, ?, ?)",
            [(a, b, sealer.seal(p.encode(), layout.LINK_AAD.format(a, b).encode())) for a, b, p in rows],
        )
        n += len(rows)
    return n


def _golden_ranges(master: duckdb.DuckDBPyConnection, size: int) -> list[tuple[str | None, str | None]]:
    """Consecutive golden-ID ranges ``[low, high)`` of about ``size`` registry entries each, covering
    every golden ID (None: open end)."""
    sql = """SELECT golden_id FROM (SELECT golden_id, row_number() OVER (ORDER BY golden_id) AS i
                                    FROM golden_id_registry WHERE golden_id IS NOT NULL)
             WHERE (i - 1) % $size = 0 AND i > 1 ORDER BY golden_id"""
    bounds: list[str | None] = [str(r[0]) for r in master.execute(sql, {"size": size}).fetchall()]
    edges = [None, *bounds, None]
    return list(itertools.pairwise(edges))


def _in_range(column: str, low: str | None, high: str | None) -> str:
    """SQL condition: ``column`` in ``[$low, $high)`` (an open end: no condition)."""
    return " AND ".join(
        [
            "TRUE",
            *([f"{column} >= $low"] if low is not None else []),
            *([f"{column} < $high"] if high is not None else []),
        ]
    )


def _customers(master: duckdb.DuckDBPyConnection, out: sqlite3.Connection, sealer: Sealer) -> int:
    golden = projection.columns(master, "golden_customer")
    has_systems = bool(projection.columns(master, "customer_systems"))
    has_events = bool(projection.columns(master, "golden_id_events"))
    n = 0
    # One golden-ID range at a time, in order: the same rows in the same order as one query over
    # all, with each range's lists aggregated and sorted on their own (the tables are stored in
    # golden-ID order, so a range reads only its own blocks, except for related_golden_id).
    for low, high in _golden_ranges(master, CUSTOMERS_PER_QUERY):

        def where(column: str, lo: str | None = low, hi: str | None = high) -> str:
            return _in_range(column, lo, hi)

        systems = (
            f"""(SELECT golden_id, list(json_array(source_system, n_records) ORDER BY source_system) AS j
                        FROM customer_systems WHERE {where("golden_id")} GROUP BY golden_id)"""
            if has_systems
            else "(SELECT NULL AS golden_id, NULL AS j)"
        )
        events = (
            f"""(SELECT owner AS golden_id, list(j ORDER BY run_id, event_id) AS j FROM (
                        SELECT golden_id AS owner, to_json(e) AS j, run_id, event_id FROM golden_id_events e
                        WHERE {where("golden_id")}
                        UNION ALL
                        SELECT related_golden_id, to_json(e), run_id, event_id FROM golden_id_events e
                        WHERE golden_id != related_golden_id AND {where("related_golden_id")}) GROUP BY owner)"""
            if has_events
            else "(SELECT NULL AS golden_id, NULL AS j)"
        )
        values = ", ".join(projection.golden_text_sql(golden, "g."))
        payload = (
            f"CASE WHEN g.golden_id IS NOT NULL THEN CAST(json_array(json_array({values}), "
            "coalesce(s.j, []), coalesce(e.j, [])) AS VARCHAR) END"
        )
        sql = f"""SELECT r.golden_id, r.status, r.merged_into, {payload}
                  FROM golden_id_registry r
                  LEFT JOIN (SELECT * FROM golden_customer WHERE {where("golden_id")}) g ON g.golden_id = r.golden_id
                  LEFT JOIN {systems} s ON s.golden_id = r.golden_id LEFT JOIN {events} e ON e.golden_id = r.golden_id
                  WHERE r.golden_id IS NOT NULL AND {where("r.golden_id")} ORDER BY r.golden_id"""
        params = {name: v for name, v in (("low", low), ("high", high)) if v is not None}
        for rows in _batches(master, sql, params):
            out.executemany(
                "INSERT INTO customers VALUES (?, ?, ?, ?)",
                [
                    (
                        g,
                        st,
                        into,
                        None if p is None else sealer.seal(p.encode(), layout.CUSTOMER_AAD.format(g).encode()),
                    )
                    for g, st, into, p in rows
                ],
            )
            n += len(rows)
    return n


def _search(master: duckdb.DuckDBPyConnection, out: sqlite3.Connection, sealer: Sealer) -> int:
    types = projection.columns(master, "source_records")
    parts = []
    for column in SEARCH_COLUMNS:
        t = types.get(column)
        if t is None:
            continue
        value = f"unnest(s.{projection.quote(column)})" if t.upper().endswith("[]") else f"s.{projection.quote(column)}"
        parts.append(f"""SELECT '{column}' AS kind, {value} AS value, x.golden_id FROM source_records s
                         JOIN customer_xref x ON x.record_key = s.record_key WHERE x.golden_id IS NOT NULL""")
    if not parts:
        return 0
    sql = f"SELECT DISTINCT kind, value, golden_id FROM ({' UNION ALL '.join(parts)}) WHERE value IS NOT NULL"
    n = 0
    token = sealer.token
    # Tokens are random: collected unsorted first, then added to the index in token order (a B-tree append).
    out.execute("CREATE TEMP TABLE search_unsorted (token BLOB, golden_id TEXT)")
    for rows in _batches(master, sql):
        out.executemany(
            "INSERT INTO search_unsorted VALUES (?, ?)", [(token(str(kind), str(value)), g) for kind, value, g in rows]
        )
        n += len(rows)
    out.execute("INSERT OR IGNORE INTO search SELECT token, golden_id FROM search_unsorted ORDER BY token, golden_id")
    out.execute("DROP TABLE search_unsorted")
    return n


def main(argv: list[str] | None = None) -> int:
    """``python -m steward.lookup_build``: build the lookup store of the current (or a named) master version."""
    import argparse
    import sys

    from mdm.logs import configure

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("version_dir", nargs="?", type=Path, help="a version folder (default: the current one)")
    parser.add_argument("--config", type=Path, help="run config (default: the embedded one)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the store matches")
    parser.add_argument("--key-stdin", action="store_true", help=argparse.SUPPRESS)  # the web app hands the key over
    parser.add_argument("--background", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.key_stdin and args.version_dir is None:
        parser.error("--key-stdin needs a version folder")
    configure()
    if args.background:
        os.nice(10)  # leave the cores to the pages being served meanwhile
    try:
        version_dir = args.version_dir
        if args.key_stdin:
            line = sys.stdin.readline().strip()
            key = bytes.fromhex(line) if line else None
        else:
            from schemas.settings import load_run_config
            from steward.master import MasterReader

            cfg = load_run_config(args.config)
            key = cfg.master_key()
            if version_dir is None:
                reader = MasterReader(cfg.master_dir)
                current = reader.version_name()
                if current is None:
                    raise LookupBuildError(f"no master is published under {cfg.master_dir} yet")
                version_dir = reader.version_dir(current)
        built = build_lookup(version_dir, key, force=args.force, wait=not args.background)
    except MdmError as e:
        log.error("%s", e)
        return 1
    if built is None:
        log.info("another process is building the lookup store of %s", Path(version_dir).name)
        return BUSY_EXIT
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
