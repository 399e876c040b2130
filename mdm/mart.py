"""The analyst mart: the master with personal data masked and tokenized, published like the master.

Layout under ``mart_dir`` (e.g. ``data/mart/``)::

    CURRENT                      name of the current mart version (switched with os.replace)
    versions/<version>/          <table>.parquet, mart.duckdb, manifest.json

Every master table found in the version folder is passed through
:func:`validators.masking.mask_table`: ID numbers, phones, names and e-mails appear only
masked and as keyed tokens, addresses down to the district, ``quarantine.raw_text`` and
every column the masking config does not classify are dropped. ``customer_360`` adds
per-customer counts by source system.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa

from mdm.crypto import FileDigest, read_parquet_any, write_duckdb_tables, write_parquet_sealed
from mdm.errors import MdmError
from schemas.masking import MaskingConfig
from validators.masking import MaskMemo, mask_table

log = logging.getLogger(__name__)

__all__ = ["MART_DB", "MartNotFoundError", "build_mart", "current_mart", "customer_360"]

MART_DB = "mart.duckdb"
MANIFEST = "manifest.json"
CURRENT = "CURRENT"
PARTIAL = ".partial"
_IDENT = re.compile(r"[^a-z0-9_]+")


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


def customer_360(xref: pa.Table) -> pa.Table:
    """Per golden ID: number of source records, of systems, the systems, and ``n_<system>`` counts."""
    con = duckdb.connect()
    try:
        con.register("x", xref)
        systems = [r[0] for r in con.execute("SELECT DISTINCT source_system FROM x ORDER BY 1").fetchall() if r[0]]
        per_system = "".join(
            f', count(*) FILTER (WHERE source_system = ?) AS "n_{_IDENT.sub("_", str(s).lower())}"' for s in systems
        )
        sql = (
            "SELECT golden_id, count(*) AS n_records, count(DISTINCT source_system) AS n_systems, "
            f"list(DISTINCT source_system ORDER BY source_system) AS systems{per_system} "
            "FROM x GROUP BY golden_id ORDER BY golden_id"
        )
        return con.execute(sql, systems).to_arrow_table()
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
) -> Path:
    """Build the analyst mart from one published master version and make it current; return its folder.

    ``master_key`` opens an encrypted master; ``mart_key`` (optional) encrypts the mart too.
    ``master_tables``: that version's tables already in memory (as published), so the files
    are not read and decrypted again; only tables with a file in the version are used.
    """
    master_version_dir, mart_dir = Path(master_version_dir), Path(mart_dir)
    if not token_key:
        raise MdmError("the analyst mart needs a token key: set MDM_TOKEN_KEY")
    sources = sorted(master_version_dir.glob("*.parquet"))
    if not sources:
        raise MartNotFoundError(f"{master_version_dir} holds no master tables (*.parquet)")
    tables: dict[str, pa.Table] = {}
    dropped_report: dict[str, list[str]] = {}
    memo = MaskMemo()
    # largest first: the source records hold every value the golden records show, so those mask from the memo
    in_memory = dict(master_tables or {})
    for file in sorted(sources, key=lambda f: -f.stat().st_size):
        held = in_memory.get(file.stem)
        table = held if isinstance(held, pa.Table) else read_parquet_any(file, master_key)
        masked, dropped = mask_table(table, config, token_key, memo)
        del table, held
        tables[file.stem] = masked
        if dropped:
            dropped_report[file.stem] = dropped
            log.info("mart: table %s without column(s) %s", file.stem, ", ".join(dropped))
    del memo
    tables = {name: tables[name] for name in sorted(tables)}
    if "customer_xref" in tables and {"golden_id", "source_system"} <= set(tables["customer_xref"].column_names):
        tables["customer_360"] = customer_360(tables["customer_xref"])
    root = mart_dir / "versions"
    root.mkdir(parents=True, exist_ok=True)
    name = _version_name(root, master_version_dir.name)
    partial = root / (name + PARTIAL)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    digests: dict[str, FileDigest] = {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mart-duckdb") as pool:
        database = pool.submit(write_duckdb_tables, partial / MART_DB, tables, mart_key)
        try:
            for table_name, table in tables.items():
                target = partial / f"{table_name}.parquet"
                digests[target.name] = write_parquet_sealed(table, target, mart_key)
        finally:
            database.result()
    digests[MART_DB] = FileDigest((partial / MART_DB).stat().st_size, _sha256(partial / MART_DB))
    manifest = {
        "version": name,
        "master_version": master_version_dir.name,
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "encrypted": mart_key is not None,
        "tables": {t: {"rows": tbl.num_rows, "columns": tbl.column_names} for t, tbl in tables.items()},
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
    log.info("analyst mart %s built from master %s (%d tables)", name, master_version_dir.name, len(tables))
    return root / name
