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
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from matchers.survivorship_lists import sorted_factorize
from mdm.errors import MdmError

log = logging.getLogger(__name__)

__all__ = [
    "EVENT_COLUMNS",
    "REGISTRY_COLUMNS",
    "GoldenAssignment",
    "GoldenIdError",
    "assign_golden_ids",
    "new_golden_ids",
    "resolve_golden_id",
    "resolve_golden_ids",
    "seeded_id_factory",
]

REGISTRY_COLUMNS = ("golden_id", "status", "merged_into", "created_run_id", "retired_run_id", "issued_seq")
EVENT_COLUMNS = ("event_id", "run_id", "golden_id", "event_type", "related_golden_id", "record_key", "reason")
ACTIVE = "active"
RETIRED = "retired"

_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", dtype=np.uint8)
_ID_PREFIX = "G"
_ID_SYMBOLS = 16  # 16 base32 symbols = 80 random bits


class GoldenIdError(MdmError):
    """The golden-ID registry is inconsistent (unknown ID, merge cycle, reused ID)."""


IdFactory = Callable[[int], list[str]]


@dataclass(frozen=True)
class GoldenAssignment:
    """Result of :func:`assign_golden_ids`.

    ``xref``: record_key -> golden_id (every record of the run); ``registry``: every golden
    ID ever issued; ``events``: what changed in this run; ``clusters``: cluster -> golden_id.
    """

    xref: pd.DataFrame
    registry: pd.DataFrame
    events: pd.DataFrame
    clusters: pd.DataFrame


def _ids_from_bytes(raw: np.ndarray, n: int) -> list[str]:
    symbols = _ALPHABET[(raw[: n * _ID_SYMBOLS] & 31)].reshape(n, _ID_SYMBOLS)
    body = symbols.copy().view(f"S{_ID_SYMBOLS}").ravel().astype(str)
    return [str(g) for g in np.char.add(_ID_PREFIX, body).tolist()]


def new_golden_ids(n: int) -> list[str]:
    """``n`` opaque golden IDs: ``G`` + 16 base32 symbols from ``os.urandom`` (never derived from data)."""
    if n <= 0:
        return []
    return _ids_from_bytes(np.frombuffer(os.urandom(n * _ID_SYMBOLS), dtype=np.uint8), n)


def seeded_id_factory(seed: int) -> IdFactory:
    """A reproducible ID factory for tests and demos (same seed, same sequence of IDs)."""
    rng = np.random.default_rng(seed)

    def factory(n: int) -> list[str]:
        if n <= 0:
            return []
        return _ids_from_bytes(rng.integers(0, 256, size=n * _ID_SYMBOLS, dtype=np.uint8), n)

    return factory


# --------------------------------------------------------------------------- registry


def empty_registry() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "golden_id": pd.Series(dtype=object),
            "status": pd.Series(dtype=object),
            "merged_into": pd.Series(dtype=object),
            "created_run_id": pd.Series(dtype=object),
            "retired_run_id": pd.Series(dtype=object),
            "issued_seq": pd.Series(dtype=np.int64),
        }
    )


def _empty_events() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in EVENT_COLUMNS})


def resolve_golden_ids(registry: pd.DataFrame, golden_ids: pd.Series | list[str]) -> pd.Series:
    """Vectorized: the current (active) golden ID of each given ID, following ``merged_into`` chains.

    Unknown IDs and IDs retired without a successor map to null. A cycle in ``merged_into``
    raises :class:`GoldenIdError` (never loops forever).
    """
    ids = pd.Series(golden_ids, dtype=object)
    reg_ids = registry["golden_id"].to_numpy(dtype=object)
    n = len(reg_ids)
    pos = pd.Index(reg_ids)
    succ_pos = pos.get_indexer(registry["merged_into"].to_numpy(dtype=object))
    is_active = (registry["status"] == ACTIVE).to_numpy()
    # node n is a sink for "retired without successor" / unknown
    nxt = np.where(is_active, np.arange(n), np.where(succ_pos >= 0, succ_pos, n))
    nxt = np.append(nxt, n)
    terminal = np.append(is_active, True)
    for _ in range(max(1, int(np.ceil(np.log2(n + 2))) + 1)):
        jumped = nxt[nxt]
        if np.array_equal(jumped, nxt):
            break
        nxt = jumped
    if not terminal[nxt].all():
        n_bad = int((~terminal[nxt]).sum())
        raise GoldenIdError(
            f"the golden-ID registry has a merged_into cycle through {n_bad} IDs; "
            "restore the registry from the previous master version (mdm rollback)"
        )
    target = pos.get_indexer(ids.to_numpy())
    found = np.where(target >= 0, nxt[np.where(target >= 0, target, n)], n)
    out = np.concatenate([reg_ids, np.array([None], dtype=object)])[found]
    return pd.Series(out, index=ids.index, dtype=object)


def resolve_golden_id(registry: pd.DataFrame, golden_id: str) -> str:
    """The current golden ID of ``golden_id`` (itself when active), following ``merged_into`` chains."""
    by_id = registry.set_index("golden_id")
    seen: set[str] = set()
    current = golden_id
    while True:
        if current in seen:
            raise GoldenIdError(f"golden ID {golden_id} leads into a merged_into cycle; the registry is corrupt")
        seen.add(current)
        if current not in by_id.index:
            raise GoldenIdError(f"golden ID {current} was never issued")
        row = by_id.loc[current]
        if row["status"] == ACTIVE:
            return current
        nxt = row["merged_into"]
        if nxt is None or (isinstance(nxt, float) and np.isnan(nxt)):
            raise GoldenIdError(f"golden ID {current} was retired without a successor (its records left the sources)")
        current = str(nxt)


# --------------------------------------------------------------------------- assignment


def _issue(n: int, factory: IdFactory, taken: pd.Index) -> list[str]:
    """``n`` IDs from ``factory`` that collide neither with each other nor with ``taken``."""
    out: pd.Index = pd.Index([], dtype=object)
    for _ in range(100):
        if len(out) == n:
            return [str(g) for g in out]
        batch = pd.Index(factory(n - len(out)), dtype=object)
        batch = batch[~batch.duplicated() & ~batch.isin(taken) & ~batch.isin(out)]
        out = out.append(batch)
    raise GoldenIdError("the golden-ID factory keeps returning IDs that were already issued")


def _events(
    run_id: str,
    event_type: str,
    golden_id: pd.Series | np.ndarray,
    related: pd.Series | np.ndarray | None = None,
    record_key: pd.Series | np.ndarray | None = None,
    reason: str | pd.Series = "",
) -> pd.DataFrame:
    n = len(golden_id)

    def col(values: pd.Series | np.ndarray | str | None) -> np.ndarray:
        if values is None or isinstance(values, str):
            return np.full(n, values, dtype=object)
        s = pd.Series(np.asarray(values, dtype=object))
        return s.where(s.notna(), None).to_numpy(dtype=object)

    return pd.DataFrame(
        {
            "run_id": col(run_id),
            "golden_id": col(golden_id),
            "event_type": col(event_type),
            "related_golden_id": col(related),
            "record_key": col(record_key),
            "reason": col(reason),
        }
    )


def assign_golden_ids(
    clusters: pd.DataFrame,
    previous_xref: pd.DataFrame | None,
    previous_registry: pd.DataFrame | None,
    run_id: str,
    id_factory: IdFactory | None = None,
) -> GoldenAssignment:
    """Give every cluster of this run a golden ID, inheriting IDs from the previous run by record overlap.

    ``clusters`` has ``record_key`` and ``cluster`` (one row per record); ``previous_xref`` has
    ``record_key`` and ``golden_id``; ``previous_registry`` has :data:`REGISTRY_COLUMNS`.
    """
    factory = id_factory or new_golden_ids
    cl = clusters[["record_key", "cluster"]]
    if cl["record_key"].duplicated().any():
        raise GoldenIdError("clusters name the same record_key twice; each record belongs to exactly one cluster")
    registry = empty_registry() if previous_registry is None else previous_registry.loc[:, list(REGISTRY_COLUMNS)]
    registry = registry.reset_index(drop=True)
    prev = (
        pd.DataFrame({"record_key": pd.Series(dtype=object), "golden_id": pd.Series(dtype=object)})
        if previous_xref is None
        else previous_xref[["record_key", "golden_id"]]
    )
    if len(prev) and len(registry) == 0:
        raise GoldenIdError("a previous xref was given without the registry of golden IDs; pass both or neither")
    if len(prev):
        prev = prev.assign(golden_id=resolve_golden_ids(registry, prev["golden_id"]).to_numpy())
        if prev["golden_id"].isna().any():
            raise GoldenIdError("the previous xref names golden IDs that are unknown or retired without a successor")

    # Every record_key of tonight and of the previous run as one integer rank in string order:
    # joins, membership tests and sorts below run on these integers, and the text of a key is
    # looked up only for the rows that leave (xref, events).
    now_keys = cl["record_key"].to_numpy(dtype=object)
    ranks, key_text = sorted_factorize(np.concatenate([now_keys, prev["record_key"].to_numpy(dtype=object)]))
    if (ranks < 0).any():
        raise GoldenIdError("a record_key is missing (null) in the clusters or the previous xref")
    keys = _KeyText(key_text)
    cl = pd.DataFrame({"key_rank": ranks[: len(cl)], "cluster": cl["cluster"].to_numpy()})
    prev = pd.DataFrame({"key_rank": ranks[len(cl) :], "golden_id": prev["golden_id"].to_numpy(dtype=object)})

    # ---- overlap: (cluster, old_gid) -> shared records, smallest shared key
    both = cl.merge(prev, on="key_rank", how="inner")
    overlap = (
        both.groupby(["cluster", "golden_id"], sort=False)
        .agg(n_common=("key_rank", "size"), min_key=("key_rank", "min"))
        .reset_index()
    )
    seq = registry.set_index("golden_id")["issued_seq"]
    overlap["issued_seq"] = overlap["golden_id"].map(seq).to_numpy(dtype=np.int64)

    # ---- split: each old ID claims the cluster holding most of its records
    overlap["old_code"] = pd.factorize(overlap["golden_id"])[0]  # sort on ints, not on ID strings
    claims = overlap.sort_values(["old_code", "n_common", "min_key"], ascending=[True, False, True])
    claims = claims.drop_duplicates("old_code", keep="first")
    # ---- merge: each claimed cluster keeps the oldest claimant
    claims = claims.sort_values(["cluster", "issued_seq"])
    winners = claims.drop_duplicates("cluster", keep="first")[["cluster", "golden_id"]]
    losers = claims[claims.duplicated("cluster", keep="first")][["cluster", "golden_id"]]
    losers = losers.merge(winners.rename(columns={"golden_id": "survivor"}), on="cluster")

    # ---- new IDs for unclaimed clusters, issued in a deterministic order
    cluster_keys = cl.groupby("cluster", sort=False)["key_rank"].min().rename("min_key").reset_index()
    fresh = cluster_keys[~cluster_keys["cluster"].isin(winners["cluster"])].sort_values("min_key")
    new_ids = _issue(len(fresh), factory, pd.Index(registry["golden_id"]))
    start = int(registry["issued_seq"].max()) + 1 if len(registry) else 1
    fresh = fresh.assign(golden_id=new_ids, issued_seq=np.arange(start, start + len(fresh), dtype=np.int64))

    cluster_gid = pd.concat([winners, fresh[["cluster", "golden_id"]]], ignore_index=True)
    xref = cl.merge(cluster_gid, on="cluster", how="left")[["key_rank", "golden_id"]]

    # ---- registry
    active_before = registry.loc[registry["status"] == ACTIVE, "golden_id"]
    retired_empty = active_before[~active_before.isin(overlap["golden_id"])]
    reg = registry.set_index("golden_id")
    reg.loc[losers["golden_id"], "status"] = RETIRED
    reg.loc[losers["golden_id"], "merged_into"] = losers["survivor"].to_numpy()
    reg.loc[losers["golden_id"], "retired_run_id"] = run_id
    reg.loc[retired_empty, "status"] = RETIRED
    reg.loc[retired_empty, "retired_run_id"] = run_id
    added = pd.DataFrame(
        {
            "golden_id": fresh["golden_id"].to_numpy(dtype=object),
            "status": ACTIVE,
            "merged_into": None,
            "created_run_id": run_id,
            "retired_run_id": None,
            "issued_seq": fresh["issued_seq"].to_numpy(),
        }
    )
    registry_out = pd.concat([reg.reset_index(), added], ignore_index=True) if len(reg) else added
    registry_out = registry_out.astype({"issued_seq": np.int64}).sort_values("issued_seq", ignore_index=True)
    registry_out = registry_out.loc[:, list(REGISTRY_COLUMNS)]

    # ---- events
    events = _build_events(run_id, keys, both, xref, prev, cl, losers, retired_empty, fresh, overlap)
    log.info(
        "golden IDs: %d clusters, %d inherited, %d new, %d merged away, %d retired with no records, %d events",
        len(cluster_keys),
        len(winners),
        len(fresh),
        len(losers),
        len(retired_empty),
        len(events),
    )
    return GoldenAssignment(
        xref=pd.DataFrame({"record_key": now_keys, "golden_id": xref["golden_id"].to_numpy(dtype=object)}),
        registry=registry_out,
        events=events,
        clusters=cluster_gid.sort_values("cluster", ignore_index=True),
    )


@dataclass(frozen=True)
class _KeyText:
    """The text of record_key ranks (rank = position in sorted order of every key of the run)."""

    text: pa.Array

    def of(self, ranks: pd.Series) -> np.ndarray:
        return self.text.take(pa.array(ranks.to_numpy(np.int64))).to_numpy(zero_copy_only=False).astype(object)


def _build_events(
    run_id: str,
    keys: _KeyText,
    both: pd.DataFrame,
    xref: pd.DataFrame,
    prev: pd.DataFrame,
    cl: pd.DataFrame,
    losers: pd.DataFrame,
    retired_empty: pd.Series,
    fresh: pd.DataFrame,
    overlap: pd.DataFrame,
) -> pd.DataFrame:
    parts: list[pd.DataFrame] = []
    # merges: the survivor absorbs the loser; the loser is retired
    parts.append(_events(run_id, "merged", losers["survivor"], losers["golden_id"], reason="older ID survives"))
    parts.append(_events(run_id, "retired", losers["golden_id"], losers["survivor"], reason="merged"))
    # splits: an old ID (still alive or merged) lost part of its records to a new ID
    fresh_parts = overlap.merge(fresh[["cluster", "golden_id"]].rename(columns={"golden_id": "new_id"}), on="cluster")
    fresh_parts = fresh_parts.sort_values(["golden_id", "new_id"])
    parts.append(_events(run_id, "split", fresh_parts["golden_id"], fresh_parts["new_id"], reason="majority keeps ID"))
    # new IDs
    created_from = fresh_parts.drop_duplicates("new_id").set_index("new_id")["golden_id"]
    origin = fresh["golden_id"].map(created_from).astype(object)
    reason = ("split from " + origin).fillna("new cluster")
    parts.append(_events(run_id, "created", fresh["golden_id"], origin, reason=reason))
    # records that changed ID, beyond what a merge explains (key ranks sort as the keys do)
    moved = both[["key_rank", "golden_id"]].merge(xref, on="key_rank", suffixes=("_old", ""))
    moved = moved[moved["golden_id_old"] != moved["golden_id"]]
    absorbed = pd.MultiIndex.from_frame(losers[["golden_id", "survivor"]])
    explained = pd.MultiIndex.from_frame(moved[["golden_id_old", "golden_id"]]).isin(absorbed)
    moved = moved[~explained].sort_values("key_rank")
    parts.append(
        _events(run_id, "record_moved", moved["golden_id"], moved["golden_id_old"], keys.of(moved["key_rank"]),
                "relinked")
    )  # fmt: skip
    # records joining an inherited ID
    fresh_clusters = cl["cluster"].isin(fresh["cluster"]).to_numpy()
    new_rec = xref[~xref["key_rank"].isin(prev["key_rank"]).to_numpy() & ~fresh_clusters]
    new_rec = new_rec.sort_values("key_rank")
    parts.append(
        _events(run_id, "record_added", new_rec["golden_id"], None, keys.of(new_rec["key_rank"]), "new record")
    )
    # records gone from the sources
    gone = prev[~prev["key_rank"].isin(cl["key_rank"])].sort_values("key_rank")
    parts.append(
        _events(run_id, "record_removed", gone["golden_id"], None, keys.of(gone["key_rank"]), "record left sources")
    )
    parts.append(_events(run_id, "retired", retired_empty.sort_values(), reason="no records"))
    events = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else None
    if events is None:
        return _empty_events()
    events.insert(0, "event_id", run_id + "-" + pd.Series(np.arange(1, len(events) + 1)).astype(str).str.zfill(8))
    return events.loc[:, list(EVENT_COLUMNS)]
