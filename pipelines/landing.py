"""The run folder: immutable landing Parquet + manifest per source, quarantine, quality results, report.

Layout of ``runs_dir/<run_id>/``::

    landing/<system>.parquet          canonical rows that passed extract and the source gates
    landing/<system>.manifest.json    run id, business date, source files + checksums, row counts
    quarantine/quarantine.parquet     every quarantined row of the run (all sources)
    quality/                          data-quality results (JSON) and data docs (index.html)
    report/                           the run report

Files are written once (to a temporary name, then renamed) and made read-only; writing a
file that already exists raises. Run ids sort in time order (``R<business date>-<time>-<rand>``),
which :func:`find_last_good_landing` relies on.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mdm.crypto import PARQUET_OPTIONS, read_parquet_any, write_parquet_encrypted
from mdm.errors import ConfigError, MdmError
from pipelines.extract.result import ExtractResult
from pipelines.extract.scan import file_sha256
from schemas.canonical import QUARANTINE_SCHEMA

logger = logging.getLogger(__name__)

MANIFEST_VERSION = 1
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


def _check_run_id(run_id: str) -> None:
    if not _RUN_ID.match(run_id):
        raise ConfigError(f"run id {run_id!r} is not a safe folder name; use letters, digits, '-', '_' and '.'")


def _write_once(path: Path, write: Any) -> None:
    """Write through ``write(tmp_path)`` to a temporary file, rename it into place and make it read-only."""
    if path.exists():
        raise MdmError(f"{path} already exists and run files are immutable; start a new run instead of rewriting it")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    write(tmp)
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.chmod(tmp, _READ_ONLY)
    os.replace(tmp, path)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    _write_once(path, lambda tmp: tmp.write_text(json.dumps(payload, ensure_ascii=False, indent=2), encoding="utf-8"))


def _write_parquet(path: Path, table: pa.Table, key: bytes | None = None) -> None:
    """Parquet written once; encrypted (AES-GCM envelope) when ``key`` is given, since landing holds raw PII."""
    if key is None:
        _write_once(path, lambda tmp: pq.write_table(table, tmp, **PARQUET_OPTIONS))
    else:
        _write_once(path, lambda tmp: write_parquet_encrypted(table, tmp, key))


def read_landing(path: Path, key: bytes | None) -> pa.Table:
    """Read a landing or quarantine Parquet written by this module (decrypting when needed)."""
    return read_parquet_any(path, key)


@dataclass(frozen=True)
class RunFolder:
    """One run's folder; create it with :meth:`create`."""

    root: Path
    run_id: str
    business_date: dt.date
    key: bytes | None = field(default=None, repr=False)

    @classmethod
    def create(cls, runs_dir: Path, run_id: str, business_date: dt.date, key: bytes | None = None) -> RunFolder:
        _check_run_id(run_id)
        folder = cls(root=Path(runs_dir) / run_id, run_id=run_id, business_date=business_date, key=key)
        for sub in (folder.landing_dir, folder.quarantine_dir, folder.quality_dir, folder.report_dir):
            sub.mkdir(parents=True, exist_ok=True)
        logger.info("run folder %s ready", folder.root)
        return folder

    @property
    def landing_dir(self) -> Path:
        return self.root / "landing"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    @property
    def quality_dir(self) -> Path:
        return self.root / "quality"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    def landing_path(self, system: str) -> Path:
        return self.landing_dir / f"{system}.parquet"

    def manifest_path(self, system: str) -> Path:
        return self.landing_dir / f"{system}.manifest.json"

    def write_landing(self, result: ExtractResult, gate_statistics: dict[str, Any] | None = None) -> Path:
        """Land a source's canonical rows and its manifest (both immutable); returns the Parquet path.

        Land only extracts that passed their source gates: a landing file is what
        :func:`find_last_good_landing` offers for carry-forward.
        """
        path = self.landing_path(result.system)
        _write_parquet(path, result.canonical, self.key)
        sha, size = file_sha256(path)
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "run_id": self.run_id,
            "business_date": self.business_date.isoformat(),
            "source_system": result.system,
            "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "landing": {"file": path.name, "sha256": sha, "size_bytes": size, "rows": result.canonical.num_rows},
            "source_files": [
                {"path": f.path, "sha256": f.sha256, "size_bytes": f.size_bytes, "rows_read": f.rows_read}
                for f in result.files
            ],
            "rows_in": result.rows_in,
            "rows_canonical": result.rows_canonical,
            "rows_quarantined": result.rows_quarantined,
            "quality": gate_statistics or {},
        }
        _write_json(self.manifest_path(result.system), manifest)
        logger.info("landed %s: %d rows in %s", result.system, result.rows_canonical, path)
        return path

    def write_quarantine(self, tables: pa.Table | Sequence[pa.Table]) -> pa.Table:
        """Write the run's quarantined rows (one table or one per source) once; returns them as one table."""
        parts = [tables] if isinstance(tables, pa.Table) else list(tables)
        table = (
            pa.concat_tables([t.select(QUARANTINE_SCHEMA.names).cast(QUARANTINE_SCHEMA) for t in parts])
            if parts
            else QUARANTINE_SCHEMA.empty_table()
        )
        _write_parquet(self.quarantine_dir / "quarantine.parquet", table, self.key)
        logger.info("quarantine: %d rows", table.num_rows)
        return table


def read_manifest(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise MdmError(f"{path} is not a landing manifest")
    return data


def verify_landing(landing: Path) -> bool:
    """True when the landing file and its manifest exist and the checksum in the manifest matches."""
    manifest_path = landing.with_name(landing.name.removesuffix(".parquet") + ".manifest.json")
    if not landing.is_file() or not manifest_path.is_file():
        return False
    try:
        manifest = read_manifest(manifest_path)
        expected = manifest["landing"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError, MdmError):
        return False
    sha, _ = file_sha256(landing)
    return bool(sha == expected)


def find_last_good_landing(runs_dir: Path, system: str, before_run_id: str | None) -> Path | None:
    """Landing Parquet of ``system`` from the newest run older than ``before_run_id`` (``None``: any run).

    A landing is good when its manifest exists and its checksum still matches; runs are
    ordered by run id (run ids sort in time order).
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return None
    runs = sorted((p for p in runs_dir.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True)
    for run in runs:
        if before_run_id is not None and run.name >= before_run_id:
            continue
        landing = run / "landing" / f"{system}.parquet"
        if landing.exists():
            if verify_landing(landing):
                return landing
            logger.warning("landing %s fails its checksum or has no manifest; skipped", landing)
    return None
