"""What one source's extract produced: canonical rows, quarantined rows and file lineage."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from mdm.errors import SourceError


@dataclass(frozen=True)
class FileInfo:
    """One file read for a source (a SQL source has one pseudo-file named after its ``url_env``).

    ``rows_read`` counts records (canonical + quarantined) that came from the file. For text
    files, ``lines`` is the number of physical lines, ``header_lines`` and ``blank_lines`` the
    lines that hold no record; every other line belongs to a canonical or a quarantined row.
    """

    path: str
    sha256: str
    size_bytes: int
    rows_read: int
    lines: int = 0
    header_lines: int = 0
    blank_lines: int = 0
    fast_path: bool = False


@dataclass(frozen=True)
class ExtractResult:
    """The outcome of :func:`pipelines.extract.extract_source` for one source system.

    Invariant (checked on construction): ``rows_in == rows_canonical + rows_quarantined``.
    An exact copy of a row (same record id, same content) counts as a row in; the first copy
    is canonical and each further copy is quarantined as ``DUPLICATE_RECORD_ID``.
    """

    system: str
    canonical: pa.Table
    quarantine: pa.Table
    files: list[FileInfo] = field(default_factory=list)
    rows_in: int = 0
    rows_canonical: int = 0
    rows_quarantined: int = 0

    def __post_init__(self) -> None:
        if self.rows_canonical != self.canonical.num_rows or self.rows_quarantined != self.quarantine.num_rows:
            raise SourceError(
                f"{self.system}: row counts disagree with the tables "
                f"({self.rows_canonical} vs {self.canonical.num_rows} canonical, "
                f"{self.rows_quarantined} vs {self.quarantine.num_rows} quarantined); this is a defect in extract"
            )
        if self.rows_in != self.rows_canonical + self.rows_quarantined:
            raise SourceError(
                f"{self.system}: {self.rows_in} rows read but {self.rows_canonical} canonical + "
                f"{self.rows_quarantined} quarantined; rows were lost, this is a defect in extract"
            )
