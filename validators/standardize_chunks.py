"""The chunked standardize's Arrow side: chunk tables joined into one, and the shared-ID rule made global.

Every rule of the standardize step looks at one record at a time except one: an ID number held
by more than ``max_names_per_id`` distinct names is a placeholder. Standardized one chunk at a
time, a chunk sees only its own records, so an ID shared across chunks would be missed. Each
chunk therefore also carries two temporary columns (:data:`HELD_ID_KEY`, :data:`ID_FLAG_COUNT`);
:func:`join_chunks` counts the names per ID over all chunks at once (Arrow, no Python per row),
and fixes the few records the whole table marks and their own chunk did not (the global result
is a superset of every chunk's): ``id_placeholder`` True, ``id_key`` null, and ``ID_PLACEHOLDER``
placed in ``quality_flags`` where the whole-table merge puts it, right after the ID flags.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

log = logging.getLogger(__name__)

HELD_ID_KEY = "_std_held_id_key"
"""Temporary: the ID key a chunk nulled because its own records share it (null elsewhere)."""
ID_FLAG_COUNT = "_std_id_flag_count"
"""Temporary: how many of the row's leading ``quality_flags`` came from its ID."""
TEMPORARY_COLUMNS: tuple[str, ...] = (HELD_ID_KEY, ID_FLAG_COUNT)
PLACEHOLDER_FLAG = "ID_PLACEHOLDER"


def join_chunks(parts: Sequence[pa.Table], max_names_per_id: int) -> pa.Table:
    """One table from the chunks' tables (each with the temporary columns), the shared-ID rule applied
    over all of them, the temporary columns dropped.

    Chunks may infer different types for one column (``null`` or ``timestamp`` where a chunk holds no
    value, ``list<null>`` where it holds only empty lists, ``int`` where it has no null integer): they
    are cast to the type the whole table infers.
    """
    schema = common_schema(parts)
    table = pa.concat_tables([p.replace_schema_metadata(None).cast(schema) for p in parts])
    rows = _newly_shared(table, max_names_per_id)
    if len(rows):
        table = _mark_placeholders(table, rows)
        log.info("%d more records hold an ID shared by more than %d names across chunks", len(rows), max_names_per_id)
    return table.drop_columns(list(TEMPORARY_COLUMNS))


def common_schema(parts: Sequence[pa.Table]) -> pa.Schema:
    """The schema of the whole table that ``parts`` (the same columns) are pieces of, without metadata.

    A column's type comes from the pieces that hold a value in it (unified: ``list<null>`` and
    ``list<string>`` give ``list<string>``, ``int64`` and ``double`` give ``double``); a column with no
    value anywhere keeps the first piece's type.
    """
    fields = []
    for i in range(parts[0].num_columns):
        holding = [p.schema.field(i) for p in parts if p.column(i).null_count < p.num_rows]
        if not holding:
            fields.append(parts[0].schema.field(i))
            continue
        unified = pa.unify_schemas([pa.schema([f]) for f in holding], promote_options="permissive")
        fields.append(unified.field(0))
    return pa.schema(fields)


def shared_ids(id_key: pa.ChunkedArray, name_key: pa.ChunkedArray, max_names: int) -> pa.ChunkedArray:
    """:func:`validators.resident_id.shared_id_numbers` in Arrow: True where the row's ``id_key`` is held by
    more than ``max_names`` distinct ``name_key`` values (null keys and names never count)."""
    id_key, name_key = _as_string(id_key), _as_string(name_key)
    pairs = pa.table({"id": id_key, "name": name_key})
    pairs = pairs.filter(pc.and_(pc.is_valid(id_key), pc.is_valid(name_key)))
    counts = pairs.group_by("id").aggregate([("name", "count_distinct")])
    held = counts.filter(pc.greater(counts["name_count_distinct"], max_names))["id"].combine_chunks()
    return pc.is_in(id_key, value_set=held)  # a null key is never in it: False


def _as_string(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column.cast(pa.string()) if pa.types.is_null(column.type) else column


def _newly_shared(table: pa.Table, max_names: int) -> npt.NDArray[np.int64]:
    """Rows the rule marks over the whole table that their chunk did not mark (ascending)."""
    id_key = pc.coalesce(_as_string(table["id_key"]), _as_string(table[HELD_ID_KEY]))  # the key before nulling
    name_key = pc.coalesce(_as_string(table["name_latin_key"]), _as_string(table["name_norm"]))
    shared = shared_ids(id_key, name_key, max_names)
    # a row already a placeholder keeps its flags: the whole-table merge adds the flag only where
    # the ID itself was no placeholder, and its chunk has done that for the rows it found shared
    newly = pc.and_(shared, pc.invert(table["id_placeholder"]))
    return np.flatnonzero(newly.to_numpy(zero_copy_only=False))


def _mark_placeholders(table: pa.Table, rows: npt.NDArray[np.int64]) -> pa.Table:
    flags = table["quality_flags"]
    if pa.types.is_null(flags.type.value_type):  # no record had any flag: list<null>
        flags = flags.cast(pa.list_(pa.string()))
    leading = table[ID_FLAG_COUNT].take(rows).to_pylist()
    new_flags = [_with_placeholder(f, k) for f, k in zip(flags.take(rows).to_pylist(), leading, strict=True)]
    id_key = table["id_key"]
    changes = {
        "id_placeholder": _replace_rows(table["id_placeholder"], rows, pa.array(np.ones(len(rows), dtype=bool))),
        "quality_flags": _replace_rows(flags, rows, pa.array(new_flags, flags.type)),
    }
    if not pa.types.is_null(id_key.type):  # a null column (no record kept a key) has nothing to null
        id_key = _replace_rows(id_key, rows, pa.nulls(len(rows), id_key.type))
        # no key left anywhere: the whole table's column of None objects is Arrow's null type
        if id_key.null_count == len(id_key):
            id_key = pa.chunked_array([pa.nulls(len(c)) for c in id_key.chunks], pa.null())
        changes["id_key"] = id_key
    for name, column in changes.items():
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


def _with_placeholder(flags: list[str], leading: int) -> list[str]:
    """The row's flags as the whole-table merge would give them with ``ID_PLACEHOLDER`` after the ID flags."""
    head = flags[:leading]
    tail = [f for f in flags[leading:] if f != PLACEHOLDER_FLAG]
    return [*head, *(() if PLACEHOLDER_FLAG in head else (PLACEHOLDER_FLAG,)), *tail]


def _replace_rows(column: pa.ChunkedArray, rows: npt.NDArray[np.int64], values: pa.Array) -> pa.ChunkedArray:
    """``column`` with ``values[i]`` at row ``rows[i]`` (ascending); only the chunks holding such rows are copied."""
    chunks: list[pa.Array] = []
    start = 0
    for chunk in column.chunks:
        end = start + len(chunk)
        lo, hi = (int(i) for i in np.searchsorted(rows, [start, end]))
        if lo < hi:
            take = np.arange(len(chunk), dtype=np.int64)
            take[rows[lo:hi] - start] = len(chunk) + np.arange(hi - lo, dtype=np.int64)
            chunk = pa.concat_arrays([chunk, values.slice(lo, hi - lo)]).take(pa.array(take))
        chunks.append(chunk)
        start = end
    return pa.chunked_array(chunks, type=column.type)
