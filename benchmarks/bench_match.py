"""Time the matcher per step (wall, CPU, peak RSS) on standardized generator records and score it.

    python benchmarks/bench_match.py                   # 100k and 600k persons (about 170k and 1.02M records)
    python benchmarks/bench_match.py --persons 100000  # one size
    python benchmarks/bench_match.py --repeat 2        # best of two runs per size

The extracts must exist (``benchmarks/out/data-<n>k/``, see benchmarks/README.md). They are
extracted and standardized once, as the nightly flow does (pipelines/steps.py), and cached as
``benchmarks/out/std-<n>k.parquet``; delete that file to standardize again. Each size is then
matched in its own process, so peak RSS is the match run's own (reading the cache included).
Clusters are scored against ``truth.parquet`` with ``benchmarks/accuracy.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "out"
sys.path.insert(0, str(REPO))

log = logging.getLogger("bench_match")


def data_dir(persons: int) -> Path:
    return OUT / f"data-{persons // 1000}k"


def cache_path(persons: int) -> Path:
    return OUT / f"std-{persons // 1000}k.parquet"


def standardized(persons: int) -> Path:
    """The cached standardized records of the generator's extracts (built on first use)."""
    path = cache_path(persons)
    if path.exists():
        return path
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.extract.core import extract_source
    from schemas.sources import SourcesFile, load_yaml
    from validators.standardize import StandardizeRules, standardize

    folder = data_dir(persons)
    if not (folder / "truth.parquet").exists():
        raise SystemExit(f"{folder} has no extracts; generate them first (benchmarks/README.md)")
    sources = SourcesFile.model_validate(load_yaml(REPO / "data" / "config" / "sources.yaml"))
    t0 = time.perf_counter()
    canonical = pa.concat_tables([extract_source(s, folder, "bench").canonical for s in sources.sources])
    t1 = time.perf_counter()
    rules = StandardizeRules(date_formats={s.system: s.date_formats for s in sources.sources})
    std = standardize(canonical, rules)
    t2 = time.perf_counter()
    pq.write_table(pa.Table.from_pandas(std, preserve_index=False), path)
    log.info("standardized %d records: extract %.1f s, standardize %.1f s", len(std), t1 - t0, t2 - t1)
    return path


class _PeakRss:
    """Samples the process's resident set every 50 ms (DuckDB runs inside the process)."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def run_once(persons: int, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Match the cached records of one size in this process; timings, memory and accuracy."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchmarks.accuracy import evaluate_run
    from matchers.pipeline import match
    from pipelines.steps import dictionary_codes
    from schemas.matching import load_match_config

    path = standardized(persons)
    records = dictionary_codes(pq.read_table(path))  # as the flow hands them over: Arrow
    config = load_match_config(overrides or None)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with _PeakRss() as rss:
        result = match(records, config)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    clusters = pd.DataFrame(
        {
            "source_system": records["source_system"].cast(pa.string()).to_numpy(zero_copy_only=False),
            "source_record_id": records["source_record_id"].to_numpy(zero_copy_only=False),
            "cluster": result.clusters["cluster"].to_numpy(),
        }
    )
    truth = pd.read_parquet(data_dir(persons) / "truth.parquet")
    acc = evaluate_run(clusters, truth)
    targets = acc["targets"]
    purity = {str(m): round(float(v), 4) for m, v in zip(targets["metric"], targets["value"], strict=True)}
    met = bool(targets["met"].all())
    summary = acc["summary"]
    return {
        "persons": persons,
        "records": len(records),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "peak_rss_gb": round(rss.peak / 2**30, 2),
        "max_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "steps_s": result.stats["timings"],
        "steps_cpu_s": result.stats.get("cpu_timings", {}),
        "candidate_pairs": result.stats["candidate_pairs"],
        "pairs_compared": result.stats["pairs_compared"],
        "by_decision": result.stats["by_decision"],
        "pairwise_f1": round(float(summary["pairwise_f1"]), 5),
        "bcubed_f1": round(float(summary["bcubed_f1"]), 5),
        "targets": purity,
        "targets_met": met,
        "blocking_report": result.blocking_report.to_dict("records"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, action="append", help="size(s) to run (default 100k and 600k)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (each in its own process)")
    parser.add_argument("--blocking", action="store_true", help="also print the blocking report")
    parser.add_argument("--u-pairs", type=int, help="override scoring.u_estimation.sample_pairs")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    if args.child:
        overrides = {"scoring": {"u_estimation": {"sample_pairs": args.u_pairs}}} if args.u_pairs else None
        sys.stdout.write(json.dumps(run_once(args.child, overrides)) + "\n")
        return
    for persons in args.persons or [100_000, 600_000]:
        standardized(persons)
        for _ in range(args.repeat):
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(persons),
                    *(["--u-pairs", str(args.u_pairs)] if args.u_pairs else []),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            report = row.pop("blocking_report")
            sys.stdout.write(json.dumps(row) + "\n")
            if args.blocking:
                for r in report:
                    sys.stdout.write(f"  {r}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
