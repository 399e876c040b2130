"""Where a version's steward lookup store lives, what it holds, and whether it still fits its version.

``<master>/steward-lookup/<run_id>.sqlite``, beside ``versions/`` rather than inside it: a
backup takes the version folders, key rotation re-encrypts them and retention prunes them;
the lookup store is derived data, rebuilt from its version whenever it is missing or stale,
so it stays out of all three (stores of pruned versions are removed by the next build).

A store fits when its ``meta`` table names the same layout (:data:`FORMAT`), version,
master database (the SHA-256 in the version's manifest) and key (a fingerprint, never the
key); ``meta`` is written last, so a half-written store never fits.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
from pathlib import Path
from urllib.parse import quote

from steward import projection
from steward.sealing import Sealer

log = logging.getLogger(__name__)

LOOKUP_DIR = "steward-lookup"
DUCKDB_FILE = "master.duckdb"
# The layout: bump the number when tables or payloads change (stores of another layout are rebuilt).
FORMAT = "1:" + hashlib.sha256(json.dumps(projection.RECORD_TEXT_COLUMNS).encode()).hexdigest()[:8]

SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE records (record_key TEXT NOT NULL, golden_id TEXT, payload BLOB NOT NULL);
CREATE TABLE links (record_key_l TEXT NOT NULL, record_key_r TEXT NOT NULL, payload BLOB NOT NULL,
                    PRIMARY KEY (record_key_l, record_key_r)) WITHOUT ROWID;
CREATE TABLE customers (golden_id TEXT NOT NULL, status TEXT, merged_into TEXT, payload BLOB);
CREATE TABLE search (token BLOB NOT NULL, golden_id TEXT NOT NULL, PRIMARY KEY (token, golden_id)) WITHOUT ROWID;
"""
INDEXES = (  # made after the rows are in (faster than keeping them up to date row by row)
    "CREATE INDEX records_key ON records (record_key)",
    "CREATE INDEX records_golden ON records (golden_id, record_key)",
    "CREATE INDEX customers_id ON customers (golden_id)",
)
# Associated data binding a sealed payload to its row (a payload copied to another row does not open).
RECORD_AAD = "r\x1f{}"
LINK_AAD = "l\x1f{}\x1f{}"
CUSTOMER_AAD = "c\x1f{}"


def lookup_dir(version_dir: Path) -> Path:
    """``<master>/steward-lookup`` for ``<master>/versions/<run_id>``."""
    return Path(version_dir).resolve().parent.parent / LOOKUP_DIR


def lookup_path(version_dir: Path) -> Path:
    """The lookup store of the version in ``version_dir``."""
    return lookup_dir(version_dir) / f"{Path(version_dir).name}.sqlite"


def master_digest(version_dir: Path) -> str:
    """What identifies the version's database: its SHA-256 from the manifest, else its size and time."""
    manifest = Path(version_dir) / "manifest.json"
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
        return str(json.loads(manifest.read_text(encoding="utf-8"))["files"][DUCKDB_FILE]["sha256"])
    stat = (Path(version_dir) / DUCKDB_FILE).stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def expected_meta(version_dir: Path, sealer: Sealer) -> dict[str, str]:
    return {"format": FORMAT, "version": Path(version_dir).name, "master": master_digest(version_dir),
            "key": sealer.fingerprint}


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection to a finished store: never written in place (replaced by a rename), so immutable."""
    return sqlite3.connect(f"file:{quote(str(Path(path).resolve()))}?mode=ro&immutable=1", uri=True,
                           isolation_level=None, check_same_thread=False)


def lookup_fits(version_dir: Path, sealer: Sealer) -> bool:
    """True when the version has a complete lookup store of this layout, database and key."""
    path = lookup_path(version_dir)
    if not path.is_file():
        return False
    try:
        con = connect_read_only(path)
        try:
            meta = dict(con.execute("SELECT name, value FROM meta").fetchall())
        finally:
            con.close()
        expected = expected_meta(version_dir, sealer)
    except (sqlite3.Error, OSError):
        return False
    return all(meta.get(k) == v for k, v in expected.items())


def prune_lookups(version_dir: Path) -> list[str]:
    """Remove the stores (and lock files) of versions that no longer exist; their names."""
    folder = lookup_dir(version_dir)
    versions = Path(version_dir).resolve().parent
    removed = []
    for path in sorted(folder.glob("*.sqlite")) + sorted(folder.glob("*.lock")):
        if not (versions / path.stem).is_dir():
            path.unlink(missing_ok=True)
            removed.append(path.name)
    if removed:
        log.info("removed %d lookup file(s) of master versions that no longer exist", len(removed))
    return removed
