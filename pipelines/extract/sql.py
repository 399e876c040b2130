"""SQL extracts through SQLAlchemy, read in chunks; the URL comes from an environment variable.

The URL may hold a password: it is never logged and is cut out of every error message.
"""

from __future__ import annotations

import hashlib
import logging
import os

import numpy as np
import pyarrow as pa
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from mdm.errors import ConfigError, SourceError
from mdm.logs import redact
from pipelines.extract.convert import py_values_to_text
from pipelines.extract.quarantine import QuarantineBuilder
from pipelines.extract.rawfile import LINE, SPAN, RawFile, empty_raw_table
from pipelines.extract.result import FileInfo
from schemas.sources import SqlFormat

logger = logging.getLogger(__name__)


def _clean(message: str, url: str) -> str:
    return redact(message.replace(url, "<url>"))[:500]


def read_sql(system: str, fmt: SqlFormat, needed: list[str], chunk_rows: int = 50_000) -> RawFile:
    """Run the source's query and return the needed columns as text; ``LINE`` is the 1-based row number."""
    url = os.environ.get(fmt.url_env, "")
    if not url:
        raise ConfigError(
            f"{system}: environment variable {fmt.url_env} is not set; export it with the SQLAlchemy URL "
            "of the source database"
        )
    name = f"sql:{fmt.url_env}"
    try:
        engine = create_engine(url)
    except Exception as e:  # the driver's message may quote the URL: never show it
        raise ConfigError(
            f"{system}: the database URL in {fmt.url_env} is not usable ({type(e).__name__}); "
            "check the URL format and that its driver is installed"
        ) from None
    parts: list[pa.Table] = []
    offset = 0
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(text(fmt.query))
            columns = list(result.keys())
            missing = [c for c in needed if c not in columns]
            if missing:
                raise SourceError(
                    f"{system}: the query result lacks mapped column(s) {missing} (found {columns}); "
                    "fix the query or columns in the sources file"
                )
            positions = [columns.index(c) for c in needed]
            while rows := result.fetchmany(chunk_rows):
                cols = {c: py_values_to_text([r[p] for r in rows]) for c, p in zip(needed, positions, strict=True)}
                n = len(rows)
                cols[LINE] = pa.chunked_array([pa.array(np.arange(offset + 1, offset + n + 1, dtype=np.int64))])
                cols[SPAN] = pa.chunked_array([pa.array(np.ones(n, dtype=np.int32))])
                parts.append(pa.table(cols))
                offset += n
    except SQLAlchemyError as e:
        detail = _clean(str(getattr(e, "orig", None) or e).splitlines()[0], url)
        raise SourceError(
            f"{system}: the query on the database named by {fmt.url_env} failed ({type(e).__name__}: {detail}); "
            "check the database and the query in the sources file"
        ) from None
    finally:
        engine.dispose()
    table = pa.concat_tables(parts) if parts else empty_raw_table(needed)
    logger.info("%s: %d rows read from the database named by %s", system, offset, fmt.url_env)
    digest = hashlib.sha256(fmt.query.encode("utf-8")).hexdigest()
    info = FileInfo(path=name, sha256=digest, size_bytes=0, rows_read=table.num_rows)
    return RawFile(name=name, table=table, quarantine=QuarantineBuilder(system), info=info)
