"""Speed and memory of the standardize step, per field function and in total.

Usage: python benchmarks/bench_standardize.py [--data benchmarks/out/data-600k] [--only total,phones]
       [--profile phones] [--repeat 1] [--workers 2]

The canonical table is extracted once from the generated extracts in ``--data`` (every
source of data/config/sources.yaml, read with ``pipelines.extract.extract_source``) and
cached as Parquet under benchmarks/out/; later runs read the cache. Each field function
of ``validators.standardize.standardize`` is then timed on the whole table: wall time,
CPU time (user + system of this process, and of the second process the total step starts)
and peak RSS of this process while it ran (sampled every 5 ms). The total step also reports
when the main process reached ``Offloaded.result`` (its own fields done), how long it spent
there (the address chunks it took over, then waiting for the second process) and how long of
that it only waited, and the second process's peak RSS.
``--profile NAME`` runs one step under cProfile instead and prints the top functions (cProfile
sees only this process: ``--profile total --workers 1`` keeps addresses and e-mails in it).
Prints a markdown table. Run from the repository root.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import logging
import os
import pstats
import re
import resource
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parent.parent
PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * PAGE


class PeakRss:
    """Peak resident set size while the block runs (a sampling thread; /proc/self/statm)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self.peak = _rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def load_canonical(data_dir: Path, cache: Path) -> pa.Table:
    """The canonical table of every configured source in ``data_dir`` (cached as Parquet)."""
    if cache.exists():
        return pq.read_table(cache)
    from pipelines.extract import extract_source
    from schemas.sources import SourcesFile

    sources = SourcesFile.model_validate(yaml.safe_load((ROOT / "data/config/sources.yaml").read_text("utf-8")))
    started = time.perf_counter()
    tables = [extract_source(src, data_dir, "BENCH").canonical for src in sources.sources]
    table = pa.concat_tables(tables, promote_options="default")
    cache.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, cache)
    print(f"extracted {table.num_rows:,} canonical rows in {time.perf_counter() - started:.1f} s -> {cache}")
    return table


def steps(df: pd.DataFrame, table: pa.Table, workers: int = 2) -> dict[str, Callable[[], Any]]:
    from validators.addresses import standardize_addresses
    from validators.dates import parse_timestamps
    from validators.emails import standardize_emails
    from validators.gender import standardize_gender
    from validators.id_documents import standardize_ids
    from validators.names import standardize_names
    from validators.phones import standardize_phones
    from validators.standardize import StandardizeRules, _parse_birth_dates, standardize

    sources = yaml.safe_load((ROOT / "data/config/sources.yaml").read_text("utf-8"))["sources"]
    rules = StandardizeRules(date_formats={s["system"]: s.get("date_formats", []) for s in sources}, workers=workers)
    gender_in = df["gender_declared"].where(df["gender_declared"].notna(), df["gender_raw"])
    return {
        "ids": lambda: standardize_ids(df["id_type_declared"], df["id_number_raw"]),
        "names": lambda: standardize_names(df["name"], df.get("name_latin")),
        "phones": lambda: standardize_phones(df["mobile_raw"], df["phone_raw"]),
        "emails": lambda: standardize_emails(df["email_raw"]),
        "addresses": lambda: standardize_addresses(df["address_raw"]),
        "birth_dates": lambda: _parse_birth_dates(df, rules),
        "updated_at": lambda: parse_timestamps(
            df["updated_at_raw"], ["%Y-%m-%d %H:%M:%S", "%Y%m%d", "%Y-%m-%d"]
        ),
        "gender": lambda: standardize_gender(gender_in),
        "total": lambda: standardize(table, rules),
    }


def _children_cpu() -> float:
    """CPU seconds of the finished child processes (the second process of the total step)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class OffloadTimes(logging.Handler):
    """When the main process reaches ``Offloaded.result``, how long it stays, and how long of that it waits."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.reached = self.left = self.waited = float("nan")

    def __enter__(self) -> OffloadTimes:
        from validators import offload

        self._logger, self._level = logging.getLogger(offload.__name__), logging.getLogger(offload.__name__).level
        self._logger.addHandler(self)
        self._logger.setLevel(logging.DEBUG)
        self._result = offload.Offloaded.result
        times = self

        def timed(offloaded: Any, *args: Any) -> Any:
            times.reached = time.perf_counter()
            try:
                return times._result(offloaded, *args)
            finally:
                times.left = time.perf_counter()

        offload.Offloaded.result = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        from validators import offload

        offload.Offloaded.result = self._result  # type: ignore[method-assign]
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)

    def emit(self, record: logging.LogRecord) -> None:
        found = re.match(r"address chunks: .* then ([0-9.]+) s waiting", record.getMessage())
        if found:
            self.waited = float(found.group(1))


def _children_peak_rss() -> float:
    """Peak RSS (GiB) of the largest finished child process (the second process of the total step)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 2**30


def measure(fn: Callable[[], Any]) -> dict[str, float]:
    gc.collect()
    base = _rss()
    c0, w0, k0 = time.process_time(), time.perf_counter(), _children_cpu()
    with PeakRss() as peak, OffloadTimes() as offload:
        result = fn()
    wall, cpu, child = time.perf_counter() - w0, time.process_time() - c0, _children_cpu() - k0
    del result
    return {
        "wall": wall,
        "cpu": cpu,
        "child": child,
        "peak": peak.peak / 2**30,
        "delta": (peak.peak - base) / 2**30,
        "reached": offload.reached - w0,
        "stayed": offload.left - offload.reached,
        "waited": offload.waited,
        "child_peak": _children_peak_rss() if child else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks/out/data-600k")
    parser.add_argument("--cache", type=Path, default=None, help="canonical Parquet (default: out/<data>.canonical)")
    parser.add_argument("--only", default="", help="comma-separated step names (default: all)")
    parser.add_argument("--profile", default="", help="run this one step under cProfile")
    parser.add_argument("--rows", type=int, default=0, help="use only the first N rows")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="processes of the total step (1: all in this one)")
    args = parser.parse_args()
    cache = args.cache or ROOT / "benchmarks/out" / f"{args.data.name}.canonical.parquet"
    table = load_canonical(args.data, cache)
    if args.rows:
        table = table.slice(0, args.rows)
    df = table.to_pandas()
    available = steps(df, table, args.workers)
    if args.profile:
        prof = cProfile.Profile()
        started = time.perf_counter()
        prof.runcall(available[args.profile])
        print(f"{args.profile}: {time.perf_counter() - started:.2f} s wall under cProfile")
        pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        return
    names = [s for s in args.only.split(",") if s] or list(available)
    print(f"{len(df):,} rows, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print()
    print(
        "| step | wall s | CPU s | 2nd process CPU s | peak RSS GiB | RSS growth GiB "
        "| reached result s | in result s | waited s | 2nd process peak RSS GiB | load |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        for _ in range(args.repeat):
            r = measure(available[name])
            keys = ("wall", "cpu", "child", "peak", "delta", "reached", "stayed", "waited", "child_peak")
            cells = ["" if r[k] != r[k] else f"{r[k]:.2f}" for k in keys]  # NaN: not this step
            print(f"| {name} | {' | '.join(cells)} | {os.getloadavg()[0]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
