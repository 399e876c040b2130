"""Running the steward web app: one process, or several worker processes sharing one port.

Everything a request needs between requests lives in files every process opens for itself
(sessions, CSRF tokens, sign-in throttling and decisions in SQLite, the audit trail behind
a file lock, the master and its lookup store read-only), so any worker can answer any
request. Several processes use every core: one Python process runs Python code on one
core at a time.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict

from fastapi import FastAPI

from schemas.settings import RunConfig
from steward.app import AppSettings, create_app
from steward.users import ThrottlePolicy

log = logging.getLogger(__name__)

MAX_AUTO_WORKERS = 4
_SPEC_ENV = "MDM_STEWARD_APP_SPEC"  # set by serve() for its worker processes only (no secrets in it)


def worker_count(settings: AppSettings) -> int:
    """``settings.workers``, or one per core (at most :data:`MAX_AUTO_WORKERS`) when it is 0."""
    if settings.workers > 0:
        return settings.workers
    return max(1, min(MAX_AUTO_WORKERS, os.cpu_count() or 1))


def serve(config: RunConfig, host: str, port: int, settings: AppSettings) -> None:
    import uvicorn

    workers = worker_count(settings)
    if workers == 1:
        uvicorn.run(create_app(config, settings), host=host, port=port, log_level="info", access_log=False)
        return
    os.environ[_SPEC_ENV] = json.dumps({"config": str(config.path), "settings": asdict(settings)})
    log.info("serving the steward app on %s:%d with %d worker processes", host, port, workers)
    uvicorn.run("steward.serving:worker_app", factory=True, workers=workers, host=host, port=port,
                log_level="info", access_log=False)


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn calls this in each worker it starts)."""
    from mdm.logs import configure
    from schemas.settings import load_run_config

    configure()
    spec = json.loads(os.environ[_SPEC_ENV])
    values = dict(spec["settings"])
    settings = AppSettings(**{**values, "throttle": ThrottlePolicy(**values["throttle"])})
    return create_app(load_run_config(spec["config"]), settings)
