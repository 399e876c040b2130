"""Clusters: connected components over accepted links, then repair of conflicted clusters.

Components come from ``scipy.sparse.csgraph``; a cluster's id is its lowest ``rid``.
Repair touches only the clusters that hold a conflict (a cannot-link or hard-conflict
pair, or two different valid resident IDs): their edges are re-added strongest first
with a union-find (Kruskal style), skipping every edge that would join two groups in
conflict. The skipped edges are the cluster's weakest links; they go to review.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as _scipy_components

from mdm.arrays import sorted_unique

log = logging.getLogger(__name__)


def connected_components(n_records: int, rid_l: np.ndarray, rid_r: np.ndarray) -> np.ndarray:
    """Cluster id per rid (index = rid); the id is the lowest rid of the component."""
    if n_records == 0:
        return np.empty(0, np.int64)
    data = np.ones(len(rid_l), np.int8)
    graph = coo_matrix((data, (rid_l.astype(np.int64), rid_r.astype(np.int64))), shape=(n_records, n_records)).tocsr()
    _, comp = _scipy_components(graph, directed=False)
    lowest = np.full(comp.max() + 1, n_records, np.int64)
    np.minimum.at(lowest, comp, np.arange(n_records, dtype=np.int64))
    return lowest[comp]


def conflicted_clusters(
    labels: np.ndarray,
    conflict_l: np.ndarray,
    conflict_r: np.ndarray,
    resident_id: np.ndarray | None = None,
) -> np.ndarray:
    """Cluster ids holding a conflict pair or more than one distinct resident-ID code (>= 0)."""
    same = labels[conflict_l] == labels[conflict_r]
    found = [labels[conflict_l[same]]]
    if resident_id is not None:
        has = resident_id >= 0
        frame = pd.DataFrame({"cluster": labels[has], "rid_code": resident_id[has]})
        distinct = frame.groupby("cluster", sort=False)["rid_code"].nunique()
        found.append(distinct.index[distinct.to_numpy() > 1].to_numpy(np.int64))
    return sorted_unique(np.concatenate(found).astype(np.int64))


@dataclass(frozen=True)
class RepairResult:
    labels: np.ndarray
    split_edges: np.ndarray  # indices into the edge arrays of the edges removed
    clusters_split: int


class _Groups:
    """Union-find whose groups carry their resident-ID codes and the records they may not join."""

    def __init__(self, resident: dict[int, int], apart: dict[int, set[int]]) -> None:
        self.parent: dict[int, int] = {}
        self.members: dict[int, set[int]] = {}
        self.ids: dict[int, set[int]] = {}
        self.resident = resident
        self.apart = apart

    def find(self, x: int) -> int:
        if x not in self.parent:
            self.parent[x] = x
            self.members[x] = {x}
            self.ids[x] = {self.resident[x]} if x in self.resident else set()
            self.apart[x] = set(self.apart.get(x, ()))
            return x
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int, forced: bool) -> bool:
        """Join the groups of a and b unless they conflict; ``forced`` ignores resident-ID conflicts."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if not forced and self.ids[ra] and self.ids[rb] and self.ids[ra].isdisjoint(self.ids[rb]):
            return False
        if len(self.members[ra]) < len(self.members[rb]):
            ra, rb = rb, ra
        if self.apart[ra] & self.members[rb] or self.apart[rb] & self.members[ra]:
            return False
        self.parent[rb] = ra
        self.members[ra] |= self.members.pop(rb)
        self.apart[ra] |= self.apart.pop(rb)
        self.ids[ra] |= self.ids.pop(rb)
        return True


def repair_clusters(
    n_records: int,
    edge_l: np.ndarray,
    edge_r: np.ndarray,
    strength: np.ndarray,
    conflict_l: np.ndarray,
    conflict_r: np.ndarray,
    resident_id: np.ndarray | None = None,
    forced: np.ndarray | None = None,
) -> RepairResult:
    """Split clusters holding a conflict along their weakest edges.

    ``strength`` orders edges (higher = kept first; give steward and deterministic links
    ``inf``). ``conflict_l/r`` are pairs that must end apart; ``resident_id`` holds a code
    per rid for records with a valid resident ID (-1 otherwise): two codes may not share
    a cluster, except through a ``forced`` edge (a steward's must-link: the steward knows
    the person's ID was re-issued). Clusters without a conflict are returned untouched.
    """
    labels = connected_components(n_records, edge_l, edge_r)
    bad = conflicted_clusters(labels, conflict_l, conflict_r, resident_id)
    if len(bad) == 0:
        return RepairResult(labels, np.empty(0, np.int64), 0)
    in_bad = np.isin(labels[edge_l], bad)
    idx = np.flatnonzero(in_bad)
    order = idx[np.lexsort((-strength[idx], labels[edge_l[idx]]))]
    bad_nodes = np.flatnonzero(np.isin(labels, bad))
    resident: dict[int, int] = {}
    if resident_id is not None:
        has = bad_nodes[resident_id[bad_nodes] >= 0]
        resident = dict(zip(has.tolist(), resident_id[has].tolist(), strict=True))
    apart: dict[int, set[int]] = {}
    for a, b in zip(conflict_l.tolist(), conflict_r.tolist(), strict=True):
        apart.setdefault(a, set()).add(b)
        apart.setdefault(b, set()).add(a)
    groups = _Groups(resident, apart)
    force = forced[order] if forced is not None else np.zeros(len(order), bool)
    skipped = [
        e
        for e, a, b, f in zip(
            order.tolist(), edge_l[order].tolist(), edge_r[order].tolist(), force.tolist(), strict=True
        )
        if not groups.union(a, b, f)
    ]
    split = np.asarray(skipped, np.int64)
    keep = np.ones(len(edge_l), bool)
    keep[split] = False
    new_labels = connected_components(n_records, edge_l[keep], edge_r[keep])
    log.info("cluster repair: %d conflicted cluster(s), %d link(s) cut", len(bad), len(split))
    return RepairResult(new_labels, split, len(bad))
