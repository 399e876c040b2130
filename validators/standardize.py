"""Standardize canonical records: every identity field parsed, validated and flagged.

This module only wires the field-level validators together (each of which normalizes
distinct values once) and resolves the cross-field rules: birth date and gender
declared vs. read from the ID, ID numbers shared by many different names.
The output is the standardized record of docs/ARCHITECTURE.md §3.

:func:`standardize_table` does the same a chunk of records at a time and returns an Arrow table,
so that only one chunk is ever held as a pandas frame (see :mod:`validators.standardize_chunks`
for how the one rule across records, IDs shared by many names, is kept whole-table).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mdm.memory import release_memory
from validators.dates import parse_dates, parse_timestamps
from validators.flag_codes import FlagCodes, from_mask, from_series, merge_codes, merge_flag_codes, to_arrow
from validators.gc_pause import paused_gc
from validators.gender import standardize_gender
from validators.id_documents import id_columns
from validators.names import name_columns
from validators.offload import CodedContacts, Offloaded
from validators.resident_id import shared_id_numbers
from validators.standardize_chunks import HELD_ID_KEY, ID_FLAG_COUNT, join_chunks

log = logging.getLogger(__name__)

DEFAULT_DATE_FORMATS: tuple[str, ...] = ("%Y%m%d", "%Y-%m-%d")
ADDRESS_COLUMNS: tuple[str, ...] = (
    "address_norm", "province", "city", "district", "adcode", "road", "house_no", "building", "unit", "room",
)
MAIN_COLUMNS: tuple[str, ...] = (
    "rid", "record_key", "id_type", "id_number", "id_valid", "id_placeholder", "id_key", "id_birth_date", "id_gender",
    "name_norm", "name_script", "name_pinyin", "name_fuzzy", "name_latin_key", "gender", "birth_date",
)
"""The columns the main process adds itself, in the order they come in the standardized record."""
DATE_COLUMNS: tuple[str, ...] = ("id_birth_date", "birth_date")
CONTACT_COLUMNS: tuple[str, ...] = ("mobile", "phones", "email", *ADDRESS_COLUMNS)
"""The columns :class:`validators.offload.Offloaded` adds, in the order they come after :data:`MAIN_COLUMNS`."""


@dataclass(frozen=True)
class StandardizeRules:
    """Cross-field rules of standardization."""

    max_names_per_id: int = 3
    """An ID number held by more distinct names than this is treated as a placeholder."""
    dob_tolerance_days: int = 0
    """Declared and ID birth dates further apart than this raise DOB_CONFLICTS_WITH_ID."""
    date_formats: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Per source system: the date formats its extract uses (tried first)."""
    workers: int = 2
    """Processes for the field work: with 2, e-mails, phones and addresses are shared with a second process."""
    min_rows_for_workers: int = 50_000
    """Below this many records the second process costs more than it saves."""
    address_chunk: int = 8_192
    """Distinct addresses per unit of work the two processes share (the main process takes over the last units)."""
    chunk_rows: int = 1_250_000
    """:func:`standardize_table` standardizes at most this many records at a time (about 3 GB of pandas
    frame per million at the peak), in chunks of equal size (so no small last chunk pays for a second
    process of its own); a table of at most this many records goes in one piece."""


FlagSource = pd.Series | FlagCodes | tuple[np.ndarray | pd.Series, str]

FIELD_INPUTS: frozenset[str] = frozenset({
    "source_system", "source_record_id", "name", "name_latin", "id_type_declared", "id_number_raw", "gender_raw",
    "gender_declared", "birth_date_raw", "updated_at_raw",
})
"""The canonical columns the main process's field rules read; :func:`standardize_table` converts only these to
pandas. The contacts' raw columns (mobile, phone, address, e-mail) are read from Arrow by
:class:`validators.offload.Offloaded`; the others (customer number, raw ID type, file, line, trust) pass
through as the Arrow columns they are."""


def _flag_codes(source: FlagSource) -> FlagCodes:
    """A flag source as codes: a Series of flag lists (or None), a Series of single flag strings (or None),
    a (mask, code) tuple that flags the rows where mask holds, or :class:`FlagCodes` already."""
    if isinstance(source, FlagCodes):
        return source
    if isinstance(source, tuple):
        mask, code = source
        return from_mask(mask, code)
    return from_series(source)


def merge_flags(n: int, *sources: FlagSource) -> pd.Series:
    """One list of reason codes per row from several flag sources, in source order, duplicates removed."""
    return pd.Series(merge_flag_codes(n, [_flag_codes(s) for s in sources]), dtype=object)


def _parse_birth_dates(df: pd.DataFrame, rules: StandardizeRules) -> pd.DataFrame:
    """Parse declared birth dates with each source's own formats first."""
    value = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns]")
    flag = pd.Series(None, index=df.index, dtype=object)
    for system, idx in df.groupby("source_system", sort=False).groups.items():
        formats = list(rules.date_formats.get(str(system), DEFAULT_DATE_FORMATS))
        parsed = parse_dates(df.loc[idx, "birth_date_raw"], formats)
        value.loc[idx] = pd.to_datetime(parsed["value"], errors="coerce")
        flag.loc[idx] = parsed["flag"]
    return pd.DataFrame({"value": value, "flag": flag})


def _repetitive(column: pa.ChunkedArray, sample: int = 10_000) -> bool:
    """A string column whose first values repeat (fewer than 90% of them distinct)."""
    head = column.slice(0, sample)
    return pa.types.is_string(column.type) and len(head) > 0 and len(head.unique()) * 10 < len(head) * 9


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """``table.to_pandas().reset_index(drop=True)``, with the string objects of mostly-distinct columns not
    deduplicated.

    Deduplication hashes every string (about half of the 2.6 s on 1M records) and only saves
    memory where values repeat; the values are the same either way.
    """
    if (table.schema.metadata or {}).get(b"pandas") or len(set(table.column_names)) != table.num_columns:
        return table.to_pandas().reset_index(drop=True)
    columns = {name: table[name].to_pandas(deduplicate_objects=_repetitive(table[name])) for name in table.column_names}
    return pd.DataFrame(columns, copy=False)  # a fresh RangeIndex; the columns stay separate blocks (no copy)


def standardize(canonical: pa.Table | pd.DataFrame, rules: StandardizeRules | None = None) -> pd.DataFrame:
    """Turn canonical records into standardized records (originals kept beside standardized values)."""
    with paused_gc():  # millions of acyclic lists and tuples: full collections would walk them again and again
        return _standardize(canonical, rules or StandardizeRules())


def standardize_table(
    canonical: pa.Table, rules: StandardizeRules | None = None, chunk_rows: int | None = None
) -> pa.Table:
    """:func:`standardize` as an Arrow table, ``chunk_rows`` (default ``rules.chunk_rows``) records at a time.

    The result holds ``canonical``'s own columns as they are (only :data:`FIELD_INPUTS` are ever
    converted to pandas), then the columns :func:`standardize` adds, with the values and types
    ``pa.Table.from_pandas`` gives its frame's (the same whatever the chunk size, row order kept);
    the schema carries no pandas metadata. Each chunk's frame is freed before the next one; each
    chunk starts its own second process (when it has ``rules.min_rows_for_workers`` records).
    """
    rules = rules or StandardizeRules()
    size = rules.chunk_rows if chunk_rows is None else chunk_rows
    if size < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {size}")
    n = canonical.num_rows
    if n <= size:
        with paused_gc():
            return _standardize_arrow(canonical, rules)
    parts = []
    size = -(-n // -(-n // size))  # equal chunks: ceil(n / number of chunks)
    for start in range(0, n, size):
        with paused_gc():
            parts.append(_standardize_arrow(canonical.slice(start, size), rules, first_rid=start, for_chunks=True))
        release_memory()
        log.info("standardized records %d-%d of %d", start + 1, min(start + size, n), n)
    return join_chunks(parts, rules.max_names_per_id)


def _standardize_arrow(
    canonical: pa.Table, rules: StandardizeRules, first_rid: int = 0, for_chunks: bool = False
) -> pa.Table:
    """The standardized table: ``canonical``'s columns as they are, then the columns :func:`standardize` adds,
    of the types ``pa.Table.from_pandas`` gives its frame's."""
    table = _standardize(canonical, rules, first_rid=first_rid, for_chunks=for_chunks, arrow=True)
    assert isinstance(table, pa.Table)
    return table


def _standardize(
    canonical: pa.Table | pd.DataFrame,
    rules: StandardizeRules,
    first_rid: int = 0,
    for_chunks: bool = False,
    arrow: bool = False,
) -> pd.DataFrame | pa.Table:
    """The standardized records; ``first_rid`` is the first record's ``rid``. ``for_chunks`` adds the
    temporary columns :func:`validators.standardize_chunks.join_chunks` needs to apply the shared-ID rule
    over all chunks.

    ``arrow`` (an Arrow ``canonical``): the result is an Arrow table, ``canonical``'s columns as they are
    and then the columns added. Only :data:`FIELD_INPUTS` are converted to pandas; the main process's own
    columns are converted to Arrow while the second process is still on the contacts, and the contacts and
    reason codes are taken from their distinct values in Arrow (no Python object per record), so little is
    left for the main process alone once both are done.
    """
    n = canonical.num_rows if isinstance(canonical, pa.Table) else len(canonical)
    # started first: the second process's imports and gazetteer load overlap the conversion below
    offloaded = Offloaded(canonical, rules.workers > 1 and n >= rules.min_rows_for_workers, rules.address_chunk)
    try:
        if isinstance(canonical, pa.Table):
            read = [c for c in canonical.column_names if c in FIELD_INPUTS] if arrow else canonical.column_names
            df = _to_pandas(canonical.select(read))
        else:
            df = canonical.copy().reset_index(drop=True)
        df["rid"] = np.arange(first_rid, first_rid + n, dtype=np.int64)
        if not arrow:  # the Arrow path joins the keys in Arrow (_record_keys)
            df["record_key"] = _record_key_objects(df)

        ids, id_flags = id_columns(df["id_type_declared"], df["id_number_raw"])
        names, name_flags = name_columns(df["name"], df.get("name_latin"))
        dob = _parse_birth_dates(df, rules)
        updated = parse_timestamps(df["updated_at_raw"], ["%Y-%m-%d %H:%M:%S", "%Y%m%d", "%Y-%m-%d"])
        declared_gender = standardize_gender(
            df["gender_declared"].where(df["gender_declared"].notna(), df["gender_raw"])
        )
        cross = _cross_field(ids, names, dob, declared_gender, rules)

        out = df
        out["id_type"] = ids["id_type"]
        out["id_number"] = ids["id_number"]
        out["id_valid"] = ids["id_valid"].astype(bool)
        out["id_placeholder"] = cross.id_placeholder
        out["id_key"] = cross.id_key
        out["id_birth_date"] = cross.id_birth_date if arrow else _date_objects(cross.id_birth_date)
        out["id_gender"] = ids["id_gender"]
        for col in ("name_norm", "name_script", "name_pinyin", "name_fuzzy", "name_latin_key"):
            out[col] = names[col]
        out["gender"] = cross.gender
        out["birth_date"] = cross.birth_date if arrow else _date_objects(cross.birth_date)
        late = {"updated_at": pd.to_datetime(updated, errors="coerce")}
        if for_chunks:
            # the keys nulled here, for the global rule
            late[HELD_ID_KEY] = ids["id_key"].where(cross.id_placeholder, None)
            late[ID_FLAG_COUNT] = pd.Series(_leading_flags(_flag_codes(id_flags)), index=out.index)
        own = _own_arrow(canonical, out, late) if arrow else None

        # every field but the contacts is done: what the second process has not started yet is done here
        contacts = offloaded.result(None if arrow else df)
    finally:
        offloaded.close()
    flags = merge_codes(
        n,
        [
            _flag_codes(source)
            for source in (
                id_flags,
                (cross.shared & ~ids["id_placeholder"].astype(bool), "ID_PLACEHOLDER"),
                name_flags,
                contacts.phone_flags,
                contacts.email_flags,
                contacts.address_flags,
                dob["flag"],
                (cross.dob_conflict, "DOB_CONFLICTS_WITH_ID"),
                (cross.gender_conflict, "GENDER_CONFLICTS_WITH_ID"),
            )
        ],
    )
    valid_ids, placeholders = int(out["id_valid"].sum()), int(cross.id_placeholder.sum())
    if own is not None:
        assert isinstance(canonical, pa.Table)
        table = _arrow_table(canonical, own, contacts, flags)
        mobiles = n - table.column("mobile").null_count
        result: pd.DataFrame | pa.Table = table
    else:
        frame = _frame(out, contacts, late, flags)
        mobiles = int(frame["mobile"].notna().sum())
        result = frame
    log.info(
        "standardized %d records: %d valid IDs, %d placeholders, %d valid mobiles", n, valid_ids, placeholders, mobiles
    )
    return result


def _own_arrow(
    canonical: pa.Table | pd.DataFrame, out: pd.DataFrame, late: dict[str, pd.Series]
) -> dict[str, pa.Array | pa.ChunkedArray]:
    """The main process's columns (:data:`MAIN_COLUMNS`, then ``late``) as Arrow."""
    converted = [c for c in MAIN_COLUMNS if c not in ("rid", "record_key", *DATE_COLUMNS)]
    own = pa.Table.from_pandas(out, columns=converted, preserve_index=False)
    rest = pa.Table.from_pandas(pd.DataFrame(late, index=out.index), preserve_index=False)
    native = {"rid": pa.array(out["rid"].to_numpy()), "record_key": _record_keys(canonical, out)}
    native |= {name: _date32(out[name]) for name in DATE_COLUMNS}
    return native | {name: table.column(name) for table in (own, rest) for name in table.column_names}


def _record_key_objects(df: pd.DataFrame) -> pd.Series:
    """``<source_system>:<source_record_id>`` per record."""
    return df["source_system"].astype(str) + ":" + df["source_record_id"].astype(str)


def _record_keys(canonical: pa.Table | pd.DataFrame, df: pd.DataFrame) -> pa.Array | pa.ChunkedArray:
    """:func:`_record_key_objects` as Arrow strings: joined by Arrow when both columns are strings with no
    null (always, for an extract: a record without its number is quarantined), else from the objects."""
    if isinstance(canonical, pa.Table):
        system, record = canonical["source_system"], canonical["source_record_id"]
        if all(pa.types.is_string(c.type) and c.null_count == 0 for c in (system, record)):
            return pc.binary_join_element_wise(system, record, ":")
    return pa.array(_record_key_objects(df), pa.string())


def _date_objects(timestamps: pd.Series) -> pd.Series:
    """``datetime.date`` objects (None where there is no date): the standardized frame's date columns."""
    return timestamps.dt.date.where(timestamps.notna(), None)


def _date32(timestamps: pd.Series) -> pa.Array:
    """The dates of ``timestamps`` as Arrow ``date32``, without a Python object per row: what
    ``pa.Table.from_pandas`` gives :func:`_date_objects`' column (when no row has a date, pandas keeps
    that column a timestamp one: it is converted as it is)."""
    if not timestamps.notna().any():
        return pa.Table.from_pandas(pd.DataFrame({"d": _date_objects(timestamps)}), preserve_index=False).column(0)
    return pa.array(timestamps.to_numpy(dtype="datetime64[D]"), from_pandas=True)


def _arrow_table(
    canonical: pa.Table, own: dict[str, pa.Array | pa.ChunkedArray], contacts: CodedContacts, flags: FlagCodes
) -> pa.Table:
    """``canonical``'s columns, then the added ones in the order :func:`_frame` gives them."""
    columns: dict[str, pa.Array | pa.ChunkedArray] = {name: own.pop(name) for name in MAIN_COLUMNS}
    contact_columns = contacts.arrow(canonical)
    columns |= {name: contact_columns[name] for name in CONTACT_COLUMNS}
    columns["updated_at"] = own.pop("updated_at")
    columns["quality_flags"] = to_arrow(flags)
    columns |= own  # the temporary columns of a chunk
    table = canonical.replace_schema_metadata(None)
    for name, column in columns.items():
        table = table.append_column(name, column)
    return table


def _frame(out: pd.DataFrame, contacts: CodedContacts, late: dict[str, pd.Series], flags: FlagCodes) -> pd.DataFrame:
    """``out`` (the inputs and :data:`MAIN_COLUMNS`) with the contacts, ``late`` and the reason codes added."""
    rows = contacts.rows(out["address_raw"].to_numpy(dtype=object), out["email_raw"].to_numpy(dtype=object))
    out["mobile"] = rows.phones["mobile"]
    out["phones"] = rows.phones["phones"]
    out["email"] = rows.emails["email"]
    for col in ADDRESS_COLUMNS:
        out[col] = rows.addresses[col]
    out["updated_at"] = late.pop("updated_at")
    out["quality_flags"] = pd.Series(flags.to_lists(), index=out.index, dtype=object)
    for name, column in late.items():
        out[name] = column
    return out


def _leading_flags(flags: FlagCodes) -> np.ndarray:
    """Per row: how many distinct flags it has from ``flags`` (they lead its merged ``quality_flags``)."""
    per_combo = [len(dict.fromkeys(f for f in combo if isinstance(f, str))) for combo in flags.combos]
    return np.asarray(per_combo, dtype=np.int8)[flags.codes] if per_combo else np.zeros(len(flags), dtype=np.int8)


@dataclass(frozen=True)
class _CrossField:
    """The cross-field rules' results (they need no address or e-mail)."""

    shared: pd.Series
    id_placeholder: pd.Series
    id_key: pd.Series
    id_birth_date: pd.Series  # datetime64: the date read from the ID
    birth_date: pd.Series  # datetime64: the declared date, else the ID's
    dob_conflict: pd.Series
    gender: pd.Series
    gender_conflict: pd.Series


def _cross_field(
    ids: pd.DataFrame, names: pd.DataFrame, dob: pd.DataFrame, declared_gender: pd.Series, rules: StandardizeRules
) -> _CrossField:
    # An ID number held by many different names is a placeholder, whatever its checksum says.
    name_key = names["name_latin_key"].where(names["name_latin_key"].notna(), names["name_norm"])
    shared = shared_id_numbers(ids["id_key"], name_key, rules.max_names_per_id).fillna(False).astype(bool)
    id_placeholder = ids["id_placeholder"].astype(bool) | shared
    id_key = ids["id_key"].where(~id_placeholder, None)

    id_birth = pd.to_datetime(ids["id_birth_date"], errors="coerce")
    declared_birth = dob["value"]
    birth_date = declared_birth.where(declared_birth.notna(), id_birth)
    both = declared_birth.notna() & id_birth.notna()
    dob_conflict = both & ((declared_birth - id_birth).abs() > pd.Timedelta(days=rules.dob_tolerance_days))
    gender = declared_gender.where(declared_gender.notna(), ids["id_gender"])
    gender_conflict = declared_gender.notna() & ids["id_gender"].notna() & (declared_gender != ids["id_gender"])
    return _CrossField(
        shared,
        id_placeholder,
        id_key,
        id_birth,
        birth_date,
        dob_conflict,
        gender,
        gender_conflict,
    )
