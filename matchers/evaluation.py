"""Accuracy of a clustering against the truth: pairwise and B-cubed metrics, hard cases.

Pure functions over two aligned label arrays (predicted cluster, true person), one entry
per record. Everything is computed from the contingency counts of (cluster, person)
groups, never by enumerating pairs, so it runs in seconds on millions of records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def _pairs(n: np.ndarray) -> float:
    n = n.astype(np.float64)
    return float((n * (n - 1) / 2).sum())


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else 1.0


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def contingency(cluster: np.ndarray | pd.Series, person: np.ndarray | pd.Series) -> pd.DataFrame:
    """One row per (cluster, person) with ``n`` records, ``cluster_size`` and ``person_size``."""
    frame = pd.DataFrame({"cluster": np.asarray(cluster), "person": np.asarray(person)})
    cells = frame.groupby(["cluster", "person"], sort=False, observed=True).size().rename("n").reset_index()
    cells["cluster_size"] = cells.groupby("cluster", sort=False)["n"].transform("sum")
    cells["person_size"] = cells.groupby("person", sort=False)["n"].transform("sum")
    return cells


def pairwise_metrics(cluster: np.ndarray | pd.Series, person: np.ndarray | pd.Series) -> dict[str, float]:
    """Pairwise precision, recall and F1 over all record pairs put together / truly together."""
    cells = contingency(cluster, person)
    tp = _pairs(cells["n"].to_numpy())
    predicted = _pairs(cells.groupby("cluster", sort=False)["n"].sum().to_numpy())
    actual = _pairs(cells.groupby("person", sort=False)["n"].sum().to_numpy())
    precision, recall = _ratio(tp, predicted), _ratio(tp, actual)
    return {
        "true_positive_pairs": tp,
        "false_positive_pairs": predicted - tp,
        "false_negative_pairs": actual - tp,
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
    }


def bcubed_metrics(cluster: np.ndarray | pd.Series, person: np.ndarray | pd.Series) -> dict[str, float]:
    """B-cubed precision, recall and F1 (record-averaged)."""
    cells = contingency(cluster, person)
    n = cells["n"].to_numpy(np.float64)
    total = n.sum()
    if total == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    precision = float((n * n / cells["cluster_size"].to_numpy()).sum() / total)
    recall = float((n * n / cells["person_size"].to_numpy()).sum() / total)
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def cluster_summary(cluster: np.ndarray | pd.Series, person: np.ndarray | pd.Series) -> dict[str, int]:
    """Counts: records, clusters, persons, largest cluster, persons split, clusters merging persons."""
    cells = contingency(cluster, person)
    per_person = cells.groupby("person", sort=False).size()
    per_cluster = cells.groupby("cluster", sort=False).size()
    return {
        "records": int(cells["n"].sum()),
        "clusters": len(per_cluster),
        "persons": len(per_person),
        "largest_cluster": int(cells.groupby("cluster", sort=False)["n"].sum().max()) if len(cells) else 0,
        "persons_split": int((per_person > 1).sum()),
        "clusters_merging_persons": int((per_cluster > 1).sum()),
    }


def record_outcomes(cluster: np.ndarray | pd.Series, person: np.ndarray | pd.Series) -> pd.DataFrame:
    """Per record: ``pure`` (its cluster holds no other person), ``complete`` (all its person's records are in it)."""
    frame = pd.DataFrame({"cluster": np.asarray(cluster), "person": np.asarray(person)})
    n = frame.groupby(["cluster", "person"], sort=False, observed=True)["cluster"].transform("size").to_numpy()
    cluster_size = frame.groupby("cluster", sort=False)["cluster"].transform("size").to_numpy()
    person_size = frame.groupby("person", sort=False)["person"].transform("size").to_numpy()
    return pd.DataFrame({"pure": n == cluster_size, "complete": n == person_size})


def hard_case_table(
    cluster: np.ndarray | pd.Series,
    person: np.ndarray | pd.Series,
    tags: Sequence[Sequence[str] | None] | pd.Series,
) -> pd.DataFrame:
    """Per tag: records, persons, purity and completeness (shares of the tagged records).

    ``tags`` holds each record's case tags (a list, or None). A record counts once per tag.
    """
    outcomes = record_outcomes(cluster, person)
    outcomes["person"] = np.asarray(person)
    outcomes["tag"] = list(tags)
    exploded = outcomes.explode("tag")
    exploded = exploded[exploded["tag"].notna()]
    columns = ["tag", "records", "persons", "purity", "completeness"]
    if exploded.empty:
        return pd.DataFrame(columns=columns)
    table = exploded.groupby("tag", sort=True).agg(
        records=("pure", "size"),
        persons=("person", "nunique"),
        purity=("pure", "mean"),
        completeness=("complete", "mean"),
    )
    return table.reset_index()[columns]


def evaluate_clusters(
    cluster: np.ndarray | pd.Series,
    person: np.ndarray | pd.Series,
    tags: Sequence[Sequence[str] | None] | pd.Series | None = None,
) -> dict[str, Any]:
    """Every metric at once: ``summary`` (flat dict) and ``hard_cases`` (DataFrame or None)."""
    pw = pairwise_metrics(cluster, person)
    b3 = bcubed_metrics(cluster, person)
    summary: dict[str, Any] = {
        **cluster_summary(cluster, person),
        "pairwise_precision": pw["precision"],
        "pairwise_recall": pw["recall"],
        "pairwise_f1": pw["f1"],
        "false_positive_pairs": pw["false_positive_pairs"],
        "false_negative_pairs": pw["false_negative_pairs"],
        "bcubed_precision": b3["precision"],
        "bcubed_recall": b3["recall"],
        "bcubed_f1": b3["f1"],
    }
    hard = hard_case_table(cluster, person, tags) if tags is not None else None
    return {"summary": summary, "hard_cases": hard}


def link_metrics(
    predicted_l: np.ndarray, predicted_r: np.ndarray, true_l: np.ndarray, true_r: np.ndarray
) -> dict[str, float]:
    """Precision, recall and F1 of a set of predicted links (unordered pairs) against true links."""
    pred = pd.MultiIndex.from_arrays([np.minimum(predicted_l, predicted_r), np.maximum(predicted_l, predicted_r)])
    true = pd.MultiIndex.from_arrays([np.minimum(true_l, true_r), np.maximum(true_l, true_r)])
    pred, true = pred.unique(), true.unique()
    tp = float(len(pred.intersection(true)))
    precision, recall = _ratio(tp, len(pred)), _ratio(tp, len(true))
    return {
        "true_positive_pairs": tp,
        "false_positive_pairs": len(pred) - tp,
        "false_negative_pairs": len(true) - tp,
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
    }
