"""Load test of the steward web app (a script, not a test): concurrent stewards against a published master.

    python benchmarks/load_steward.py --config benchmarks/out/run-600k/run.yaml --stewards 20 --rounds 25

Starts `mdm serve` on a free loopback port, signs in N stewards (accounts made for the run),
and has each one work through rounds of: queue page, next review item (pair page), search by
name, golden customer page. Every request is bounded (count and time) and goes to 127.0.0.1
only. Prints p50 / p95 / p99 latency per page as a markdown table and writes JSON next to it
(with the load average before and after, so a busy machine shows).

The stewards are spread over a few client processes (``--client-processes``): each steward
has a browser of their own, and 20 client threads in one Python process would time their
own wait for that process's interpreter lock as page latency. ``--server-source`` serves
the app from another checkout (e.g. ``git archive HEAD | tar -x -C /tmp/before``) to compare.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def steward_session(base: str, user: str, password: str, rounds: int, names: list[str],
                    timings: dict[str, list[float]], lock: threading.Lock) -> None:
    with httpx.Client(base_url=base, timeout=30, follow_redirects=True) as client:
        page = client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        client.post("/login", data={"username": user, "password": password, "csrf": token})
        for i in range(rounds):
            golden = None
            for label, path in (("queue", "/"), ("pair", "/review/next"),
                                ("search", f"/search?kind=name&q={names[i % len(names)]}")):
                t0 = time.perf_counter()
                r = client.get(path)
                elapsed = time.perf_counter() - t0
                if r.status_code != 200:
                    raise RuntimeError(f"the {label} page answered {r.status_code}")  # the path may hold a name
                with lock:
                    timings[label].append(elapsed)
                if label == "search":
                    m = re.search(r'href="/customer/([^"]+)"', r.text)
                    golden = m.group(1) if m else None
            if golden:
                t0 = time.perf_counter()
                r = client.get(f"/customer/{golden}")
                elapsed = time.perf_counter() - t0
                if r.status_code != 200:
                    raise RuntimeError(f"the customer page answered {r.status_code}")
                with lock:
                    timings["customer"].append(elapsed)


def client_process(base: str, users: list[str], password: str, rounds: int, names: list[str],
                   start_at: float) -> dict[str, Any]:
    """One client process: its stewards as threads, from ``start_at`` (wall clock) on; their timings and CPU."""
    timings: dict[str, list[float]] = {"queue": [], "pair": [], "search": [], "customer": []}
    lock = threading.Lock()
    errors: list[str] = []

    def run(user: str) -> None:
        try:
            steward_session(base, user, password, rounds, names, timings, lock)
        except Exception as e:  # reported by the parent; one failed steward fails the run
            errors.append(f"{user}: {e}")

    time.sleep(max(0.0, start_at - time.time()))
    threads = [threading.Thread(target=run, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = os.times()
    return {"timings": timings, "errors": errors, "cpu_s": cpu.user + cpu.system}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--stewards", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--client-processes", type=int, default=4, help="processes the stewards are spread over")
    parser.add_argument("--server-source", type=Path, default=REPO, help="checkout to serve the app from")
    args = parser.parse_args()

    from mdm.errors import SecurityError
    from schemas.settings import load_run_config
    from steward.master import MasterReader
    from steward.users import UserStore

    keys = REPO / "benchmarks" / "out" / "keys.env"  # the series runner's throw-away keys
    if keys.exists():
        for line in keys.read_text().splitlines():
            name, _, value = line.partition("=")
            os.environ.setdefault(name, value)
    cfg = load_run_config(args.config)
    password = "load-test-password-1"
    store = UserStore.open(cfg.state_dir)
    for i in range(args.stewards):
        try:
            store.add(f"load{i}", password, "steward")
        except SecurityError:
            store.set_password(f"load{i}", password)
    store.close()
    reader = MasterReader(cfg.master_dir, cfg.master_key())
    with reader.cursor() as con:
        names = [r[0] for r in con.execute(
            "SELECT name_norm FROM source_records WHERE name_norm IS NOT NULL USING SAMPLE 200 ROWS").fetchall()]
    reader.close()

    port = _free_port()
    server_log = (REPO / "benchmarks" / "out" / "steward-server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "mdm.cli", "serve", "--config", str(args.config.resolve()),
                               "--port", str(port)], env=os.environ.copy(), cwd=args.server_source.resolve(),
                              stdout=server_log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    load_before = os.getloadavg()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        users = [f"load{i}" for i in range(args.stewards)]
        n = max(1, min(args.client_processes, args.stewards))
        start_at = time.time() + 3.0  # every client process is up before the first steward signs in
        with multiprocessing.get_context("spawn").Pool(n) as pool:
            jobs = [pool.apply_async(client_process, (base, users[k::n], password, args.rounds, names, start_at))
                    for k in range(n)]
            outcomes = [job.get(timeout=3600) for job in jobs]
        wall = time.time() - start_at
    finally:
        server.terminate()
        server.wait(timeout=30)
    load_after = os.getloadavg()
    errors = [e for o in outcomes for e in o["errors"]]
    if errors:
        raise RuntimeError(f"{len(errors)} steward session(s) failed, first: {errors[0]}")
    timings: dict[str, list[float]] = {"queue": [], "pair": [], "search": [], "customer": []}
    for o in outcomes:
        for page, values in o["timings"].items():
            timings[page].extend(values)
    rows = []
    for page, values in timings.items():
        if values:
            rows.append({"page": page, "requests": len(values), "p50_ms": round(statistics.median(values) * 1000, 1),
                         "p95_ms": round(_percentile(values, 0.95) * 1000, 1),
                         "p99_ms": round(_percentile(values, 0.99) * 1000, 1)})
    result = {"stewards": args.stewards, "rounds": args.rounds, "client_processes": n, "wall_s": round(wall, 1),
              "client_cpu_s": round(sum(o["cpu_s"] for o in outcomes), 1), "cores": os.cpu_count(),
              "load_average_before": [round(x, 2) for x in load_before],
              "load_average_after": [round(x, 2) for x in load_after], "pages": rows}
    out = REPO / "benchmarks" / "results" / "steward-load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print("| page | requests | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['page']} | {r['requests']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} |")
    print(f"wall {wall:.1f} s, client CPU {result['client_cpu_s']} s, load average before {load_before[0]:.2f}, "
          f"after {load_after[0]:.2f} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
