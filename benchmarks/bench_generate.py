"""Time ``generate`` (wall clock, peak RSS) and print one markdown table row.

Usage: python benchmarks/bench_generate.py [--persons 600000] [--seed 20261123] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import psutil

from pipelines.generator import generate


def _watch_rss(stop: threading.Event, peak: list[int]) -> None:
    proc = psutil.Process()
    while not stop.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        stop.wait(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=600_000)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a temporary folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_generate_") as tmp:
        out = args.out or Path(tmp)
        peak = [psutil.Process().memory_info().rss]
        stop = threading.Event()
        watcher = threading.Thread(target=_watch_rss, args=(stop, peak), daemon=True)
        watcher.start()
        start, cpu_start = time.perf_counter(), time.process_time()
        summary = generate(args.persons, out, args.seed)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        stop.set()
        watcher.join()
        size = sum(p.stat().st_size for p in summary.files.values())
        print("| persons | records | deposit | card | loan | wall s | CPU s | records/s | peak RSS MiB | output MiB |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        r = summary.records_per_source
        rate = summary.total_records / wall
        print(f"| {args.persons:,} | {summary.total_records:,} | {r['deposit']:,} | {r['card']:,} | {r['loan']:,} "
              f"| {wall:.1f} | {cpu:.1f} | {rate:,.0f} | {peak[0] / 2**20:,.0f} | {size / 2**20:,.1f} |")


if __name__ == "__main__":
    main()
