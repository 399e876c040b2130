"""Integration: a real local Prefect server and process worker run the deployment from prefect.yaml."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, make_workspace

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"prefect server exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError("prefect server did not become healthy in time")


def _prefect(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "prefect"), *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_deployment_runs_on_a_process_worker(tmp_path):
    ws = make_workspace(tmp_path / "ws", persons=200, seed=3)
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "MDM_HOME": str(REPO),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    server_env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=server_env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        _wait_healthy(api, server)
        pool = _prefect(["work-pool", "create", "mdm-process", "--type", "process"], env)
        assert pool.returncode == 0, pool.stdout + pool.stderr
        deploy = _prefect(["--no-prompt", "deploy", "--name", "nightly"], env)
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "mdm-process"], env=env,
                                  cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run = _prefect(
            ["deployment", "run", "nightly-customer-master/nightly", "--watch", "--watch-timeout", "600",
             "-p", f"config_path={ws.config_path}", "-p", "business_date=2026-11-23"],
            env,
            timeout=700,
        )
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
        assert "Completed" in run.stdout
        current = (ws.master_dir / "CURRENT").read_text(encoding="utf-8").strip()
        assert (ws.master_dir / "versions" / current / "master.duckdb").exists()
    finally:
        for proc in (worker, server):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(tmp_path / "prefect-home", ignore_errors=True)
