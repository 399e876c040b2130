"""Golden customer records: one row per active golden ID, every attribute with its lineage.

For each attribute rule of :class:`schemas.survivorship.SurvivorshipConfig` the candidate
records are ranked by the rule's ordered criteria (a lexicographic minimum per golden ID, no
sort) and the first per golden ID wins; its columns are copied together and the lineage
columns ``<attr>_source_system``, ``<attr>_source_record_id`` and ``<attr>_updated_at`` name
the record they came from. Multi-valued lists, per-system counts and the first/last-seen
dates complete the customer-360 basics.

Both output frames hold Arrow-backed text, date and list columns (``pd.ArrowDtype``): no Python
object per row, and ``pipelines.publish.conform_tables`` takes them over as they are.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from matchers.survivorship_lists import (
    Flags,
    arrow_series,
    as_strings,
    coded_lists,
    collect_list,
    customer_systems,
    explode_arrow,
    explode_values,
    flag_pairs,
    has_any_flag,
    sorted_factorize,
    system_codes,
    system_counts,
    systems_lists,
)
from matchers.survivorship_rules import (
    Records,
    first_per_group,
    rank_keys,
    recency_rank,
    validity_score,
)
from mdm.errors import MdmError
from mdm.memory import release_memory
from schemas.survivorship import SurvivorshipConfig

log = logging.getLogger(__name__)

__all__ = ["LINEAGE_SUFFIXES", "build_golden_records", "prepare_records"]

LINEAGE_SUFFIXES = ("_source_system", "_source_record_id", "_updated_at")
_LINEAGE_SOURCES = ("source_system", "source_record_id", "updated_at")  # the columns of LINEAGE_SUFFIXES
_TAKE_SLICE = 1 << 17  # golden records per chunk of a taken column
_TAKE_THREADS = 2  # columns taken at once (Arrow's take releases the GIL; the flow's machine has 2 cores)


# Columns the rules read whatever the config names: lineage and ranking (record_key is the final
# tie-break; source_trust, updated_at), the derived ``phone`` (mobile, else the first of phones),
# and the validity checks (id_document: id_type, id_valid, id_placeholder; address: adcode,
# district; han_name: name_script).
_ALWAYS_READ = (
    "record_key", *_LINEAGE_SOURCES, "source_trust", "mobile", "phones",
    "id_type", "id_valid", "id_placeholder", "adcode", "district", "name_script",
)


def survivorship_columns(config: SurvivorshipConfig) -> frozenset[str]:
    """Every column of the records :func:`build_golden_records` can read under ``config``; the others may be
    dropped before it runs without changing a golden record (the run drops the raw values it keeps in
    ``source_records`` only)."""
    names = set(_ALWAYS_READ) | set(config.flag_columns)
    for attribute in config.attributes.values():
        names.update(attribute.columns)
    for rule in config.lists.values():
        names.update(rule.columns)
        names.update(c for c in (rule.require, rule.exclude, rule.prefix_column) if c)
    return frozenset(names)


def prepare_records(records: pd.DataFrame | pa.Table) -> Records:
    """The records as columns (no copy of the frame) with the derived candidate columns the default
    rules read (``phone``: the mobile, else the first phone)."""
    out = Records(records)
    if "phone" not in out and out.is_arrow:
        return out.with_column("phone", _first_phone_arrow(out))
    if "phone" not in out:
        first = np.full(out.n, None, dtype=object)
        if "phones" in out:
            rows, flat = explode_values(out["phones"])
            rows, at = np.unique(rows, return_index=True)
            first[rows] = flat[at]
        phone = first
        if "mobile" in out:
            mobile = out["mobile"].to_numpy(dtype=object)
            phone = np.where(pd.notna(mobile), mobile, first)
        out = out.with_column("phone", pd.Series(phone, dtype=object))
    return out


def _first_phone_arrow(recs: Records) -> pd.Series:
    """``phone`` of Arrow-backed records, in Arrow: the mobile, else the first of ``phones``."""
    first_at = np.full(recs.n, -1, dtype=np.int64)
    flat: pa.Array = pa.array([], pa.string())
    if "phones" in recs:
        rows, flat = explode_arrow(recs.arrow("phones"))
        at = np.flatnonzero(np.diff(rows, prepend=-1))  # rows ascend: where a record's phones start
        first_at[rows[at]] = at
    first = flat.take(pa.array(first_at, mask=first_at < 0)) if len(flat) else pa.nulls(recs.n, pa.string())
    if "mobile" in recs:
        mobile = recs.arrow("mobile")
        if pa.types.is_null(mobile.type):  # no mobile anywhere
            mobile = mobile.cast(pa.string())
        first = pc.if_else(pc.is_valid(mobile), mobile, first.cast(mobile.type))
    return arrow_series(first)


def golden_series(arr: pa.Array | pa.ChunkedArray) -> pd.Series:
    """A column of the golden record from Arrow values: text, dates and lists stay Arrow-backed (no Python
    object per row), booleans and integers become pandas' nullable types, timestamps ``datetime64[ns]``."""
    if pa.types.is_boolean(arr.type) or pa.types.is_integer(arr.type):
        mapping = {arr.type: pd.BooleanDtype() if pa.types.is_boolean(arr.type) else pd.Int64Dtype()}
        return arr.to_pandas(types_mapper=mapping.get)
    if pa.types.is_timestamp(arr.type) or pa.types.is_floating(arr.type):
        return arr.to_pandas()
    return pd.Series(pd.arrays.ArrowExtensionArray(arr))


def _nulls(n: int) -> pd.Series:
    """An all-null column: Arrow's null type holds no buffer at all."""
    return arrow_series(pa.nulls(n))


def _take(values: pd.Series, pos: np.ndarray) -> pd.Series:
    """``values[pos]`` with null where ``pos`` is -1, keeping bools as nullable booleans."""
    if values.dtype == object:  # numpy take and a None fill: pandas' where would test every string for NA
        out = values.to_numpy()[np.where(pos >= 0, pos, 0)]
        out[pos < 0] = None
        return pd.Series(out, dtype=object)
    taken = values.take(np.where(pos >= 0, pos, 0)).reset_index(drop=True)
    if pd.api.types.is_bool_dtype(taken.dtype):
        taken = taken.astype("boolean")
    elif pd.api.types.is_integer_dtype(taken.dtype):
        taken = taken.astype("Int64")
    return taken.where(pd.Series(pos >= 0), None) if taken.dtype == object else taken.mask(pd.Series(pos < 0))


def _take_column(recs: Records, name: str, pos: np.ndarray) -> pd.Series:
    """``recs[name][pos]`` (null where ``pos`` is -1) as the golden record holds it: taken in Arrow when the
    records are Arrow-backed; taken values of a pandas object column are converted the same way, so
    both give one representation (text, dates and lists Arrow-backed)."""
    if recs.is_arrow or isinstance(recs[name].dtype, pd.ArrowDtype):
        return golden_series(_taken(recs.encoded(name), pos))
    taken = _take(recs[name], pos)
    if taken.dtype != object and not isinstance(taken.dtype, pd.StringDtype):
        return taken
    try:
        return golden_series(pa.array(taken.to_numpy(dtype=object), from_pandas=True))
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Python types: left as objects
        return taken


def _taken(values: pa.Array, pos: np.ndarray) -> pa.ChunkedArray:
    """``values[pos]`` (null where ``pos`` is -1), a slice of positions at a time: Arrow reserves up to twice
    a text take's output while it builds it, so slices keep that slack small (one chunk each). A
    dictionary-encoded (code) column stays encoded: the golden record holds its codes, and the master
    keeps them so (``schemas.master.TableSpec.codes``)."""
    parts = []
    for start in range(0, max(len(pos), 1), _TAKE_SLICE):
        piece = pos[start : start + _TAKE_SLICE]
        parts.append(values.take(pa.array(piece, mask=piece < 0, type=pa.int64())))
    return pa.chunked_array(parts, parts[0].type)


def _key_order(keys: pa.Array) -> np.ndarray:
    """Positions of ``keys`` in sorted order, nulls first, equal keys by position (a stable sort)."""
    return np.asarray(pc.array_sort_indices(keys, null_placement="at_start").to_numpy(), dtype=np.int64)


def _repeats(keys: pa.Array, order: np.ndarray) -> bool:
    """Some key occurs twice (``order`` sorts ``keys``): equal neighbours once sorted."""
    if len(keys) < 2:
        return False
    ordered = keys.take(pa.array(order))
    return bool(pc.any(pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))).as_py())


def _golden_codes(mine: pa.Array, xref: pd.DataFrame, key_order: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    """(golden code per record of the record keys ``mine``, -1 without a golden ID; the sorted golden IDs).

    The xref's columns are read as Arrow (Arrow-backed ones without a copy) and matched to the
    records in Arrow: no Python string per record. ``key_order`` sorts ``mine``.
    """
    keys = as_strings(xref["record_key"])
    keys = keys if keys.type == mine.type else keys.cast(mine.type)
    gids = as_strings(xref["golden_id"])
    aligned = len(keys) == len(mine) and keys.equals(mine)  # the flow's xref lists the records in their order
    if _repeats(keys, key_order if aligned else _key_order(keys)):
        raise MdmError(
            "survivorship: the xref names a record_key twice; each record has exactly one golden ID "
            "(build the xref with matchers.golden_ids.assign_golden_ids)"
        )
    codes, golden_ids = sorted_factorize(gids if aligned else gids.take(pc.index_in(mine, value_set=keys)))
    return codes.astype(np.int32), golden_ids  # half the memory of every per-record golden code after


def _trust(recs: Records, config: SurvivorshipConfig) -> np.ndarray:
    """Trust rank per record: its ``source_trust`` (0 if null), overridden per system by the config."""
    trust = np.zeros(recs.n, np.int64)
    if "source_trust" in recs:
        values = recs.arrow("source_trust")
        if not pa.types.is_null(values.type):
            trust = np.asarray(pc.fill_null(values, 0).to_numpy(zero_copy_only=False)).astype(np.int64)
    if config.source_trust:
        codes, uniques = recs.codes("source_system")
        per_value = [config.source_trust.get(u) if u is not None else None for u in uniques.to_pylist()]
        has = np.array([v is not None for v in per_value] + [False])[codes]
        override = np.array([v if v is not None else 0 for v in per_value] + [0], dtype=np.int64)[codes]
        trust = np.where(has, override, trust)
    return trust


def build_golden_records(
    records: pd.DataFrame | pa.Table,
    xref: pd.DataFrame,
    config: SurvivorshipConfig,
    previous_golden: pd.DataFrame | None,
    run_id: str,
    business_date: date,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(golden_customer, customer_systems) for the golden IDs of ``xref`` (record_key -> golden_id).

    Text, date and list columns of both frames are Arrow-backed (``pd.ArrowDtype``): the output
    holds no Python object per row, and ``pa.Table.from_pandas`` takes the columns over as they are.
    The parts needing the most scratch memory (customer_systems, the lists, the ranking) run before
    the attribute columns, most of the output, are taken.
    """
    recs = prepare_records(records)
    record_keys = as_strings(recs.arrow("record_key"))
    key_order = _key_order(record_keys)
    gcode, golden_ids = _golden_codes(record_keys, xref, key_order)
    del record_keys
    missing = int((gcode < 0).sum())
    if missing:
        log.warning("survivorship: %d records have no golden ID in the xref and are left out", missing)
    n_golden = len(golden_ids)

    systems = system_codes(recs)
    counts = system_counts(gcode, systems, n_golden)
    systems_long = customer_systems(recs, gcode, golden_ids, systems, counts, key_order)
    lists = {name: collect_list(recs, rule, gcode, n_golden) for name, rule in config.lists.items()}
    flags = flag_pairs(recs, config.flag_columns)
    flagged = gcode[flags.rows] >= 0
    per_system = {f"n_{system}": counts[:, i].astype(np.int64) for i, system in enumerate(systems.names)}
    customer_360 = {
        "n_records": counts.sum(axis=1).astype(np.int64),
        "systems": systems_lists(counts, systems.names),
        **per_system,
        "quality_flags": coded_lists(gcode[flags.rows][flagged], flags.codes[flagged], flags.names, n_golden),
    }
    del counts
    attributes = _attribute_columns(recs, config, gcode, key_order, flags, n_golden)
    golden = pd.DataFrame(  # the columns stay separate blocks: no consolidating copy
        {
            "golden_id": arrow_series(golden_ids),
            **attributes,
            **lists,
            **customer_360,
            **_seen_dates(golden_ids, previous_golden, run_id, business_date),
        },
        copy=False,
    )
    log.info("survivorship: %d golden records from %d source records", n_golden, recs.n)
    return golden, systems_long


def _attribute_columns(
    recs: Records, config: SurvivorshipConfig, gcode: np.ndarray, key_order: np.ndarray, flags: Flags, n_golden: int
) -> dict[str, pd.Series]:
    """Every attribute rule's columns and lineage, taken from its winning record per golden ID.

    Every rule's winners are found before any column is taken: the ranking's scratch arrays are
    gone by the time the attribute columns (most of the golden record) are allocated.
    """
    winners = _winners(recs, config, gcode, key_order, flags, n_golden)
    release_memory()  # the ranking's freed scratch (glibc's heap) goes back before Arrow allocates the columns
    wanted: dict[str, tuple[str, str]] = {}  # golden column -> (attribute, source column)
    for attr, rule in config.attributes.items():
        wanted.update({col: (attr, col) for col in rule.columns})
        wanted.update(
            {attr + suffix: (attr, src) for suffix, src in zip(LINEAGE_SUFFIXES, _LINEAGE_SOURCES, strict=True)}
        )

    def take(name: str) -> pd.Series:
        attr, src = wanted[name]
        return _take_column(recs, src, winners[attr]) if src in recs else _nulls(n_golden)

    # the largest source columns first: their scratch (a combined copy) is reused by the later columns;
    # Arrow's takes release the GIL, so two run at once
    order = sorted(wanted, key=lambda c: -recs.nbytes(wanted[c][1]))
    with ThreadPoolExecutor(max_workers=max(1, min(_TAKE_THREADS, pa.cpu_count()))) as pool:
        taken = dict(zip(order, pool.map(take, order), strict=True))
    return {name: taken[name] for name in wanted}


def _winners(
    recs: Records, config: SurvivorshipConfig, gcode: np.ndarray, key_order: np.ndarray, flags: Flags, n_golden: int
) -> dict[str, np.ndarray]:
    """Per attribute rule: the position of its winning record per golden code (-1: no candidate)."""
    tiebreak = np.empty(recs.n, dtype=np.int64)
    tiebreak[key_order] = np.arange(recs.n)  # rank of the record key: the last tie-break
    trust, recency = _trust(recs, config), recency_rank(recs)
    winners: dict[str, np.ndarray] = {}
    for attr, rule in config.attributes.items():
        validity = validity_score(recs, rule, config)
        keys = rank_keys(recs, rule, validity, has_any_flag(flags, rule.penalty_flags, recs.n), trust, recency)
        pos = first_per_group(gcode, validity > 0, keys, tiebreak)
        winners[attr] = np.concatenate([pos, np.full(n_golden - len(pos), -1, np.int64)])
    return winners


def _seen_dates(
    golden_ids: pa.Array, previous: pd.DataFrame | None, run_id: str, business_date: date
) -> dict[str, pd.Series | np.ndarray]:
    """first_seen_* carried over from the previous golden record of the same ID; last_seen_* is this run.

    Dates are ``datetime64[ns]`` at midnight in pandas and ``date32`` in the published master; the
    runs are Arrow-backed text. The previous IDs are matched in Arrow (its first row per ID counts).
    """
    n = len(golden_ids)
    today = pd.Timestamp(business_date).to_datetime64().astype("datetime64[ns]")
    first_run: pa.Array = _one_value(run_id, n)
    first_date = np.full(n, today, dtype="datetime64[ns]")
    if previous is not None and len(previous) and "first_seen_run" in previous.columns:
        at = pc.index_in(golden_ids, value_set=as_strings(previous["golden_id"]).cast(golden_ids.type))
        carried_run = as_strings(previous["first_seen_run"]).take(at).cast(pa.string())
        first_run = pc.dictionary_encode(pc.coalesce(carried_run, pa.scalar(run_id, pa.string())))
        dates = pd.to_datetime(previous["first_seen_date"], errors="coerce").to_numpy(dtype="datetime64[ns]")
        found = at.is_valid().to_numpy(zero_copy_only=False)
        carried = dates[np.where(found, at.fill_null(0).to_numpy(zero_copy_only=False), 0)]
        first_date = np.where(found & ~np.isnat(carried), carried, first_date)
    return {
        "first_seen_run": arrow_series(first_run),
        "first_seen_date": first_date,
        "last_seen_run": arrow_series(_one_value(run_id, n)),
        "last_seen_date": np.full(n, today, dtype="datetime64[ns]"),
    }


def _one_value(text: str, n: int) -> pa.Array:
    """``n`` times ``text``, dictionary-encoded (one value: four bytes a row instead of the text)."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([text], pa.string()))
