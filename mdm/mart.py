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
from collections.abc import Mapping, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa

from mdm.crypto import DuckDBFileWriter, FileDigest, read_parquet_any, write_parquet_sealed
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
    are not read and decrypted again; only tables with a file in the version are used. A
    mutable mapping is consumed: each table is removed from it once masked, so the caller's
    copy is freed as the build goes (peak memory).
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
    dropped_report: dict[str, list[str]] = {}
    shapes: dict[str, tuple[int, list[str]]] = {}
    digests: dict[str, FileDigest] = {}
    memo = MaskMemo()
    in_memory = master_tables if isinstance(master_tables, MutableMapping) else dict(master_tables or {})
    # One table at a time (largest first: the source records hold every value the golden records
    # show, so their tokens come from the memo): masked, handed to the DuckDB writer thread and
    # written as Parquet, then dropped; only one masked table is held at a time.
    with DuckDBFileWriter(partial / MART_DB, mart_key) as database, ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="mart-duckdb"
    ) as pool:
        pending: Future[None] | None = None
        for file in sorted(sources, key=lambda f: -f.stat().st_size):
            held = in_memory.pop(file.stem, None)
            table = held if isinstance(held, pa.Table) else read_parquet_any(file, master_key)
            masked, dropped = mask_table(table, config, token_key, memo)
            extra = customer_360(table) if file.stem == "customer_xref" else None
            del table, held
            if dropped:
                dropped_report[file.stem] = dropped
                log.info("mart: table %s without column(s) %s", file.stem, ", ".join(dropped))
            for table_name, out in ((file.stem, masked), *((("customer_360", extra),) if extra is not None else ())):
                if pending is not None:
                    pending.result()  # one table in the writer at a time; its error surfaces here
                pending = pool.submit(database.add, table_name, out)
                digests[f"{table_name}.parquet"] = write_parquet_sealed(out, partial / f"{table_name}.parquet",
                                                                         mart_key)
                shapes[table_name] = (out.num_rows, out.column_names)
            del masked, extra
        if pending is not None:
            pending.result()
        database.commit()
    del memo
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
