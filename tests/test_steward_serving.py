"""Serving the steward app from several worker processes: each worker builds the same app from the spec."""

from __future__ import annotations

import json
from dataclasses import asdict

from fastapi.testclient import TestClient

from steward import serving
from steward.app import AppSettings
from steward.users import ThrottlePolicy
from tests.conftest import make_workspace
from tests.steward_fixtures import build_master


def test_worker_count_is_one_per_core_at_most_four(monkeypatch):
    monkeypatch.setattr(serving.os, "cpu_count", lambda: 2)
    assert serving.worker_count(AppSettings()) == 2
    monkeypatch.setattr(serving.os, "cpu_count", lambda: 64)
    assert serving.worker_count(AppSettings()) == serving.MAX_AUTO_WORKERS
    assert serving.worker_count(AppSettings(workers=1)) == 1


def test_a_worker_builds_the_app_from_the_spec(tmp_path, monkeypatch):
    ws = make_workspace(tmp_path / "ws", generate=False)
    build_master(ws.master_dir, ws.state_dir)
    settings = AppSettings(session_ttl_seconds=60, throttle=ThrottlePolicy(max_failures=2), lookup_build="off")
    monkeypatch.setenv(serving._SPEC_ENV, json.dumps({"config": str(ws.config_path), "settings": asdict(settings)}))
    app = serving.worker_app()
    state = app.state.mdm
    assert state.settings == settings and state.config.path == ws.config_path.resolve()
    assert TestClient(app).get("/healthz").text == "ok"


def test_one_worker_serves_in_process(tmp_path, monkeypatch):
    ws = make_workspace(tmp_path / "ws", generate=False)
    build_master(ws.master_dir, ws.state_dir)
    calls: list[tuple[object, dict[str, object]]] = []
    monkeypatch.setenv(serving._SPEC_ENV, "")  # serve() sets it for its workers; restored after the test
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: calls.append((app, kw)))
    from schemas.settings import load_run_config

    serving.serve(load_run_config(ws.config_path), "127.0.0.1", 8123, AppSettings(workers=1, lookup_build="off"))
    serving.serve(load_run_config(ws.config_path), "127.0.0.1", 8123, AppSettings(workers=3, lookup_build="off"))
    (one, kw_one), (many, kw_many) = calls
    assert not isinstance(one, str) and "workers" not in kw_one
    assert many == "steward.serving:worker_app" and kw_many["workers"] == 3 and kw_many["factory"] is True
