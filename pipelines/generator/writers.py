"""Write the extracts, the truth file and the manifest with fixed options (byte-identical per seed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.generator.config import GeneratorError
from pipelines.generator.textops import S, cat

_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "row_group_size": 256 * 1024,
    "version": "2.6",
}


def _join(columns: dict[str, np.ndarray], sep: str) -> list[str]:
    parts: list[np.ndarray | str] = []
    for i, values in enumerate(columns.values()):
        if i:
            parts.append(sep)
        parts.append(values)
    return np.asarray(cat(*parts), dtype=S).tolist()  # type: ignore[no-any-return]


def _write_text(path: Path, header: str, lines: list[str], encoding: str) -> None:
    body = "\n".join([header, *lines]) + "\n"
    try:
        path.write_bytes(body.encode(encoding))
    except OSError as e:
        raise GeneratorError(f"cannot write {path}: {e.strerror}; choose a writable --out folder") from e


def write_delimited(path: Path, columns: dict[str, np.ndarray]) -> None:
    """GB18030, '|'-delimited, no quoting; values must not contain '|' or line breaks."""
    _write_text(path, "|".join(columns), _join(columns, "|"), "gb18030")


def write_quoted_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    """UTF-8 with BOM, every field quoted, quotes doubled."""
    quoted = {k: cat('"', np.strings.replace(np.asarray(v, dtype=S), '"', '""'), '"') for k, v in columns.items()}
    header = ",".join(f'"{k}"' for k in columns)
    _write_text(path, header, _join(quoted, ","), "utf-8-sig")


def write_parquet(path: Path, table: pa.Table) -> None:
    try:
        pq.write_table(table, path, **_PARQUET_OPTIONS)
    except OSError as e:
        raise GeneratorError(f"cannot write {path}: {e}; choose a writable --out folder") from e


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise GeneratorError(f"cannot write {path}: {e.strerror}; choose a writable --out folder") from e
