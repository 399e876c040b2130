"""Collecting quarantined rows: source, file, physical line, raw text (cut to 4 KiB), reason, detail."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pyarrow as pa

from schemas.canonical import QUARANTINE_SCHEMA, RAW_TEXT_MAX_BYTES, QuarantineReason, truncate_utf8


def bytes_to_text(raw: bytes, encoding: str) -> str:
    """Raw line bytes as text for a steward: decoded where possible, undecodable bytes shown as \\xNN."""
    text = raw.decode(encoding, errors="backslashreplace")
    return truncate_utf8(text.rstrip("\r\n"), RAW_TEXT_MAX_BYTES)


def values_to_text(values: Mapping[str, object]) -> str:
    """Raw text of a typed row (Parquet, SQL): its mapped source values as compact JSON."""
    return truncate_utf8(json.dumps(values, ensure_ascii=False, default=str), RAW_TEXT_MAX_BYTES)


@dataclass
class QuarantineBuilder:
    """Append-only collector of quarantined rows; ``lines`` counts the physical lines they cover."""

    system: str
    files: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    spans: list[int] = field(default_factory=list)

    def add(self, file: str, line: int, raw_text: str, reason: QuarantineReason, detail: str, span: int = 1) -> None:
        self.files.append(file)
        self.lines.append(line)
        self.raw.append(truncate_utf8(raw_text, RAW_TEXT_MAX_BYTES))
        self.reasons.append(reason.value)
        self.details.append(detail)
        self.spans.append(span)

    def extend(self, other: QuarantineBuilder) -> None:
        self.files.extend(other.files)
        self.lines.extend(other.lines)
        self.raw.extend(other.raw)
        self.reasons.extend(other.reasons)
        self.details.extend(other.details)
        self.spans.extend(other.spans)

    def __len__(self) -> int:
        return len(self.lines)

    def lines_covered(self, file: str) -> int:
        return sum(s for f, s in zip(self.files, self.spans, strict=True) if f == file)

    def rows_for(self, file: str) -> int:
        return sum(1 for f in self.files if f == file)

    def to_table(self) -> pa.Table:
        n = len(self.lines)
        table = pa.table(
            {
                "source_system": pa.array([self.system] * n, pa.string()),
                "source_file": pa.array(self.files, pa.string()),
                "source_line": pa.array(self.lines, pa.int64()),
                "raw_text": pa.array(self.raw, pa.string()),
                "reason": pa.array(self.reasons, pa.string()),
                "detail": pa.array(self.details, pa.string()),
            },
            schema=QUARANTINE_SCHEMA,
        )
        return table.sort_by([("source_file", "ascending"), ("source_line", "ascending")])


def empty_quarantine() -> pa.Table:
    return QUARANTINE_SCHEMA.empty_table()


def describe_lines(lines: Iterable[int], limit: int = 5) -> str:
    shown = sorted(lines)
    text = ", ".join(str(x) for x in shown[:limit])
    return text + (f" and {len(shown) - limit} more" if len(shown) > limit else "")
