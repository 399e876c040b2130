"""Speed of extract + source gates over the generated demo extracts (deposit, card, loan).

Usage:
  python benchmarks/bench_extract.py --data benchmarks/out/data-600k      # existing extracts (1,024,303 records)
  python benchmarks/bench_extract.py [--persons 600000] [--dir /tmp/mdm_bench_extract] [--seed 1]

With ``--data`` the extracts of that folder are read as they are (nothing is generated) and the
gate results go to ``--dir``/quality. Without it the extracts are generated with
pipelines.generator into ``--dir``/sample once (reused when the folder already holds them).

Times extract_source and run_source_gates per source, wall and CPU seconds (CPU is steadier on
a shared machine; it includes every thread of the process). The great-expectations import is
timed apart (the nightly step pays it once, before the first gate). ``--repeat N`` runs the
whole series N times in the same process and reports each run.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import yaml

from pipelines.extract import extract_source
from schemas.sources import SourcesFile
from validators.quality import run_source_gates

ROOT = Path(__file__).resolve().parent.parent


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="folder that already holds the extracts")
    parser.add_argument("--persons", type=int, default=600_000)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "mdm_bench_extract")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    sources = SourcesFile.model_validate(yaml.safe_load((ROOT / "data/config/sources.yaml").read_text("utf-8")))
    data_dir: Path = args.data if args.data is not None else args.dir / "sample"
    if not (data_dir / "loan.parquet").exists():
        if args.data is not None:
            parser.error(f"{data_dir} holds no extracts (loan.parquet is missing)")
        from pipelines.generator import generate

        started = time.perf_counter()
        generate(persons=args.persons, out_dir=data_dir, seed=args.seed)
        print(f"generated {args.persons:,} persons in {time.perf_counter() - started:.1f} s")
    wall0, cpu0 = time.perf_counter(), _cpu()
    import great_expectations  # noqa: F401  (import cost measured apart)

    print(f"great-expectations import: wall {time.perf_counter() - wall0:.2f} s, cpu {_cpu() - cpu0:.2f} s")
    for run in range(1, args.repeat + 1):
        total_rows = 0
        wall_all, cpu_all = time.perf_counter(), _cpu()
        for src in sources.sources:
            t0, c0 = time.perf_counter(), _cpu()
            result = extract_source(src, data_dir, "bench")
            t1, c1 = time.perf_counter(), _cpu()
            gate = run_source_gates(result.canonical, src, sources.quality, None, args.dir / "quality" / src.system)
            t2, c2 = time.perf_counter(), _cpu()
            total_rows += result.rows_in
            size = sum(f.size_bytes for f in result.files) / 1e6
            fast = all(f.fast_path for f in result.files) if src.format.kind == "delimited" else "n/a"
            reasons = result.quarantine.group_by("reason").aggregate([("reason", "count")]).to_pylist()
            print(
                f"{src.system:8} {result.rows_in:>9,} rows {size:7.1f} MB  extract {t1 - t0:5.2f} s "
                f"(cpu {c1 - c0:5.2f})  gates {t2 - t1:5.2f} s (cpu {c2 - c1:5.2f})  fast_path={fast}  "
                f"quarantined={result.rows_quarantined} {reasons}  gates_passed={gate.passed}"
            )
        elapsed, cpu = time.perf_counter() - wall_all, _cpu() - cpu_all
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"run {run}: {total_rows:,} rows in {elapsed:.2f} s wall, {cpu:.2f} s cpu "
            f"({total_rows / elapsed:,.0f} rows/s), peak RSS {peak:,.0f} MB"
        )


if __name__ == "__main__":
    main()
