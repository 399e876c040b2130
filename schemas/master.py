"""Arrow schemas of the published master tables (docs/ARCHITECTURE.md §5).

Each :class:`TableSpec` lists the columns a table must have, with their Arrow types.
Tables marked ``open`` may carry further columns (golden attributes chosen by the
survivorship config, ``n_<system>`` counts, extra match features); the listed ones are
still required. ``pipelines.publish`` conforms every table to its spec before writing.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mdm.errors import PublishError

__all__ = [
    "MASTER_TABLES", "REQUIRED_TABLES", "TableSpec", "conform_table", "empty_table", "plain_schema", "plain_values",
]

_STR = pa.string()
_LIST = pa.list_(pa.string())
_TS = pa.timestamp("us")
_NO_COLUMNS = pa.schema([])


@dataclass(frozen=True)
class TableSpec:
    """Required columns of one master table; ``open`` tables may carry more columns."""

    name: str
    schema: pa.Schema
    open: bool = False
    required: bool = True  # publish refuses to go without it; optional tables are written empty
    optional: pa.Schema = _NO_COLUMNS  # types of further columns, when present
    # Text columns of a few hundred values at most (systems, regions, run IDs, statuses; ``*``
    # patterns allowed): dictionary-encoded in memory from assembly through the analyst mart, a
    # few bytes a row instead of the text (at 10M records about a quarter of the tables' memory).
    # Files and databases store them as plain text.
    codes: tuple[str, ...] = ()

    def is_code(self, column: str) -> bool:
        """Whether ``column`` is one of this table's code-like text columns."""
        return any(fnmatchcase(column, pattern) for pattern in self.codes)


def _golden_optional() -> pa.Schema:
    """Types of the default survivorship columns when present (``<attr>_updated_at`` are checked by suffix)."""
    return pa.schema(
        [
            ("name", _STR),
            ("name_norm", _STR),
            ("name_pinyin", _STR),
            ("id_type", _STR),
            ("id_number", _STR),
            ("id_valid", pa.bool_()),
            ("gender", _STR),
            ("birth_date", pa.date32()),
            ("mobile", _STR),
            ("phone", _STR),
            ("email", _STR),
            ("address_norm", _STR),
            ("province", _STR),
            ("city", _STR),
            ("district", _STR),
            ("adcode", _STR),
        ]
    )


GOLDEN_OPTIONAL = _golden_optional()


GOLDEN_CUSTOMER = TableSpec(
    "golden_customer",
    pa.schema(
        [
            ("golden_id", _STR),
            ("n_records", pa.int64()),
            ("systems", _LIST),
            ("all_phones", _LIST),
            ("all_id_numbers", _LIST),
            ("all_names", _LIST),
            ("all_emails", _LIST),
            ("quality_flags", _LIST),
            ("first_seen_run", _STR),
            ("first_seen_date", pa.date32()),
            ("last_seen_run", _STR),
            ("last_seen_date", pa.date32()),
        ]
    ),
    open=True,
    optional=GOLDEN_OPTIONAL,
    codes=(
        "first_seen_run", "last_seen_run", "id_type", "gender", "name_script", "province", "city", "district",
        "adcode", "*_source_system",
    ),
)

CUSTOMER_XREF = TableSpec(
    "customer_xref",
    pa.schema(
        [
            ("source_system", _STR),
            ("source_record_id", _STR),
            ("record_key", _STR),
            ("golden_id", _STR),
            ("link_type", _STR),
            ("link_weight", pa.float64()),
        ]
    ),
    codes=("source_system", "link_type"),
)

GOLDEN_ID_REGISTRY = TableSpec(
    "golden_id_registry",
    pa.schema(
        [
            ("golden_id", _STR),
            ("status", _STR),
            ("merged_into", _STR),
            ("created_run_id", _STR),
            ("retired_run_id", _STR),
            ("issued_seq", pa.int64()),
        ]
    ),
    codes=("status", "created_run_id", "retired_run_id"),
)

GOLDEN_ID_EVENTS = TableSpec(
    "golden_id_events",
    pa.schema(
        [
            ("event_id", _STR),
            ("run_id", _STR),
            ("golden_id", _STR),
            ("event_type", _STR),
            ("related_golden_id", _STR),
            ("record_key", _STR),
            ("reason", _STR),
        ]
    ),
    required=False,
    codes=("run_id", "event_type", "reason"),
)

MATCH_LINKS = TableSpec(
    "match_links",
    pa.schema(
        [
            ("record_key_l", _STR),
            ("record_key_r", _STR),
            ("match_weight", pa.float64()),
            ("match_probability", pa.float64()),
            ("decision", _STR),
        ]
    ),
    open=True,
    required=False,
    codes=("decision",),
)

REVIEW_QUEUE = TableSpec(
    "review_queue",
    pa.schema(
        [
            ("record_key_l", _STR),
            ("record_key_r", _STR),
            ("match_weight", pa.float64()),
            ("match_probability", pa.float64()),
        ]
    ),
    open=True,
    required=False,
)

QUARANTINE = TableSpec(
    "quarantine",
    pa.schema(
        [
            ("source_system", _STR),
            ("source_file", _STR),
            ("source_line", pa.int64()),
            ("raw_text", _STR),
            ("reason", _STR),
            ("detail", _STR),
        ]
    ),
    required=False,
)

RUN_LOG = TableSpec(
    "run_log",
    pa.schema([("run_id", _STR), ("business_date", pa.date32()), ("started_at", _TS), ("status", _STR)]),
    open=True,
    required=False,
)

CUSTOMER_SYSTEMS = TableSpec(
    "customer_systems",
    pa.schema(
        [
            ("golden_id", _STR),
            ("source_system", _STR),
            ("n_records", pa.int64()),
            ("source_record_ids", _LIST),
        ]
    ),
    required=False,
    codes=("source_system",),
)

SOURCE_RECORDS = TableSpec(
    "source_records",
    pa.schema(
        [
            ("record_key", _STR),
            ("source_system", _STR),
            ("source_record_id", _STR),
            ("source_file", _STR),
            ("source_line", pa.int64()),
            ("name", _STR),
            ("id_number_raw", _STR),
            ("id_type", _STR),
            ("id_number", _STR),
            ("id_valid", pa.bool_()),
            ("name_norm", _STR),
            ("name_latin", _STR),
            ("name_pinyin", _STR),
            ("name_latin_key", _STR),
            ("gender", _STR),
            ("birth_date", pa.date32()),
            ("mobile", _STR),
            ("phones", _LIST),
            ("email", _STR),
            ("address_norm", _STR),
            ("updated_at", _TS),
            ("quality_flags", _LIST),
        ]
    ),
    open=True,
    required=False,
    codes=(
        "source_system", "source_file", "id_type", "id_type_declared", "id_type_raw", "gender", "gender_raw",
        "name_script", "province", "city", "district", "adcode",
    ),
)

MASTER_TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        GOLDEN_CUSTOMER,
        CUSTOMER_XREF,
        GOLDEN_ID_REGISTRY,
        GOLDEN_ID_EVENTS,
        MATCH_LINKS,
        REVIEW_QUEUE,
        QUARANTINE,
        RUN_LOG,
        CUSTOMER_SYSTEMS,
        SOURCE_RECORDS,
    )
}
REQUIRED_TABLES = tuple(name for name, spec in MASTER_TABLES.items() if spec.required)


# --------------------------------------------------------------------------- checking


def _family(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        return _family(t.value_type)
    checks = (
        ("null", pa.types.is_null),
        ("string", lambda x: pa.types.is_string(x) or pa.types.is_large_string(x)),
        ("int", pa.types.is_integer),
        ("float", pa.types.is_floating),
        ("bool", pa.types.is_boolean),
        ("timestamp", pa.types.is_timestamp),
        ("date", pa.types.is_date),
        ("list", lambda x: pa.types.is_list(x) or pa.types.is_large_list(x)),
    )
    return next((name for name, test in checks if test(t)), str(t))


_CASTABLE = {("int", "float"), ("timestamp", "date"), ("date", "timestamp")}


def _compatible(actual: pa.DataType, expected: pa.DataType) -> bool:
    fa, fe = _family(actual), _family(expected)
    if fa == "null" or (fa, fe) in _CASTABLE:
        return True
    if fa != fe:
        return False
    if fa == "list":
        return _compatible(actual.value_type, expected.value_type)
    return True


def _to_arrow(name: str, data: pa.Table | pd.DataFrame) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    try:
        return pa.Table.from_pandas(data, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError) as e:
        for col in data.columns:
            try:
                pa.array(data[col], from_pandas=True)
            except (pa.ArrowException, TypeError, ValueError) as col_error:
                raise PublishError(
                    f"table {name}: column {col} cannot be stored ({type(col_error).__name__}); "
                    "it mixes value types. Fix the step that builds it; the published master is unchanged."
                ) from e
        raise PublishError(f"table {name} cannot be converted to Arrow: {type(e).__name__}") from e


def _expected_type(spec: TableSpec, column: str, actual: pa.DataType) -> pa.DataType | None:
    if column in spec.schema.names:
        return spec.schema.field(column).type
    if column in spec.optional.names:
        return spec.optional.field(column).type
    if pa.types.is_timestamp(actual):
        return pa.timestamp("us", tz=actual.tz)
    return None


def conform_table(spec: TableSpec, data: pa.Table | pd.DataFrame) -> pa.Table:
    """``data`` checked against ``spec`` and cast to its types (required columns first, then extras).

    Raises :class:`PublishError` naming the table and column on a missing, unexpected or
    mistyped column. Casts only within a type family (int64 -> int32, string -> large
    string, timestamp[ns] -> timestamp[us], timestamp -> date32, all-null -> anything).
    """
    table = _to_arrow(spec.name, data)
    missing = [c for c in spec.schema.names if c not in table.column_names]
    if missing:
        raise PublishError(
            f"table {spec.name} lacks required column(s) {', '.join(missing)}; "
            "the step that builds it must add them (schemas/master.py lists the contract)"
        )
    extra = [c for c in table.column_names if c not in spec.schema.names]
    if extra and not spec.open:
        raise PublishError(
            f"table {spec.name} has unexpected column(s) {', '.join(extra)}; drop them before publishing"
        )
    if len(set(table.column_names)) != len(table.column_names):
        raise PublishError(f"table {spec.name} names a column twice")
    arrays, fields = [], []
    for col in [*spec.schema.names, *extra]:
        arr = table.column(col)
        expected = _expected_type(spec, col, arr.type)
        if expected is not None and _family(expected) == "string" and _family(arr.type) in ("string", "null"):
            arr = _text(arr, expected, spec.is_code(col))
            expected = None
        elif expected is None and spec.is_code(col) and _family(arr.type) == "string":
            arr = _text(arr, pa.string(), True)
        if expected is not None and arr.type != expected:
            if not _compatible(arr.type, expected):
                raise PublishError(
                    f"table {spec.name}: column {col} has type {arr.type}, expected {expected}; "
                    "fix the step that builds it (the published master is unchanged)"
                )
            try:
                arr = arr.cast(expected, safe=not pa.types.is_timestamp(arr.type))
            except pa.ArrowInvalid as e:
                raise PublishError(
                    f"table {spec.name}: column {col} does not fit {expected} ({type(e).__name__}); "
                    "fix the step that builds it"
                ) from e
        arrays.append(arr)
        fields.append(pa.field(col, arr.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _text(arr: pa.ChunkedArray, expected: pa.DataType, code: bool) -> pa.ChunkedArray:
    """A text column as the master holds it: ``expected`` (string) values, dictionary-encoded (int32
    codes) when it is a code column or arrives encoded, plain otherwise."""
    if pa.types.is_dictionary(arr.type) or code:
        wanted = pa.dictionary(pa.int32(), expected)
        if arr.type == wanted:
            return arr
        if pa.types.is_dictionary(arr.type):
            return arr.cast(wanted)
        return pc.dictionary_encode(arr.cast(expected) if arr.type != expected else arr)
    return arr if arr.type == expected else arr.cast(expected)


def empty_table(spec: TableSpec) -> pa.Table:
    """A table with the spec's required columns and no rows."""
    return spec.schema.empty_table()


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with every dictionary-encoded field replaced by its value type (metadata kept)."""
    fields = [
        f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in schema
    ]
    return pa.schema(fields, metadata=schema.metadata)


def plain_values(table: pa.Table) -> pa.Table:
    """``table`` with its dictionary-encoded columns decoded to their values (the others as they are).

    The master keeps code-like text (systems, regions, run IDs, lineage) dictionary-encoded in
    memory; what is stored (Parquet files) and what readers get is plain text, so a caller
    decodes a bounded slice at a time.
    """
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
    return table
