"""The per-file output of a reader, before row checks and code tables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from pipelines.extract.quarantine import QuarantineBuilder
from pipelines.extract.result import FileInfo

LINE = "__line"
"""Column of the 1-based physical line (text) or row number (Parquet, SQL) where a row starts."""
SPAN = "__span"
"""Column of the number of physical lines a row covers (1 unless a quoted field holds newlines)."""


@dataclass(frozen=True)
class RawFile:
    """Rows of one file: the mapped source columns as strings plus ``LINE`` and ``SPAN``.

    ``raw_text(line, span)`` returns the raw text of a row for the quarantine; ``None`` means
    the row's mapped values are rendered as JSON instead (typed sources).
    """

    name: str
    table: pa.Table
    quarantine: QuarantineBuilder
    info: FileInfo
    raw_text: Callable[[int, int], str] | None = None


def empty_raw_table(needed: list[str]) -> pa.Table:
    """A reader's table with no rows: the needed source columns plus ``LINE`` and ``SPAN``."""
    cols: dict[str, pa.Array] = {c: pa.array([], pa.string()) for c in needed}
    cols[LINE] = pa.array([], pa.int64())
    cols[SPAN] = pa.array([], pa.int32())
    return pa.table(cols)
