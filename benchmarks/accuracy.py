"""Score a run's clusters against the generator's truth file and print markdown tables.

    python benchmarks/accuracy.py --clusters CLUSTERS.parquet --truth data/sample/truth.parquet

``CLUSTERS`` holds one row per source record with ``source_system``, ``source_record_id``
and ``golden_id`` (or ``cluster``), e.g. the master's ``customer_xref``. The truth file
(``pipelines.generator``) holds ``source_system``, ``source_record_id``, ``person_id``,
``patterns`` (list of dirt patterns per record) and ``case`` (person-level hard case).
A benchmark runner calls :func:`evaluate_run` directly.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from matchers.evaluation import evaluate_clusters

KEYS = ["source_system", "source_record_id"]

TARGETS: dict[str, float] = {"pairwise_f1": 0.997, "bcubed_f1": 0.999}
PURITY_TARGETS: dict[str, float] = {"twin": 0.99, "namesake_same_dob": 0.99, "placeholder_id": 0.99}


def _cluster_column(clusters: pd.DataFrame) -> str:
    for col in ("golden_id", "cluster"):
        if col in clusters.columns:
            return col
    raise ValueError("clusters need a golden_id or cluster column")


def _tags(truth: pd.DataFrame) -> list[list[str]]:
    patterns = truth["patterns"] if "patterns" in truth.columns else pd.Series([None] * len(truth))
    cases = truth["case"] if "case" in truth.columns else pd.Series([None] * len(truth))
    out = []
    for p, c in zip(patterns.tolist(), cases.tolist(), strict=True):
        tags = [f"pattern:{x}" for x in (list(p) if p is not None else [])]
        if isinstance(c, str) and c:
            tags.append(f"case:{c}")
        out.append(tags)
    return out


def evaluate_run(clusters: pd.DataFrame, truth: pd.DataFrame) -> dict[str, Any]:
    """Metrics of ``clusters`` against ``truth`` joined on (source_system, source_record_id).

    Returns ``summary`` (dict), ``hard_cases`` (DataFrame: tag, kind, records, persons,
    purity, completeness) and ``targets`` (DataFrame: metric, value, target, met).
    Truth records absent from ``clusters`` are counted in ``summary['records_missing']``.
    """
    col = _cluster_column(clusters)
    left = clusters[[*KEYS, col]].astype({"source_system": str, "source_record_id": str})
    right = truth.astype({"source_system": str, "source_record_id": str})
    joined = right.merge(left, on=KEYS, how="inner", validate="one_to_one")
    result = evaluate_clusters(joined[col].to_numpy(), joined["person_id"].to_numpy(), _tags(joined))
    summary = dict(result["summary"])
    summary["records_missing"] = len(truth) - len(joined)
    summary["records_not_in_truth"] = len(clusters) - len(joined)
    hard = result["hard_cases"]
    split = hard["tag"].str.split(":", n=1)
    hard.insert(1, "kind", split.str[0])
    hard["tag"] = split.str[1]
    hard = hard.sort_values(["kind", "tag"], ignore_index=True)

    checks = [(m, float(summary[m]), t) for m, t in TARGETS.items()]
    cases = hard[hard["kind"] == "case"].set_index("tag")
    checks += [
        (f"purity {case}", float(cases.loc[case, "purity"]), t)
        for case, t in PURITY_TARGETS.items()
        if case in cases.index
    ]
    targets = pd.DataFrame(checks, columns=["metric", "value", "target"])
    targets["met"] = targets["value"] >= targets["target"]
    return {"summary": summary, "hard_cases": hard, "targets": targets}


def to_markdown(frame: pd.DataFrame) -> str:
    """A plain markdown table (no optional dependency)."""

    def cell(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--clusters", type=Path, required=True, help="Parquet: source_system, source_record_id, golden_id"
    )
    parser.add_argument("--truth", type=Path, required=True, help="the generator's truth.parquet")
    args = parser.parse_args()
    report = evaluate_run(pd.read_parquet(args.clusters), pd.read_parquet(args.truth))
    summary = pd.DataFrame(list(report["summary"].items()), columns=["metric", "value"])
    print("## Accuracy\n\n" + to_markdown(summary))
    print("\n## Hard cases\n\n" + to_markdown(report["hard_cases"]))
    print("\n## Targets\n\n" + to_markdown(report["targets"]))


if __name__ == "__main__":
    main()
