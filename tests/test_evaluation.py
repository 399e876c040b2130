"""Accuracy metrics against hand-computed values."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matchers.evaluation import (
    bcubed_metrics,
    cluster_summary,
    evaluate_clusters,
    hard_case_table,
    link_metrics,
    pairwise_metrics,
)

# records:   0  1  2  3  4  5
CLUSTER = ["a", "a", "a", "b", "b", "c"]
PERSON = [1, 1, 2, 2, 3, 3]


def test_pairwise_metrics_by_hand() -> None:
    # predicted pairs: a: 3, b: 1 -> 4; true pairs: 1: 1, 2: 1, 3: 1 -> 3; tp: (0,1) only
    m = pairwise_metrics(np.array(CLUSTER), np.array(PERSON))
    assert m["true_positive_pairs"] == 1
    assert m["false_positive_pairs"] == 3
    assert m["false_negative_pairs"] == 2
    assert m["precision"] == pytest.approx(1 / 4)
    assert m["recall"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(2 * (1 / 4) * (1 / 3) / (1 / 4 + 1 / 3))


def test_bcubed_by_hand() -> None:
    # precision per record: 2/3, 2/3, 1/3, 1/2, 1/2, 1 ; recall: 1, 1, 1/2, 1/2, 1/2, 1/2
    m = bcubed_metrics(np.array(CLUSTER), np.array(PERSON))
    p = (2 / 3 + 2 / 3 + 1 / 3 + 1 / 2 + 1 / 2 + 1) / 6
    r = (1 + 1 + 0.5 + 0.5 + 0.5 + 0.5) / 6
    assert m["precision"] == pytest.approx(p)
    assert m["recall"] == pytest.approx(r)
    assert m["f1"] == pytest.approx(2 * p * r / (p + r))


def test_summary_counts() -> None:
    s = cluster_summary(np.array(CLUSTER), np.array(PERSON))
    assert s == {
        "records": 6,
        "clusters": 3,
        "persons": 3,
        "largest_cluster": 3,
        "persons_split": 2,  # persons 2 and 3
        "clusters_merging_persons": 2,  # a and b
    }


def test_perfect_clustering_scores_one() -> None:
    e = evaluate_clusters(np.array(PERSON) * 10, np.array(PERSON))
    s = e["summary"]
    assert s["pairwise_f1"] == 1.0 and s["bcubed_f1"] == 1.0
    assert s["persons_split"] == 0 and s["clusters_merging_persons"] == 0


def test_hard_case_purity_and_completeness() -> None:
    tags = [["twin"], ["twin"], ["twin", "legacy15"], None, [], ["legacy15"]]
    table = hard_case_table(np.array(CLUSTER), np.array(PERSON), tags).set_index("tag")
    # twin records 0, 1 (cluster a holds person 2 too: impure; complete), 2 (impure; incomplete)
    assert table.loc["twin", "records"] == 3
    assert table.loc["twin", "persons"] == 2
    assert table.loc["twin", "purity"] == 0.0
    assert table.loc["twin", "completeness"] == pytest.approx(2 / 3)
    # legacy15: record 2 (impure, incomplete), record 5 (pure: cluster c only person 3; incomplete)
    assert table.loc["legacy15", "purity"] == pytest.approx(0.5)
    assert table.loc["legacy15", "completeness"] == 0.0


def test_link_metrics() -> None:
    m = link_metrics(np.array([1, 3, 5]), np.array([2, 4, 6]), np.array([2, 3, 7]), np.array([1, 4, 8]))
    assert m["true_positive_pairs"] == 2
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=25))
def test_pairwise_metrics_equal_pair_enumeration(rows: list[tuple[int, int]]) -> None:
    cluster = np.array([c for c, _ in rows])
    person = np.array([p for _, p in rows])
    pred = {(i, j) for i, j in itertools.combinations(range(len(rows)), 2) if cluster[i] == cluster[j]}
    true = {(i, j) for i, j in itertools.combinations(range(len(rows)), 2) if person[i] == person[j]}
    m = pairwise_metrics(pd.Series(cluster), pd.Series(person))
    assert m["true_positive_pairs"] == len(pred & true)
    assert m["false_positive_pairs"] == len(pred - true)
    assert m["false_negative_pairs"] == len(true - pred)


def _accuracy_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "accuracy.py"
    spec = importlib.util.spec_from_file_location("benchmarks_accuracy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_evaluate_run_joins_on_source_keys_and_reports_hard_cases() -> None:
    acc = _accuracy_module()
    truth = pd.DataFrame(
        {
            "source_system": ["deposit", "card", "deposit", "loan", "card"],
            "source_record_id": ["1", "1", "2", "9", "7"],
            "person_id": [10, 10, 11, 11, 12],
            "patterns": [["legacy15"], [], None, ["typo_checksum"], []],
            "case": ["twin", "twin", "twin", "twin", None],
        }
    )
    clusters = pd.DataFrame(
        {
            "source_system": ["card", "deposit", "deposit", "loan", "extra"],
            "source_record_id": ["1", "1", "2", "9", "0"],
            "golden_id": ["g1", "g1", "g1", "g2", "g9"],
        }
    )
    report = acc.evaluate_run(clusters, truth)
    s = report["summary"]
    assert s["records"] == 4 and s["records_missing"] == 1 and s["records_not_in_truth"] == 1
    assert s["pairwise_precision"] == pytest.approx(1 / 3)  # g1 holds 3 pairs, one true
    assert s["pairwise_recall"] == pytest.approx(1 / 2)  # person 11 is split
    hard = report["hard_cases"].set_index(["kind", "tag"])
    assert hard.loc[("case", "twin"), "records"] == 4
    assert hard.loc[("case", "twin"), "purity"] == pytest.approx(1 / 4)  # only record loan:9 sits alone
    assert hard.loc[("pattern", "legacy15"), "completeness"] == 1.0
    targets = report["targets"].set_index("metric")
    assert not targets.loc["purity twin", "met"]
    assert "| metric |" in acc.to_markdown(report["targets"])
