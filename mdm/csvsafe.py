"""Spreadsheet-safe CSV: cells that a spreadsheet would run as a formula are neutralized.

A cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return is prefixed with a
single quote (OWASP's advice against CSV injection); files are UTF-8 with BOM so Excel
shows Chinese text correctly.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """The text of one cell, neutralized if a spreadsheet would read it as a formula."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    text = str(value)
    if text.startswith(_TRIGGERS):
        return "'" + text
    return text


def unsafe_cell(text: str) -> str:
    """Undo :func:`safe_cell` when a reviewed sheet is read back."""
    if len(text) > 1 and text[0] == "'" and text[1:].startswith(_TRIGGERS):
        return text[1:]
    return text


def write_safe_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as spreadsheet-safe CSV (UTF-8 with BOM, every field quoted)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_ALL)
        writer.writerow([safe_cell(c) for c in frame.columns])
        for row in frame.itertuples(index=False, name=None):
            writer.writerow([safe_cell(v) for v in row])
    return path


def read_safe_csv(path: Path, required: Sequence[str] = ()) -> list[dict[str, str]]:
    """Read a CSV written by :func:`write_safe_csv` (or edited in a spreadsheet) back into rows."""
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = [unsafe_cell(h) for h in (reader.fieldnames or [])]
        missing = [c for c in required if c not in header]
        if missing:
            from mdm.errors import ReviewError

            raise ReviewError(f"{path} lacks the column(s) {missing}; export a fresh sheet with `mdm review export`")
        rows: Iterable[dict[str, str]] = (
            {unsafe_cell(k): unsafe_cell(v or "") for k, v in r.items() if k is not None} for r in reader
        )
        return list(rows)
