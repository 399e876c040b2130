"""Load test of the steward web app (a script, not a test): concurrent stewards against a published master.

    python benchmarks/load_steward.py --config benchmarks/out/run-600k/run.yaml --stewards 20 --rounds 25

Starts `mdm serve` on a free loopback port, signs in N stewards (accounts made for the run),
and has each one work through rounds of: queue page, next review item (pair page), search by
name, golden customer page. Every request is bounded (count and time) and goes to 127.0.0.1
only. Prints p50 / p95 / p99 latency per page as a markdown table and writes JSON next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

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
                    raise RuntimeError(f"{path} answered {r.status_code}")
                with lock:
                    timings[label].append(elapsed)
                if label == "search":
                    m = re.search(r'href="/customer/([^"]+)"', r.text)
                    golden = m.group(1) if m else None
            if golden:
                t0 = time.perf_counter()
                r = client.get(f"/customer/{golden}")
                with lock:
                    timings["customer"].append(time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--stewards", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=25)
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
    server = subprocess.Popen([sys.executable, "-m", "mdm.cli", "serve", "--config", str(args.config),
                               "--port", str(port)], env=os.environ.copy(), cwd=REPO,
                              stdout=server_log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        timings: dict[str, list[float]] = {"queue": [], "pair": [], "search": [], "customer": []}
        lock = threading.Lock()
        t0 = time.perf_counter()
        threads = [threading.Thread(target=steward_session, args=(base, f"load{i}", password, args.rounds, names,
                                                                    timings, lock)) for i in range(args.stewards)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)
    rows = []
    for page, values in timings.items():
        if values:
            rows.append({"page": page, "requests": len(values), "p50_ms": round(statistics.median(values) * 1000, 1),
                         "p95_ms": round(_percentile(values, 0.95) * 1000, 1),
                         "p99_ms": round(_percentile(values, 0.99) * 1000, 1)})
    result = {"stewards": args.stewards, "rounds": args.rounds, "wall_s": round(wall, 1), "pages": rows}
    out = REPO / "benchmarks" / "out" / "results" / "steward-load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print("| page | requests | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['page']} | {r['requests']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} |")


if __name__ == "__main__":
    main()
