"""Standardize + match + cluster against the whole Splink 5 script, on the same extracts, in one run.

    python benchmarks/bench_vs_splink.py                    # 600k persons (1,024,303 records)
    python benchmarks/bench_vs_splink.py --persons 100000

Our side is the product's own code called as plain functions, the way the Splink script is a
plain script: ``standardize`` (validators/standardize.py, through ``pipelines.steps``, with the
flow's categorical code columns), then ``match`` (matchers/pipeline.py: blocking, comparisons,
u and EM training, scoring, decisions, clustering with repair). The extracts are read into the
canonical table first and that read is not counted: the target compares standardize + match +
cluster with Splink's read, clean, train, predict and cluster. Each side runs in its own
process (its own peak memory), ours first, then Splink (benchmarks/splink_baseline.py in
benchmarks/.venv-splink). Clusters are scored against ``truth.parquet``. The result is written
to ``benchmarks/results/vs-splink-<N>k.json`` and rendered by ``benchmarks/report.py``.
The nightly flow's own per-step figures (Prefect included) are in the series tables.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "out"
sys.path.insert(0, str(REPO))


def _timing(wall: float, cpu: float) -> dict[str, float]:
    return {"wall_s": round(time.perf_counter() - wall, 2), "cpu_s": round(time.process_time() - cpu, 2)}


def _text(std: Any, column: str) -> Any:
    """One text column of the standardized records (Arrow, codes decoded; or pandas) as a NumPy array."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(std, pd.DataFrame):
        return std[column].astype(str).to_numpy()
    values = std.column(column)
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    return values.to_numpy(zero_copy_only=False)


def _ours(persons: int) -> dict[str, Any]:
    """Runs in a child process: canonical read (not timed), then standardize and match, timed."""
    import pandas as pd

    from benchmarks.accuracy import evaluate_run
    from benchmarks.bench_standardize import PeakRss, load_canonical
    from pipelines import steps
    from schemas.settings import load_run_config

    data = OUT / f"data-{persons // 1000}k"
    canonical = load_canonical(data, OUT / f"data-{persons // 1000}k.canonical.parquet")
    config = load_run_config(None)
    out: dict[str, Any] = {"records": canonical.num_rows}
    with PeakRss() as peak:
        wall, cpu = time.perf_counter(), time.process_time()
        std = steps.standardize_records(canonical, config)
        out["standardize"] = _timing(wall, cpu)
        del canonical
        wall, cpu = time.perf_counter(), time.process_time()
        matched = steps.match_records(std, config, None)
        out["match"] = _timing(wall, cpu)
    out["peak_rss_mb"] = round(peak.peak / 2**20, 1)
    out["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["wall_s"] = round(out["standardize"]["wall_s"] + out["match"]["wall_s"], 2)
    out["match_steps_s"] = matched.stats["timings"]
    clusters = pd.DataFrame(
        {
            "source_system": _text(std, "source_system"),
            "source_record_id": _text(std, "source_record_id"),
            "cluster": matched.clusters["cluster"].to_numpy(),
        }
    )
    acc = evaluate_run(clusters, pd.read_parquet(data / "truth.parquet"))
    out["accuracy"] = {k: float(v) for k, v in acc["summary"].items()}
    out["hard_cases"] = acc["hard_cases"].to_dict("records") if hasattr(acc["hard_cases"], "to_dict") else []
    return out


def _splink(persons: int) -> dict[str, Any]:
    python = REPO / "benchmarks" / ".venv-splink" / "bin" / "python"
    if not python.exists():
        subprocess.run(["bash", str(REPO / "benchmarks" / "setup_splink.sh")], check=True)
    out = OUT / f"splink-{persons // 1000}k"
    data = OUT / f"data-{persons // 1000}k"
    cmd = [str(python), str(REPO / "benchmarks" / "splink_baseline.py"), "--data", str(data), "--out", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=600_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.stdout.write(json.dumps(_ours(args.persons), default=str) + "\n")
        return
    load = os.getloadavg()[0]
    proc = subprocess.run(
        [sys.executable, __file__, "--child", "--persons", str(args.persons)],
        check=True,
        capture_output=True,
        text=True,
    )
    ours = json.loads(proc.stdout.strip().splitlines()[-1])
    theirs = _splink(args.persons)
    splink_wall = float(theirs["total"]["wall_s"])
    result = {
        "persons": args.persons,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average_before": round(load, 2),
        "ours": ours,
        "splink": {
            "wall_s": splink_wall,
            "peak_rss_mb": theirs["total"].get("peak_rss_mb_sampled"),
            "accuracy": theirs.get("accuracy"),
            "phases": theirs.get("phases"),
        },
        "ratio": round(ours["wall_s"] / splink_wall, 3),
    }
    path = REPO / "benchmarks" / "results" / f"vs-splink-{args.persons // 1000}k.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    a, b = ours["accuracy"], theirs.get("accuracy", {})
    std_s, match_s = ours["standardize"]["wall_s"], ours["match"]["wall_s"]
    splink_peak = (theirs["total"].get("peak_rss_mb_sampled") or 0) / 1024
    print(f"records {ours['records']:,}; load average before {load:.2f}")
    peak = ours["peak_rss_mb"] / 1024
    print(f"ours: standardize {std_s} s + match {match_s} s = {ours['wall_s']} s, peak {peak:.2f} GB")
    print(f"      pairwise F1 {a['pairwise_f1']:.4f}, B-cubed {a['bcubed_f1']:.4f}")
    print(f"splink: {splink_wall:.1f} s, peak {splink_peak:.2f} GB")
    nan = float("nan")
    print(f"        pairwise F1 {b.get('pairwise_f1', nan):.4f}, B-cubed {b.get('bcubed_f1', nan):.4f}")
    print(f"ratio {result['ratio']:.3f} (target <= 0.333) -> {path}")


if __name__ == "__main__":
    main()
