"""Golden customer records: one row per active golden ID, every attribute with its lineage.

For each attribute rule of :class:`schemas.survivorship.SurvivorshipConfig` the candidate
records are ranked by the rule's ordered criteria (one ``lexsort`` over all records) and
the first per golden ID wins; its columns are copied together and the lineage columns
``<attr>_source_system``, ``<attr>_source_record_id`` and ``<attr>_updated_at`` name the
record they came from. Multi-valued lists, per-system counts and the first/last-seen
dates complete the customer-360 basics.
"""

from __future__ import annotations

import logging
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from matchers.survivorship_lists import (
    arrow_series,
    collect_list,
    customer_systems,
    group_lists,
    sorted_factorize,
    system_counts,
)
from matchers.survivorship_rules import (
    Records,
    explode_arrow,
    explode_values,
    first_per_group,
    flag_pairs,
    has_any_flag,
    rank_keys,
    recency_rank,
    validity_score,
)
from mdm.errors import MdmError
from schemas.survivorship import SurvivorshipConfig

log = logging.getLogger(__name__)

__all__ = ["LINEAGE_SUFFIXES", "build_golden_records", "prepare_records"]

LINEAGE_SUFFIXES = ("_source_system", "_source_record_id", "_updated_at")


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
        rows, at = np.unique(rows, return_index=True)
        first_at[rows] = at
    first = flat.take(pa.array(first_at, mask=first_at < 0)) if len(flat) else pa.nulls(recs.n, pa.string())
    if "mobile" in recs:
        mobile = recs.arrow("mobile")
        if pa.types.is_null(mobile.type):  # no mobile anywhere
            mobile = mobile.cast(pa.string())
        first = pc.if_else(pc.is_valid(mobile), mobile, first.cast(mobile.type))
    return arrow_series(first)


def _nulls(n: int) -> pd.Series:
    return pd.Series([None] * n, dtype=object)


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
    """``recs[name][pos]`` (null where ``pos`` is -1); Arrow-backed records are taken in Arrow."""
    taken = recs.take(name, pos)
    return taken if taken is not None else _take(recs[name], pos)


def _golden_codes(recs: Records, xref: pd.DataFrame) -> tuple[np.ndarray, pa.Array]:
    """(golden code per record, -1 without a golden ID; the sorted golden IDs)."""
    keys = pd.Index(xref["record_key"])
    if not keys.is_unique:
        raise MdmError(
            "survivorship: the xref names a record_key twice; each record has exactly one golden ID "
            "(build the xref with matchers.golden_ids.assign_golden_ids)"
        )
    xref_keys = xref["record_key"].to_numpy(dtype=object)
    if len(xref_keys) == recs.n and _same_keys(recs, xref_keys):
        at = np.arange(recs.n)  # the flow's xref lists the records in their own order
    else:
        at = keys.get_indexer(recs["record_key"].to_numpy(dtype=object))
    gids = xref["golden_id"].to_numpy(dtype=object)[np.where(at >= 0, at, 0)]
    gids[at < 0] = None
    return sorted_factorize(gids)


def _same_keys(recs: Records, xref_keys: np.ndarray) -> bool:
    """The records' keys are ``xref_keys`` in the same order (compared in Arrow for Arrow-backed records)."""
    if recs.is_arrow:
        mine = recs.arrow("record_key")
        theirs = pa.array(xref_keys, type=mine.type, from_pandas=True)
        return bool(theirs.equals(mine))
    return bool((xref_keys == recs["record_key"].to_numpy(dtype=object)).all())


def build_golden_records(
    records: pd.DataFrame | pa.Table,
    xref: pd.DataFrame,
    config: SurvivorshipConfig,
    previous_golden: pd.DataFrame | None,
    run_id: str,
    business_date: date,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(golden_customer, customer_systems) for the golden IDs of ``xref`` (record_key -> golden_id)."""
    recs = prepare_records(records)
    gcode, golden_arrow = _golden_codes(recs, xref)
    missing = int((gcode < 0).sum())
    if missing:
        log.warning("survivorship: %d records have no golden ID in the xref and are left out", missing)
    golden_ids = golden_arrow.to_numpy(zero_copy_only=False).astype(object)
    n_golden = len(golden_ids)
    n = recs.n

    trust = recs["source_trust"].fillna(0).to_numpy(dtype=np.int64) if "source_trust" in recs else np.zeros(n, np.int64)
    if config.source_trust:
        override = recs["source_system"].map(config.source_trust)
        trust = np.where(override.notna(), override.fillna(0).to_numpy(dtype=np.int64), trust)
    tiebreak = sorted_factorize(recs.arrow("record_key"))[0]
    recency = recency_rank(recs)
    flags = flag_pairs(recs, config.flag_columns)

    columns: dict[str, pd.Series | np.ndarray] = {"golden_id": golden_ids}
    for attr, rule in config.attributes.items():
        validity = validity_score(recs, rule, config)
        penalized = has_any_flag(flags, rule.penalty_flags, n)
        keys = rank_keys(recs, rule, validity, penalized, trust, recency, gcode)
        pos = first_per_group(gcode, validity > 0, keys, tiebreak)
        pos = np.concatenate([pos, np.full(n_golden - len(pos), -1, np.int64)])
        for col in rule.columns:
            columns[col] = _take_column(recs, col, pos) if col in recs else _nulls(n_golden)
        for suffix, src in zip(LINEAGE_SUFFIXES, ("source_system", "source_record_id", "updated_at"), strict=True):
            columns[attr + suffix] = _take_column(recs, src, pos) if src in recs else _nulls(n_golden)

    for name, list_rule in config.lists.items():
        columns[name] = collect_list(recs, list_rule, gcode, n_golden)

    names, counts = system_counts(gcode, recs["source_system"], n_golden)
    columns["n_records"] = counts.sum(axis=1).astype(np.int64)
    columns["systems"] = group_lists(gcode, recs.arrow("source_system"), n_golden)
    for i, system in enumerate(names):
        columns[f"n_{system}"] = counts[:, i].astype(np.int64)
    columns["quality_flags"] = group_lists(gcode[flags[0]], flags[1], n_golden)

    golden = pd.DataFrame(columns, copy=False)  # the columns stay separate blocks: no consolidating copy
    golden = _seen_dates(golden, previous_golden, run_id, business_date)
    systems_long = customer_systems(recs, gcode, golden_arrow, names, counts, tiebreak)
    log.info("survivorship: %d golden records from %d source records", n_golden, n)
    return golden, systems_long


def _seen_dates(golden: pd.DataFrame, previous: pd.DataFrame | None, run_id: str, business_date: date) -> pd.DataFrame:
    """first_seen_* carried over from the previous golden record of the same ID; last_seen_* is this run.

    Dates are ``datetime64[ns]`` at midnight in pandas and ``date32`` in the published master.
    """
    today = pd.Timestamp(business_date)
    first_run = pd.Series(run_id, index=golden.index, dtype=object)
    first_date = pd.Series(today, index=golden.index, dtype="datetime64[ns]")
    if previous is not None and len(previous) and "first_seen_run" in previous.columns:
        prev = previous.drop_duplicates("golden_id").set_index("golden_id")
        carried_run = golden["golden_id"].map(prev["first_seen_run"])
        carried_date = pd.to_datetime(golden["golden_id"].map(prev["first_seen_date"]), errors="coerce")
        first_run = carried_run.where(carried_run.notna(), first_run).astype(object)
        first_date = carried_date.fillna(today).astype("datetime64[ns]")
    return golden.assign(
        first_seen_run=first_run.to_numpy(),
        first_seen_date=first_date.to_numpy(),
        last_seen_run=run_id,
        last_seen_date=pd.Series(today, index=golden.index, dtype="datetime64[ns]"),
    )
