"""Speed of extract + source gates over the generated demo extracts (deposit, card, loan).

Usage: python benchmarks/bench_extract.py [--persons 600000] [--dir /tmp/mdm_bench] [--seed 1]
Generates the extracts with pipelines.generator once (reused when the folder already holds
them), then times extract_source and run_source_gates per source.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=600_000)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "mdm_bench_extract")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sources = SourcesFile.model_validate(yaml.safe_load((ROOT / "data/config/sources.yaml").read_text("utf-8")))
    data_dir: Path = args.dir / "sample"
    if not (data_dir / "loan.parquet").exists():
        from pipelines.generator import generate

        started = time.perf_counter()
        generate(persons=args.persons, out_dir=data_dir, seed=args.seed)
        print(f"generated {args.persons:,} persons in {time.perf_counter() - started:.1f} s")
    import great_expectations  # noqa: F401  (import cost measured apart)

    total_rows = 0
    started_all = time.perf_counter()
    for src in sources.sources:
        t0 = time.perf_counter()
        result = extract_source(src, data_dir, "bench")
        t1 = time.perf_counter()
        gate = run_source_gates(result.canonical, src, sources.quality, None, args.dir / "quality" / src.system)
        t2 = time.perf_counter()
        total_rows += result.rows_in
        size = sum(f.size_bytes for f in result.files) / 1e6
        fast = all(f.fast_path for f in result.files) if src.format.kind == "delimited" else "n/a"
        reasons = result.quarantine.group_by("reason").aggregate([("reason", "count")]).to_pylist()
        print(
            f"{src.system:8} {result.rows_in:>9,} rows {size:7.1f} MB  extract {t1 - t0:6.2f} s  "
            f"gates {t2 - t1:5.2f} s  fast_path={fast}  quarantined={result.rows_quarantined} {reasons}  "
            f"gates_passed={gate.passed}"
        )
    elapsed = time.perf_counter() - started_all
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"total {total_rows:,} rows in {elapsed:.1f} s ({total_rows / elapsed:,.0f} rows/s), peak RSS {peak:,.0f} MB")


if __name__ == "__main__":
    main()
