"""Stable golden customer IDs across runs.

Each cluster of this run inherits the golden ID of the previous run with which it shares
the most records. The rules, applied in one vectorized pass:

* **split**: an old ID whose records now sit in several clusters stays with the cluster
  holding most of its old records (ties: the cluster whose smallest shared ``record_key``
  sorts first); the other parts get new IDs;
* **merge**: a cluster claimed by several old IDs keeps the **oldest** one (lowest
  ``issued_seq``); the others are retired with ``merged_into`` pointing at it;
* an old ID left with no record is retired (reason ``no records``);
* new IDs are opaque random strings, checked against the registry of every ID ever
  issued, so an ID is never reused.

Events are proportional to change: an identical rerun emits none. A new record joining an
existing ID emits ``record_added``; records of a newly created ID are only in the xref.

Memory: the outputs are pandas frames whose text columns are Arrow-backed
(``pd.ArrowDtype(pa.string())``, the type of the master schema, so publishing converts
them without a copy), never one Python string per value: at 1M records 134 MB instead of
510 MB. Inputs may be object or Arrow-backed columns; inside, records are integer ranks of
their keys (one Arrow sort) and golden IDs integer codes (a row of the previous registry,
or ``len(registry) + i`` for the i-th new ID); text is taken from Arrow arrays only for
the rows that leave, and no hash table is ever built over millions of strings.

Layout: :mod:`matchers.golden_plan` applies the rules above on integer codes,
:mod:`matchers.golden_registry` issues and resolves IDs, :mod:`matchers.arrow_text` holds
the Arrow string tools; this module turns the plan into the xref, registry and events and
re-exports the public names of the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from matchers.arrow_text import STRING_DTYPE, arrow_strings, concat, string_series, take
from matchers.golden_plan import Plan, Records, cluster_codes, plan_assignment, rank_records
from matchers.golden_registry import (
    ACTIVE,
    REGISTRY_COLUMNS,
    RETIRED,
    GoldenIdError,
    IdFactory,
    Registry,
    issue_ids,
    new_golden_ids,
    random_ids,
    resolve_golden_id,
    resolve_golden_ids,
    seeded_id_factory,
)
from matchers.golden_registry import empty_registry as empty_registry

log = logging.getLogger(__name__)

__all__ = [
    "EVENT_COLUMNS",
    "REGISTRY_COLUMNS",
    "STRING_DTYPE",
    "GoldenAssignment",
    "GoldenIdError",
    "assign_golden_ids",
    "new_golden_ids",
    "resolve_golden_id",
    "resolve_golden_ids",
    "seeded_id_factory",
]

EVENT_COLUMNS = ("event_id", "run_id", "golden_id", "event_type", "related_golden_id", "record_key", "reason")


@dataclass(frozen=True)
class GoldenAssignment:
    """Result of :func:`assign_golden_ids`.

    ``xref``: record_key -> golden_id (every record of the run); ``registry``: every golden
    ID ever issued; ``events``: what changed in this run; ``clusters``: cluster -> golden_id.
    Text columns are :data:`STRING_DTYPE` (nulls are null), ``issued_seq`` is int64.
    """

    xref: pd.DataFrame
    registry: pd.DataFrame
    events: pd.DataFrame
    clusters: pd.DataFrame


def _empty_events() -> pd.DataFrame:
    """No event (an identical rerun)."""
    return pd.DataFrame({c: pd.Series(dtype=STRING_DTYPE) for c in EVENT_COLUMNS})


def assign_golden_ids(
    clusters: pd.DataFrame,
    previous_xref: pd.DataFrame | None,
    previous_registry: pd.DataFrame | None,
    run_id: str,
    id_factory: IdFactory | None = None,
) -> GoldenAssignment:
    """Give every cluster of this run a golden ID, inheriting IDs from the previous run by record overlap.

    ``clusters`` has ``record_key`` and ``cluster`` (one row per record); ``previous_xref`` has
    ``record_key`` and ``golden_id``; ``previous_registry`` has :data:`REGISTRY_COLUMNS`. Text
    columns may be object or Arrow-backed; the outputs' are :data:`STRING_DTYPE`.
    """
    factory = id_factory or random_ids
    now_keys = arrow_strings(clusters["record_key"])
    cluster_code, cluster_values = cluster_codes(clusters["cluster"].to_numpy())
    registry = Registry(previous_registry)
    prev_keys = pa.array([], pa.string())
    old_of_prev = np.zeros(0, dtype=np.int64)
    if previous_xref is not None and len(previous_xref):
        if len(registry) == 0:
            raise GoldenIdError("a previous xref was given without the registry of golden IDs; pass both or neither")
        prev_keys = arrow_strings(previous_xref["record_key"])
        old_of_prev = registry.current(arrow_strings(previous_xref["golden_id"]))
        if (old_of_prev < 0).any():
            raise GoldenIdError("the previous xref names golden IDs that are unknown or retired without a successor")

    records = rank_records(now_keys, prev_keys)
    plan = plan_assignment(records, cluster_code, len(cluster_values), old_of_prev, registry)
    new_ids = issue_ids(len(plan.fresh), factory, registry.lookup)
    gid_text = concat([registry.ids, new_ids])  # golden code -> text

    events = _events(run_id, plan, records, gid_text, now_keys, prev_keys)
    log.info(
        "golden IDs: %d clusters, %d inherited, %d new, %d merged away, %d retired with no records, %d events",
        len(cluster_values),
        len(cluster_values) - len(plan.fresh),
        len(plan.fresh),
        len(plan.losers),
        len(plan.emptied),
        len(events),
    )
    return GoldenAssignment(
        xref=pd.DataFrame(
            {
                "record_key": string_series(now_keys),
                "golden_id": string_series(take(gid_text, plan.gid_of_cluster[cluster_code])),
            }
        ),
        registry=_registry_out(registry, plan, gid_text, run_id),
        events=events,
        clusters=pd.DataFrame(
            {"cluster": cluster_values, "golden_id": string_series(take(gid_text, plan.gid_of_cluster))}, copy=False
        ),
    )


def _patched(
    old: pa.Array, n_new: int, new_value: str | None, rows: np.ndarray | None = None, values: pa.Array | None = None
) -> pa.Array:
    """``old``'s rows, then ``n_new`` rows of ``new_value``, with ``rows`` set to ``values``: one take.

    The registry is as large as every ID ever issued, so each column is copied once and
    never goes through Python objects.
    """
    n_old = len(old)
    if rows is None or values is None or len(rows) == 0:
        if n_new == 0:
            return old
        return concat([old, pa.repeat(pa.scalar(new_value, pa.string()), n_new)])
    index = np.empty(n_old + n_new, dtype=np.int64)
    index[:n_old] = np.arange(n_old)
    index[n_old:] = n_old
    index[rows] = n_old + 1 + np.arange(len(rows))
    return pa.concat_arrays([old, pa.array([new_value], pa.string()), values]).take(pa.array(index))


def _registry_out(registry: Registry, plan: Plan, gid_text: pa.Array, run_id: str) -> pd.DataFrame:
    """The registry after this run: old rows updated (merged away, emptied), new IDs appended, by ``issued_seq``."""
    n_new = len(plan.fresh)
    start = int(registry.issued_seq.max()) + 1 if len(registry) else 1
    seq = np.concatenate([registry.issued_seq, np.arange(start, start + n_new, dtype=np.int64)])
    retired = np.concatenate([plan.losers, plan.emptied])
    retired_status = pa.repeat(pa.scalar(RETIRED), len(retired))
    retired_run = pa.repeat(pa.scalar(run_id), len(retired))
    columns = {
        "golden_id": gid_text,
        "status": _patched(registry.status, n_new, ACTIVE, retired, retired_status),
        "merged_into": _patched(registry.merged_into, n_new, None, plan.losers, take(gid_text, plan.survivors)),
        "created_run_id": _patched(registry.created_run_id, n_new, run_id),
        "retired_run_id": _patched(registry.retired_run_id, n_new, None, retired, retired_run),
    }
    if len(seq) > 1 and not (seq[1:] > seq[:-1]).all():  # the usual registry is already in issue order
        order = pa.array(np.argsort(seq, kind="stable"))
        columns = {name: col.take(order) for name, col in columns.items()}
        seq = seq[order.to_numpy()]
    frame = {name: string_series(col) for name, col in columns.items()}
    return pd.DataFrame({**frame, "issued_seq": seq}, columns=list(REGISTRY_COLUMNS), copy=False)


@dataclass(frozen=True)
class _EventPart:
    """Events of one kind: golden codes (-1: null), record key texts (None: null), one reason or one per event."""

    event_type: str
    golden: np.ndarray
    related: np.ndarray | None = None
    record_key: pa.Array | None = None
    reason: str | pa.Array = ""


def _sorted_by_text(gid_text: pa.Array, *codes: np.ndarray) -> np.ndarray:
    """Order of rows of golden codes by the IDs' text, column by column (few rows: splits, retirements)."""
    if len(codes[0]) == 0:
        return np.zeros(0, dtype=np.int64)
    table = pa.table({f"c{i}": take(gid_text, c) for i, c in enumerate(codes)})
    return np.asarray(pc.sort_indices(table, [(f"c{i}", "ascending") for i in range(len(codes))]).to_numpy())


def _events(
    run_id: str,
    plan: Plan,
    records: Records,
    gid_text: pa.Array,
    now_keys: pa.Array,
    prev_keys: pa.Array,
) -> pd.DataFrame:
    """The change log of the run, in the documented order of kinds; within a kind, by ID text or by key."""
    parts: list[_EventPart] = []
    # merges: the survivor absorbs the loser; the loser is retired
    parts.append(_EventPart("merged", plan.survivors, plan.losers, reason="older ID survives"))
    parts.append(_EventPart("retired", plan.losers, plan.survivors, reason="merged"))
    # splits: an old ID (still alive or merged) lost part of its records to a new ID
    to_fresh = plan.gid_of_cluster[plan.overlap_cluster] >= plan.n_old
    split_old, split_new = plan.overlap_old[to_fresh], plan.gid_of_cluster[plan.overlap_cluster[to_fresh]]
    order = _sorted_by_text(gid_text, split_old, split_new)
    split_old, split_new = split_old[order], split_new[order]
    parts.append(_EventPart("split", split_old, split_new, reason="majority keeps ID"))
    # new IDs, with the (smallest) old ID they split from
    new_codes = plan.gid_of_cluster[plan.fresh]  # n_old, n_old + 1, ...
    origin = np.full(len(new_codes), -1, dtype=np.int64)
    split_into, first = np.unique(split_new, return_index=True)  # first split row per new ID: smallest old ID
    origin[split_into - plan.n_old] = split_old[first]
    split_from = pc.binary_join_element_wise("split from ", take(gid_text, origin), "")
    reason = pc.coalesce(split_from, pa.scalar("new cluster"))
    parts.append(_EventPart("created", new_codes, origin, reason=reason))
    # records that changed ID, beyond what a merge explains (ranks iterate keys in order)
    survivor_of = np.full(plan.n_old, -1, dtype=np.int64)
    survivor_of[plan.losers] = plan.survivors
    shared = np.flatnonzero((plan.cluster_at >= 0) & (plan.old_at >= 0))
    old, new = plan.old_at[shared], plan.gid_of_cluster[plan.cluster_at[shared]]
    moved = (old != new) & (survivor_of[old] != new)
    keys = take(now_keys, records.now_at[shared[moved]])
    parts.append(_EventPart("record_moved", new[moved], old[moved], keys, "relinked"))
    # records joining an inherited ID
    joined = np.flatnonzero((plan.cluster_at >= 0) & (plan.old_at < 0))
    joined = joined[plan.gid_of_cluster[plan.cluster_at[joined]] < plan.n_old]
    keys = take(now_keys, records.now_at[joined])
    parts.append(_EventPart("record_added", plan.gid_of_cluster[plan.cluster_at[joined]], None, keys, "new record"))
    # records gone from the sources
    gone = np.flatnonzero((plan.old_at >= 0) & (plan.cluster_at < 0))
    keys = take(prev_keys, records.prev_at[gone])
    parts.append(_EventPart("record_removed", plan.old_at[gone], None, keys, "record left sources"))
    emptied = plan.emptied[_sorted_by_text(gid_text, plan.emptied)]
    parts.append(_EventPart("retired", emptied, reason="no records"))
    return _events_frame(run_id, [p for p in parts if len(p.golden)], gid_text)


def _events_frame(run_id: str, parts: list[_EventPart], gid_text: pa.Array) -> pd.DataFrame:
    """The parts as one Arrow-backed frame; ``event_id`` is ``run_id-`` + the 8-digit event number."""
    if not parts:
        return _empty_events()
    sizes = [len(p.golden) for p in parts]
    n = sum(sizes)

    def per_part(value: str | pa.Array | None, size: int) -> pa.Array:
        if isinstance(value, pa.Array):
            return value
        return pa.repeat(pa.scalar(value, pa.string()), size)

    def codes(values: list[np.ndarray | None]) -> np.ndarray:
        return np.concatenate([np.full(s, -1) if v is None else v for v, s in zip(values, sizes, strict=True)])

    def column(values: list[str | pa.Array | None]) -> pa.Array:
        return concat([per_part(v, size) for v, size in zip(values, sizes, strict=True)])

    number = pc.cast(pa.array(np.arange(1, n + 1, dtype=np.int64)), pa.string())
    columns = {
        "event_id": pc.binary_join_element_wise(run_id, pc.utf8_lpad(number, 8, "0"), "-"),
        "run_id": pa.repeat(pa.scalar(run_id, pa.string()), n),
        "golden_id": take(gid_text, codes([p.golden for p in parts])),
        "event_type": column([p.event_type for p in parts]),
        "related_golden_id": take(gid_text, codes([p.related for p in parts])),
        "record_key": column([p.record_key for p in parts]),
        "reason": column([p.reason for p in parts]),
    }
    return pd.DataFrame({name: string_series(col) for name, col in columns.items()})
