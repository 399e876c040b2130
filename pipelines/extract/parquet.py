"""Parquet extracts: typed columns read one row group at a time and turned into canonical text."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mdm.errors import SourceError
from pipelines.extract.convert import to_text
from pipelines.extract.quarantine import QuarantineBuilder
from pipelines.extract.rawfile import LINE, SPAN, RawFile, empty_raw_table
from pipelines.extract.result import FileInfo
from pipelines.extract.scan import file_sha256

logger = logging.getLogger(__name__)


def read_parquet(system: str, path: Path, name: str, needed: list[str]) -> RawFile:
    """Read the needed columns of one Parquet file; ``LINE`` is the 1-based row number."""
    sha, size = file_sha256(path)
    if size == 0:
        raise SourceError(f"{system}: {name} is empty (0 bytes); the upstream export failed, re-run it")
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise SourceError(
            f"{system}: {name} is not a readable Parquet file ({type(e).__name__}: {e}); it is truncated or "
            "corrupt: re-run the upstream export"
        ) from e
    present = set(pf.schema_arrow.names)
    missing = [c for c in needed if c not in present]
    if missing:
        raise SourceError(
            f"{system}: {name} lacks mapped column(s) {missing} (found {sorted(present)}); the source schema "
            "changed: update columns in the sources file or ask the upstream team to restore them"
        )
    parts: list[pa.Table] = []
    offset = 0
    for group in range(pf.num_row_groups):
        try:
            chunk = pf.read_row_group(group, columns=needed)
        except (pa.ArrowException, OSError) as e:
            raise SourceError(
                f"{system}: row group {group} of {name} cannot be read ({type(e).__name__}); the file is "
                "truncated or corrupt: re-run the upstream export"
            ) from e
        cols = {c: to_text(chunk[c]) for c in needed}
        n = chunk.num_rows
        cols[LINE] = pa.chunked_array([pa.array(np.arange(offset + 1, offset + n + 1, dtype=np.int64))])
        cols[SPAN] = pa.chunked_array([pa.array(np.ones(n, dtype=np.int32))])
        parts.append(pa.table(cols))
        offset += n
    table = pa.concat_tables(parts) if parts else empty_raw_table(needed)
    logger.debug("%s: %s has %d rows in %d row groups", system, name, offset, pf.num_row_groups)
    info = FileInfo(path=name, sha256=sha, size_bytes=size, rows_read=table.num_rows)
    return RawFile(name=name, table=table, quarantine=QuarantineBuilder(system), info=info)
