"""Connected components (against networkx) and cluster repair."""

from __future__ import annotations

import networkx as nx
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from matchers.clustering import conflicted_clusters, connected_components, repair_clusters

NONE = np.empty(0, np.int64)


def _as_sets(labels: np.ndarray) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for rid, c in enumerate(labels.tolist()):
        groups.setdefault(c, set()).add(rid)
    return {frozenset(g) for g in groups.values()}


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 40).flatmap(
        lambda n: st.tuples(st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=60))
    )
)
def test_components_equal_networkx(graph: tuple[int, list[tuple[int, int]]]) -> None:
    n, edges = graph
    left = np.array([a for a, _ in edges], np.int64)
    right = np.array([b for _, b in edges], np.int64)
    labels = connected_components(n, left, right)
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edges)
    assert _as_sets(labels) == {frozenset(c) for c in nx.connected_components(g)}
    for rid in range(n):  # the cluster id is the lowest rid of the component
        assert labels[rid] == min(np.flatnonzero(labels == labels[rid]))


def test_singletons_keep_their_own_id() -> None:
    labels = connected_components(4, np.array([1]), np.array([3]))
    assert labels.tolist() == [0, 1, 2, 1]


def test_repair_splits_a_chain_along_its_weakest_link() -> None:
    # 0 -9- 1 -3- 2 -8- 3 ; 0 and 3 cannot link: the 3-bit edge must go
    left, right = np.array([0, 1, 2]), np.array([1, 2, 3])
    res = repair_clusters(4, left, right, np.array([9.0, 3.0, 8.0]), np.array([0]), np.array([3]))
    assert res.split_edges.tolist() == [1]
    assert res.labels.tolist() == [0, 0, 2, 2]
    assert res.clusters_split == 1


def test_repair_separates_two_resident_ids_and_leaves_other_clusters_alone() -> None:
    # cluster {0,1,2}: 0 and 2 hold different resident IDs, 1 has none; cluster {3,4} is clean
    left, right = np.array([0, 1, 3]), np.array([1, 2, 4])
    resident = np.array([5, -1, 6, 7, -1])
    res = repair_clusters(5, left, right, np.array([10.0, 20.0, 1.0]), NONE, NONE, resident)
    assert res.split_edges.tolist() == [0]  # 0-1 is weaker than 1-2
    assert res.labels.tolist() == [0, 1, 1, 3, 3]


def test_forced_edges_survive_a_resident_id_conflict_but_not_a_cannot_link() -> None:
    resident = np.array([5, 6, -1])
    left, right = np.array([0, 1]), np.array([1, 2])
    res = repair_clusters(3, left, right, np.array([1.0, 1.0]), NONE, NONE, resident, forced=np.array([True, False]))
    assert res.labels.tolist() == [0, 0, 0]
    res = repair_clusters(
        3, left, right, np.array([np.inf, 1.0]), np.array([0]), np.array([1]), forced=np.array([True, False])
    )
    assert res.split_edges.tolist() == [0]


def test_conflicted_clusters_finds_only_conflicts_within_a_cluster() -> None:
    labels = np.array([0, 0, 2, 2, 4])
    found = conflicted_clusters(labels, np.array([0, 1]), np.array([4, 0]), np.array([1, -1, 3, 3, 9]))
    assert found.tolist() == [0]


@settings(max_examples=50, deadline=None)
@given(
    st.integers(2, 25).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.floats(0, 30)), max_size=50),
            st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=5),
        )
    )
)
def test_repair_always_removes_every_conflict(case: tuple) -> None:
    n, edges, conflicts = case
    conflicts = [(a, b) for a, b in conflicts if a != b]
    left = np.array([e[0] for e in edges], np.int64)
    right = np.array([e[1] for e in edges], np.int64)
    w = np.array([e[2] for e in edges], np.float64)
    cl = np.array([a for a, _ in conflicts], np.int64)
    cr = np.array([b for _, b in conflicts], np.int64)
    res = repair_clusters(n, left, right, w, cl, cr)
    assert np.all(res.labels[cl] != res.labels[cr])
    before = connected_components(n, left, right)
    # repair only ever splits: records apart before stay apart
    assert all(before[i] == before[j] for i in range(n) for j in range(n) if res.labels[i] == res.labels[j])
