"""Who keeps which golden ID: the split, merge and retire rules of :mod:`matchers.golden_ids` on integer codes.

One job: decide, with no text at all, which cluster of this run inherits which old golden
ID. Records are integer ranks of their keys (one Arrow sort, no hash table over millions of
strings), clusters are dense codes and golden IDs are codes too (a registry row, or
``len(registry) + i`` for the i-th new ID); the result, a :class:`Plan`, is turned into
text (xref, registry, events) by :mod:`matchers.golden_ids`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from matchers.arrow_text import gather, starts
from matchers.golden_registry import GoldenIdError, Registry

__all__ = ["Plan", "Records", "cluster_codes", "plan_assignment", "rank_records"]

_MAX_ROWS = 2**31 - 2  # record positions and ranks are int32


@dataclass(frozen=True)
class Records:
    """Every record_key of tonight and of the previous run as one rank in string (byte) order.

    ``now_at[r]`` / ``prev_at[r]``: the row of the clusters / previous xref holding the key of
    rank ``r`` (-1: none). Joins, membership tests and sorts run on these integers, and
    iterating ranks in order is iterating keys in sorted order.
    """

    now_at: np.ndarray
    prev_at: np.ndarray


def rank_records(now_keys: pa.Array, prev_keys: pa.Array) -> Records:
    """Rank both key columns together (one Arrow sort, no hash table, no concatenated copy) and place
    each row at its rank."""
    n_now, n_prev = len(now_keys), len(prev_keys)
    if n_now + n_prev > _MAX_ROWS:
        raise GoldenIdError(f"{n_now + n_prev} record keys exceed what one assignment handles ({_MAX_ROWS})")
    if now_keys.null_count or prev_keys.null_count:
        raise GoldenIdError("a record_key is missing (null) in the clusters or the previous xref")
    dense = pc.rank(pa.chunked_array([now_keys, prev_keys], pa.string()), tiebreaker="dense")  # 1, 2, ...
    ranks = np.asarray(dense.to_numpy()).astype(np.int32)
    del dense
    ranks -= 1
    n_keys = int(ranks.max(initial=-1)) + 1
    now_at = np.full(n_keys, -1, dtype=np.int32)
    now_at[ranks[:n_now]] = np.arange(n_now, dtype=np.int32)
    if np.count_nonzero(now_at >= 0) < n_now:
        raise GoldenIdError("clusters name the same record_key twice; each record belongs to exactly one cluster")
    prev_at = np.full(n_keys, -1, dtype=np.int32)
    prev_at[ranks[n_now:]] = np.arange(n_prev, dtype=np.int32)
    if np.count_nonzero(prev_at >= 0) < n_prev:
        raise GoldenIdError("the previous xref names the same record_key twice; it must list each record once")
    return Records(now_at, prev_at)


def cluster_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code per record, the distinct cluster values in ascending order): code order is value order.

    The matcher numbers clusters with small non-negative integers: then a presence table and
    a cumulative sum replace a hash table (at 10M records, hundreds of MB less).
    """
    n = len(values)
    if values.dtype.kind in "iu" and n and values.min() >= 0 and values.max() < 4 * n + 1024:
        present = np.zeros(int(values.max()) + 1, dtype=bool)
        present[values] = True
        code_of = np.cumsum(present, dtype=np.int32) - 1
        return code_of[values], np.flatnonzero(present).astype(values.dtype)
    codes, uniques = pd.factorize(values, sort=True)
    if (codes < 0).any():
        raise GoldenIdError("a cluster is missing (null); every record of the clusters belongs to one")
    return codes, np.asarray(uniques)


@dataclass(frozen=True)
class Plan:
    """Who keeps which ID, in golden codes (registry rows ``0..n_old-1``, then new IDs ``n_old..``).

    ``gid_of_cluster``: golden code per cluster code; ``fresh``: clusters given new IDs, in
    issue order; ``losers``/``survivors``: IDs merged away and what they merge into, in event
    order; ``emptied``: active IDs left without records; ``overlap_*``: every (cluster, old
    ID) pair sharing records; per rank, ``cluster_at`` and ``old_at`` (-1: none).
    """

    n_old: int
    gid_of_cluster: np.ndarray
    fresh: np.ndarray
    losers: np.ndarray
    survivors: np.ndarray
    emptied: np.ndarray
    overlap_cluster: np.ndarray
    overlap_old: np.ndarray
    cluster_at: np.ndarray
    old_at: np.ndarray


@dataclass(frozen=True)
class _Overlap:
    """Every (cluster, old ID) pair sharing records: how many, and the rank of the smallest shared key."""

    cluster: np.ndarray
    old: np.ndarray
    n_common: np.ndarray
    min_rank: np.ndarray


def _overlap(cluster: np.ndarray, old: np.ndarray, rank: np.ndarray, n_old: int) -> _Overlap:
    """Group the shared records (cluster, old ID, key rank) by pair, with dense per-ID tables.

    Night after night almost every old ID still sits in one cluster: its pair is the ID itself,
    counted with a bincount. Only the records of the few IDs spread over several clusters are
    grouped by (cluster, ID) in a hash table.
    """
    low = np.full(n_old, np.iinfo(np.int32).max, dtype=np.int32)
    high = np.full(n_old, -1, dtype=np.int32)
    np.minimum.at(low, old, cluster)
    np.maximum.at(high, old, cluster)
    first = np.full(n_old, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, old, rank)
    whole = np.flatnonzero(low == high)  # IDs whose shared records all sit in one cluster
    spread = np.flatnonzero(low[old] != high[old])  # records of the other IDs
    pair_code, pairs = pd.factorize(cluster[spread].astype(np.int64) * max(n_old, 1) + old[spread])
    n_common = np.bincount(pair_code, minlength=len(pairs))
    min_rank = np.full(len(pairs), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(min_rank, pair_code, rank[spread])
    return _Overlap(
        cluster=np.concatenate([low[whole], pairs // max(n_old, 1)]).astype(np.int64),
        old=np.concatenate([whole, pairs % max(n_old, 1)]).astype(np.int64),
        n_common=np.concatenate([np.bincount(old, minlength=n_old)[whole], n_common]),
        min_rank=np.concatenate([first[whole], min_rank]),
    )


def _claims(overlap: _Overlap, n_old: int) -> np.ndarray:
    """The pair each old ID claims: most shared records, ties to the smallest shared key."""
    single = np.bincount(overlap.old, minlength=n_old)[overlap.old] == 1  # the ID's only pair
    several = np.flatnonzero(~single)
    order = several[np.lexsort((overlap.min_rank[several], -overlap.n_common[several], overlap.old[several]))]
    return np.concatenate([np.flatnonzero(single), order[starts(overlap.old[order])]])


def _merge(cluster: np.ndarray, old: np.ndarray, seq: np.ndarray, n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """(winner old ID per cluster, -1 when unclaimed; claim positions that lose, by cluster then seq).

    Each claimed cluster keeps its oldest claimant (lowest ``issued_seq``): a per-cluster
    minimum, then a sort of the few losers only.
    """
    oldest = np.full(n_clusters, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(oldest, cluster, seq)
    wins = seq == oldest[cluster]
    if np.count_nonzero(wins) != np.count_nonzero(oldest < np.iinfo(np.int64).max):  # equal seqs: a sort decides
        order = np.lexsort((seq, cluster))
        wins = np.zeros(len(cluster), dtype=bool)
        wins[order[starts(cluster[order])]] = True
    winner = np.full(n_clusters, -1, dtype=np.int64)
    winner[cluster[wins]] = old[wins]
    lost = np.flatnonzero(~wins)
    return winner, lost[np.lexsort((seq[lost], cluster[lost]))]


def plan_assignment(
    records: Records, cluster_code: np.ndarray, n_clusters: int, old_of_prev: np.ndarray, registry: Registry
) -> Plan:
    """The split, merge and retire rules of :mod:`matchers.golden_ids`, on integer codes only."""
    n_old = len(registry)
    cluster_at = gather(cluster_code, records.now_at)
    old_at = gather(old_of_prev, records.prev_at)
    shared = np.flatnonzero((cluster_at >= 0) & (old_at >= 0))
    overlap = _overlap(cluster_at[shared], old_at[shared], shared, n_old)

    # ---- split: each old ID claims one cluster; merge: each claimed cluster keeps the oldest claimant
    claims = _claims(overlap, n_old)
    claim_cluster, claim_old = overlap.cluster[claims], overlap.old[claims]
    winner, lost = _merge(claim_cluster, claim_old, registry.issued_seq[claim_old], n_clusters)
    losers = claim_old[lost]
    survivors = winner[claim_cluster[lost]]

    # ---- new IDs for unclaimed clusters, issued in order of the clusters' smallest key
    now_ranks = np.flatnonzero(cluster_at >= 0)
    min_rank = np.full(n_clusters, len(cluster_at), dtype=np.int64)
    np.minimum.at(min_rank, cluster_at[now_ranks], now_ranks)
    fresh = np.flatnonzero(winner < 0)
    fresh = fresh[np.argsort(min_rank[fresh], kind="stable")]
    gid_of_cluster = winner
    gid_of_cluster[fresh] = n_old + np.arange(len(fresh))

    has_records = np.zeros(n_old, dtype=bool)
    has_records[overlap.old] = True
    emptied = np.flatnonzero(registry.active & ~has_records)
    return Plan(
        n_old, gid_of_cluster, fresh, losers, survivors, emptied, overlap.cluster, overlap.old, cluster_at, old_at
    )
