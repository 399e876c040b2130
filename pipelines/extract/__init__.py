"""Extract: read each configured source (delimited text, Parquet, SQL) into canonical records.

Rows that cannot be used go to the quarantine with a reason code; batch-level problems
raise an :class:`mdm.errors.MdmError` subclass whose message says how to fix them.
"""

from pipelines.extract.core import extract_source
from pipelines.extract.paths import resolve_source_files
from pipelines.extract.result import ExtractResult, FileInfo

__all__ = ["ExtractResult", "FileInfo", "extract_source", "resolve_source_files"]
