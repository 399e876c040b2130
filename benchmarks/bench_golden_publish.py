"""Speed of the back half of the nightly run: golden IDs + survivorship, master tables, publish, mart.

Usage: python benchmarks/bench_golden_publish.py [--data benchmarks/out/data-600k] [--out benchmarks/out/golden-publish]
       [--steps golden,assemble,publish,mart,golden_prev | --steps golden,nightly_publish[,mart]]
       [--profile publish.prof]

The first call builds realistic inputs once (extract + standardize + match over the generated
extracts, ``pipelines.generator.generate(persons=600000, seed=20261123)`` gives 1,024,303
records) and caches the standardized records, pairs, clusters, review queue and quarantine as
Parquet under ``--out/inputs``; later calls read the cache. Each step is then timed (wall, CPU,
peak RSS growth of the process) and a markdown table is printed. Throw-away keys are set in the
environment: the files written here are benchmark output, never real data.

``nightly_publish`` times what the nightly run counted as its step "publish" before it staged
tables into its version (``source_records`` before matching since ``5cf294d``, ``match_links``
after it since ``f1a6083``; the run's own steps are in ``run_series.py``'s tables): the
``source_records`` table and the record keys from the standardized frame, every master table
assembled and published in that step; each input is dropped and the
memory released between these parts, outside the timing, so wall, CPU and peak RSS compare with
the run report's. It replaces ``assemble`` and ``publish`` and cannot be combined with
``golden_prev`` (the standardized frame is gone). The standardized records are an Arrow table
with their code-like columns dictionary-encoded, as ``standardize_records`` gives them. ``--profile`` writes cProfile
statistics of the assemble and publish steps to a file.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import os
import resource
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MDM_MASTER_KEY", "bench-master-key-not-a-secret-0001")
os.environ.setdefault("MDM_TOKEN_KEY", "bench-token-key-not-a-secret-00001")

INPUTS = ("std", "pairs", "clusters", "review", "quarantine")


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _PeakSampler:
    """Samples the process RSS every 20 ms: the peak during one step (ru_maxrss only ever grows)."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb())
            time.sleep(0.02)

    def __enter__(self) -> _PeakSampler:
        self.peak = _rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def _config(data: Path, out: Path) -> Any:
    from schemas.settings import load_run_config

    run_yaml = out / "run.yaml"
    if not run_yaml.exists():
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "benchmarks/out/run-600k/sources.yaml", out / "sources.yaml")
        run_yaml.write_text(
            "keep_versions: 3\nname: bench-golden-publish\npaths:\n"
            f"  mart: {out / 'mart'}\n  master: {out / 'master'}\n  runs: {out / 'runs'}\n"
            f"  sample: {data}\n  state: {out / 'state'}\nsources: {out / 'sources.yaml'}\n",
            "utf-8",
        )
    return load_run_config(str(run_yaml))


def build_inputs(config: Any, cache: Path) -> None:
    """Extract + standardize + match once and cache what the back half needs."""
    from pipelines import steps
    from pipelines.extract import extract_source

    t0 = time.perf_counter()
    canon, quar = [], []
    for src in config.sources.sources:
        result = extract_source(src, config.sources_base, "bench")
        canon.append(result.canonical)
        if result.quarantine is not None:
            quar.append(result.quarantine)
    canonical = pa.concat_tables(canon, promote_options="default")
    quarantine = pa.concat_tables(quar, promote_options="default")
    print(f"extract: {canonical.num_rows:,} rows in {time.perf_counter() - t0:.1f} s", flush=True)
    std = steps.standardize_records(canonical, config)
    print(f"standardize done at {time.perf_counter() - t0:.1f} s", flush=True)
    matched = steps.match_records(std, config, steps.load_constraints(config.state_dir))
    print(f"match done at {time.perf_counter() - t0:.1f} s", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    pairs = matched.pairs if isinstance(matched.pairs, pa.Table) else pa.Table.from_pandas(matched.pairs)
    pq.write_table(std, cache / "std.parquet")
    pq.write_table(pairs, cache / "pairs.parquet")
    pq.write_table(pa.Table.from_pandas(matched.clusters, preserve_index=False), cache / "clusters.parquet")
    pq.write_table(pa.Table.from_pandas(matched.review, preserve_index=False), cache / "review.parquet")
    pq.write_table(quarantine, cache / "quarantine.parquet")


def load_inputs(cache: Path) -> dict[str, Any]:
    from pipelines.steps import dictionary_codes

    # the standardized records as the flow holds them: Arrow, code-like columns dictionary-encoded
    std = dictionary_codes(pq.read_table(cache / "std.parquet"))
    return {
        "std": std,
        "pairs": pq.read_table(cache / "pairs.parquet"),
        "clusters": pq.read_table(cache / "clusters.parquet").to_pandas(),
        "review": pq.read_table(cache / "review.parquet").to_pandas(),
        "quarantine": pq.read_table(cache / "quarantine.parquet"),
    }


def _timed(
    name: str, fn: Callable[[], Any], rows: list[dict[str, Any]], profiler: cProfile.Profile | None = None
) -> Any:
    gc.collect()
    base = _rss_mb()
    cpu0, t0 = time.process_time(), time.perf_counter()
    with _PeakSampler() as peak:
        if profiler is not None:
            profiler.enable()
        try:
            result = fn()
        finally:
            if profiler is not None:
                profiler.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    rows.append(
        {"step": name, "wall s": wall, "cpu s": cpu, "peak RSS MB": peak.peak, "RSS growth MB": peak.peak - base}
    )
    print(f"  {name}: {wall:.2f} s wall, {cpu:.2f} s CPU, peak RSS {peak.peak:,.0f} MB", flush=True)
    return result


NIGHTLY_PUBLISH = "publish (as the nightly run)"


def nightly_publish(
    held: dict[str, Any],
    run_log: pd.DataFrame,
    config: Any,
    run_id: str,
    key: Any,
    rows: list[dict[str, Any]],
    profiler: cProfile.Profile | None,
) -> tuple[Any, Any]:
    """The nightly run's step "publish" with every table written in it (no table staged beforehand).

    Three timed parts (the source records and record keys; assembling; publishing), with each
    input dropped and the memory released between them, outside the timing, as the run does.
    ``held`` (std, matched, golden, quarantine) is emptied. Returns the version and its tables.
    """
    from mdm.memory import release_memory
    from pipelines import steps
    from pipelines.publish import publish_master

    made: dict[str, Any] = {}

    def records() -> None:
        std = held["std"]
        made["source_records"] = steps.source_records_table(std)
        made["keys"] = steps.standardized_frame(std, steps.RECORD_KEY_COLUMNS)

    def assemble() -> Any:
        return steps.assemble_master_tables(
            made["keys"], held["matched"], held["golden"], held["quarantine"], run_log, made["source_records"]
        )

    _timed(NIGHTLY_PUBLISH, records, rows, profiler)
    del held["std"]
    release_memory()
    tables = _timed(NIGHTLY_PUBLISH, assemble, rows, profiler)
    held.clear()
    made.clear()
    release_memory()
    kept = _mart_inputs(tables)  # publish consumes the tables; the run hands these two to the mart
    version = _timed(
        NIGHTLY_PUBLISH,
        lambda: publish_master(config.master_dir, run_id, tables, config.model.keep_versions, key),
        rows,
        profiler,
    )
    return version, kept


def _mart_inputs(tables: dict[str, Any]) -> dict[str, Any]:
    """The tables the nightly run keeps through publish for the mart and the review sync (the others are
    freed as they are written, and the mart reads them back from the version)."""
    return {name: tables[name] for name in ("review_queue", "customer_xref") if name in tables}


def _merge_parts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of a step timed in several parts as one (times add up, the peak is the highest), as RunMetrics does."""
    merged: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["step"] not in merged:
            merged[r["step"]] = dict(r)
            continue
        m = merged[r["step"]]
        base = m["peak RSS MB"] - m["RSS growth MB"]
        m["wall s"] += r["wall s"]
        m["cpu s"] += r["cpu s"]
        m["peak RSS MB"] = max(m["peak RSS MB"], r["peak RSS MB"])
        m["RSS growth MB"] = m["peak RSS MB"] - base
    return list(merged.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks/out/data-600k")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/golden-publish")
    parser.add_argument("--steps", default="golden,assemble,publish,mart,golden_prev")
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--profile", type=Path, help="write cProfile statistics of assemble and publish here")
    args = parser.parse_args()
    wanted = set(args.steps.split(","))
    if {"nightly_publish", "golden_prev"} <= wanted:
        parser.error("nightly_publish drops the standardized records; run golden_prev separately")
    profiler = cProfile.Profile() if args.profile else None

    from pipelines import steps
    from pipelines.publish import load_previous

    config = _config(args.data.resolve(), args.out.resolve())
    cache = args.out / "inputs"
    if not all((cache / f"{n}.parquet").exists() for n in INPUTS):
        build_inputs(config, cache)
    if args.prepare_only:
        return
    data = load_inputs(cache)
    std, clusters = data["std"], data["clusters"]
    matched = SimpleNamespace(pairs=data["pairs"], clusters=clusters, review=data["review"])
    key = config.master_key()
    # a new version name per call: publish refuses to overwrite a published version
    run_id, day = dt.datetime.now().strftime("R%Y%m%d-%H%M%S-bench"), dt.date(2026, 11, 23)
    rows: list[dict[str, Any]] = []
    print(f"inputs: {len(std):,} records, {data['pairs'].num_rows:,} pairs, RSS {_rss_mb():,.0f} MB", flush=True)

    golden = _timed(
        "golden IDs + survivorship", lambda: steps.build_golden(std, clusters, None, run_id, day, config), rows
    )
    run_log = pd.DataFrame([{
        "run_id": run_id, "business_date": day, "started_at": dt.datetime(2026, 11, 23, 23),
        "finished_at": dt.datetime(2026, 11, 23, 23, 5), "status": "published", "sources": "deposit,card,loan",
        "rows_in": len(std), "rows_quarantined": data["quarantine"].num_rows, "golden_customers": len(golden.golden),
    }])
    n_records, n_golden = len(std), len(golden.golden)
    version = None
    if "nightly_publish" in wanted:
        held = {"std": std, "matched": matched, "golden": golden, "quarantine": data.pop("quarantine")}
        del std, golden, matched, clusters, data["std"], data["pairs"], data["review"], data["clusters"]
        version, tables = nightly_publish(held, run_log, config, run_id, key, rows, profiler)
        merged = _merge_parts([r for r in rows if r["step"] == NIGHTLY_PUBLISH])[0]
        print(
            f"  {NIGHTLY_PUBLISH}, in all: {merged['wall s']:.2f} s wall, {merged['cpu s']:.2f} s CPU, "
            f"peak RSS {merged['peak RSS MB']:,.0f} MB",
            flush=True,
        )
    else:
        tables = _timed(
            "assemble master tables",
            lambda: steps.assemble_master_tables(std, matched, golden, data["quarantine"], run_log),
            rows,
            profiler,
        )
    if wanted & {"publish", "mart", "golden_prev"} and version is None:
        from pipelines.publish import publish_master

        tables, consumed = _mart_inputs(tables), tables
        version = _timed(
            "publish",
            lambda: publish_master(config.master_dir, run_id, consumed, config.model.keep_versions, key),
            rows,
            profiler,
        )
    if profiler is not None:
        profiler.dump_stats(args.profile)
    if version is not None and "mart" in wanted:
        # as the run does: the queue and the xref still in memory, the other tables read back in chunks
        _timed("analyst mart", lambda: steps.build_analyst_mart(config, Path(version), key, dict(tables)), rows)
    if version is not None and "golden_prev" in wanted:
        previous = _timed("load previous master", lambda: load_previous(config.master_dir, key), rows)
        _timed(
            "golden IDs + survivorship (with previous)",
            lambda: steps.build_golden(std, clusters, previous, run_id + "2", day + dt.timedelta(days=1), config),
            rows,
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{n_records:,} records, {n_golden:,} golden customers; process peak RSS {peak:,.0f} MB\n")
    print("| step | wall s | CPU s | peak RSS MB | RSS growth MB |\n|---|---:|---:|---:|---:|")
    for r in _merge_parts(rows):
        print(
            f"| {r['step']} | {r['wall s']:.2f} | {r['cpu s']:.2f} | {r['peak RSS MB']:,.0f} "
            f"| {r['RSS growth MB']:,.0f} |"
        )


if __name__ == "__main__":
    main()
