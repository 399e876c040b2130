"""extract_source: read one configured source into canonical rows plus quarantined rows."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipelines.extract.codes import map_codes
from pipelines.extract.delimited import read_delimited
from pipelines.extract.parquet import read_parquet
from pipelines.extract.paths import relative_name, resolve_source_files
from pipelines.extract.quarantine import QuarantineBuilder, values_to_text
from pipelines.extract.rawfile import LINE, SPAN, RawFile
from pipelines.extract.result import ExtractResult
from pipelines.extract.rowchecks import FILE, Flag, duplicate_ids, missing_ids, too_long
from pipelines.extract.sql import read_sql
from pipelines.extract.vector import null_if_empty
from schemas.canonical import CANONICAL_COLUMNS, CANONICAL_SCHEMA, check_table
from schemas.enums import IdType
from schemas.sources import CANONICAL_TEXT_FIELDS, SourceConfig

logger = logging.getLogger(__name__)


def extract_source(src: SourceConfig, base_dir: Path, run_id: str) -> ExtractResult:
    """Read every file (or the query) of ``src`` and split its rows into canonical and quarantined.

    Batch-level problems (missing, empty, truncated or undecodable file, a mapped column
    missing, a path outside ``base_dir``) raise an :class:`mdm.errors.MdmError` subclass.
    """
    started = time.perf_counter()
    needed = list(dict.fromkeys(src.columns.values()))
    raws = _read(src, base_dir, needed)
    combined = pa.concat_tables([r.table.append_column(FILE, _repeat(r.name, r.table.num_rows)) for r in raws])
    combined = combined.select([*needed, FILE, LINE, SPAN])
    blanked = {col: null_if_empty(combined[col]) for col in needed}  # once per source column
    mapped = {field: blanked[col] for field, col in src.columns.items()}
    checked = pa.table({**mapped, FILE: combined[FILE], LINE: combined[LINE]})

    flags: list[Flag] = []
    if src.format.kind == "delimited":
        flags += too_long(checked, list(src.columns), src.format.max_field_bytes)
    flagged = np.zeros(checked.num_rows, dtype=bool)
    for flag_list in (flags, missing_ids(checked, "source_record_id")):
        for f in flag_list:
            if not flagged[f.index]:
                flagged[f.index] = True
                if flag_list is not flags:
                    flags.append(f)
    dupes = duplicate_ids(checked, "source_record_id", list(src.columns), flagged)
    for f in dupes:
        flagged[f.index] = True
    flags += dupes

    quarantine = QuarantineBuilder(src.system)
    for r in raws:
        quarantine.extend(r.quarantine)
    _quarantine_rows(quarantine, flags, combined, raws, needed)
    canonical = _canonical(src, checked.filter(pa.array(~flagged)) if flagged.any() else checked)
    rows_in = sum(r.table.num_rows + len(r.quarantine) for r in raws)
    result = ExtractResult(
        system=src.system,
        canonical=canonical,
        quarantine=quarantine.to_table(),
        files=[r.info for r in raws],
        rows_in=rows_in,
        rows_canonical=canonical.num_rows,
        rows_quarantined=len(quarantine),
    )
    logger.info(
        "run %s: %s extracted %d rows: %d canonical, %d quarantined in %.1f s",
        run_id,
        src.system,
        rows_in,
        result.rows_canonical,
        result.rows_quarantined,
        time.perf_counter() - started,
    )
    return result


def _read(src: SourceConfig, base_dir: Path, needed: list[str]) -> list[RawFile]:
    fmt = src.format
    if fmt.kind == "sql":
        return [read_sql(src.system, fmt, needed)]
    assert src.location is not None  # guaranteed by SourceConfig for file sources
    files = resolve_source_files(src.system, src.location, base_dir)
    raws: list[RawFile] = []
    for path in files:
        name = relative_name(path, base_dir)
        if fmt.kind == "delimited":
            raws.append(read_delimited(src.system, path, name, fmt, needed))
        else:
            raws.append(read_parquet(src.system, path, name, needed))
    return raws


def _repeat(value: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.string()), n)


def _quarantine_rows(
    quarantine: QuarantineBuilder, flags: list[Flag], combined: pa.Table, raws: list[RawFile], needed: list[str]
) -> None:
    if not flags:
        return
    by_name = {r.name: r for r in raws}
    rows = combined.take(pa.array([f.index for f in flags], pa.int64())).to_pylist()
    for flag, row in zip(flags, rows, strict=True):
        raw = by_name[row[FILE]]
        if raw.raw_text is not None:
            text = raw.raw_text(row[LINE], row[SPAN])
        else:
            text = values_to_text({c: row[c] for c in needed})
        quarantine.add(raw.name, row[LINE], text, flag.reason, flag.detail, span=row[SPAN])


def _canonical(src: SourceConfig, rows: pa.Table) -> pa.Table:
    n = rows.num_rows
    null_text = pa.nulls(n, pa.string())
    cols: dict[str, pa.ChunkedArray | pa.Array] = {}
    for field in CANONICAL_TEXT_FIELDS:
        cols[field] = rows[field] if field in src.columns else null_text
    cols["source_system"] = _repeat(src.system, n)
    cols["id_type_declared"] = map_codes(
        _as_chunked(cols["id_type_raw"]), {k: v.value for k, v in src.code_tables.id_type.items()}, IdType.UNKNOWN.value
    )
    cols["gender_declared"] = map_codes(_as_chunked(cols["gender_raw"]), dict(src.code_tables.gender), None)
    cols["source_file"] = rows[FILE]
    cols["source_line"] = rows[LINE]
    cols["source_trust"] = pa.array(np.full(n, src.trust, dtype=np.int32))
    table = pa.table({c: cols[c] for c in CANONICAL_COLUMNS}, schema=CANONICAL_SCHEMA)
    check_table(table, CANONICAL_SCHEMA, f"{src.system} canonical table")
    return table


def _as_chunked(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    return values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
