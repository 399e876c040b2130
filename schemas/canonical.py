"""Arrow schemas of the canonical record and the quarantine table (docs/ARCHITECTURE.md §1-2)."""

from __future__ import annotations

from enum import StrEnum

import pyarrow as pa

from mdm.errors import SourceError

RAW_TEXT_MAX_BYTES = 4096
"""Quarantined raw text is cut to this many UTF-8 bytes (at a character boundary)."""


class QuarantineReason(StrEnum):
    """Why a source row could not be used (the ``reason`` column of the quarantine table)."""

    ENCODING_ERROR = "ENCODING_ERROR"
    COLUMN_COUNT = "COLUMN_COUNT"
    NO_RECORD_ID = "NO_RECORD_ID"
    DUPLICATE_RECORD_ID = "DUPLICATE_RECORD_ID"
    FIELD_TOO_LONG = "FIELD_TOO_LONG"
    UNPARSEABLE_ROW = "UNPARSEABLE_ROW"


CANONICAL_COLUMNS: tuple[str, ...] = (
    "source_system",
    "source_record_id",
    "customer_no",
    "name",
    "name_latin",
    "id_type_raw",
    "id_type_declared",
    "id_number_raw",
    "gender_raw",
    "gender_declared",
    "birth_date_raw",
    "mobile_raw",
    "phone_raw",
    "address_raw",
    "email_raw",
    "updated_at_raw",
    "source_file",
    "source_line",
    "source_trust",
)

_INT_COLUMNS = {"source_line": pa.int64(), "source_trust": pa.int32()}

CANONICAL_SCHEMA = pa.schema([pa.field(c, _INT_COLUMNS.get(c, pa.string())) for c in CANONICAL_COLUMNS])

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source_system", pa.string()),
        pa.field("source_file", pa.string()),
        pa.field("source_line", pa.int64()),
        pa.field("raw_text", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
    ]
)


def truncate_utf8(text: str, max_bytes: int = RAW_TEXT_MAX_BYTES) -> str:
    """Cut ``text`` to at most ``max_bytes`` UTF-8 bytes without splitting a character."""
    if len(text) * 4 <= max_bytes:
        return text
    encoded = text.encode("utf-8", errors="surrogatepass")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def check_table(table: pa.Table, schema: pa.Schema, what: str) -> None:
    """Raise :class:`SourceError` when ``table`` does not carry exactly ``schema`` (names, order, types)."""
    if table.schema.equals(schema):
        return
    got = [f"{f.name}:{f.type}" for f in table.schema]
    want = [f"{f.name}:{f.type}" for f in schema]
    raise SourceError(f"{what} does not match its contract; expected columns {want}, got {got}")
