"""Prefect tasks: thin wrappers over ``pipelines.steps``.

Large tables flow between tasks in memory, so no task hashes its inputs (NO_CACHE);
only I/O steps retry, and only on I/O errors (a missing file is not retried).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from pipelines import steps
from pipelines.landing import RunFolder
from schemas.settings import RunConfig
from schemas.sources import SourceConfig


def _retry_on_io(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only transient I/O failures, never a data or configuration problem."""
    try:
        state.result()
    except OSError:
        return True
    except Exception:
        return False
    return False


IO_RETRIES: dict[str, Any] = {"retries": 2, "retry_delay_seconds": 5, "retry_condition_fn": _retry_on_io}


@task(name="extract", cache_policy=NO_CACHE, **IO_RETRIES)
def extract_source(config: RunConfig, src: SourceConfig, folder: RunFolder) -> tuple[Any, steps.SourceOutcome]:
    return steps.extract_and_gate(config, src, folder)


@task(name="standardize", cache_policy=NO_CACHE)
def standardize(canonical: pa.Table, config: RunConfig) -> pa.Table:
    return steps.standardize_records(canonical, config)


@task(name="validate-standardized", cache_policy=NO_CACHE)
def validate_standardized(std: pa.Table, config: RunConfig, folder: RunFolder) -> dict[str, Any]:
    return steps.standardized_gates(std, config, folder)


@task(name="load-previous-master", cache_policy=NO_CACHE, **IO_RETRIES)
def load_previous(config: RunConfig, key: bytes | None) -> Any:
    from pipelines.publish import load_previous as _load

    return _load(config.master_dir, key)


@task(name="load-steward-constraints", cache_policy=NO_CACHE, **IO_RETRIES)
def load_constraints(config: RunConfig) -> Any:
    return steps.load_constraints(config.state_dir)


@task(name="match", cache_policy=NO_CACHE)
def match(std: pa.Table, config: RunConfig, constraints: Any, run_root: Path) -> Any:
    return steps.match_records(std, config, constraints, run_root)


@task(name="golden-ids-and-survivorship", cache_policy=NO_CACHE)
def golden(
    std: pa.Table, clusters: pd.DataFrame, previous: Any, run_id: str, business_date: dt.date, config: RunConfig
) -> steps.GoldenOutcome:
    return steps.build_golden(std, clusters, previous, run_id, business_date, config)


@task(name="publish", cache_policy=NO_CACHE)
def publish(version: Any, tables: dict[str, Any]) -> str:
    """Publish the pending version (:class:`pipelines.publish.PendingVersion`) with ``tables`` (consumed:
    each is freed once written, so no retry can reuse them; a failure leaves the previous master as it
    was, and the night is rerun)."""
    return str(version.publish(tables))


@task(name="analyst-mart", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5, retry_condition_fn=_retry_on_io)
def analyst_mart(config: RunConfig, version_dir: str, key: bytes | None, tables: dict[str, Any]) -> str:
    return str(steps.build_analyst_mart(config, Path(version_dir), key, tables))


@task(name="review-queue", cache_policy=NO_CACHE, **IO_RETRIES)
def review_queue(config: RunConfig, tables: dict[str, Any], run_id: str) -> dict[str, int]:
    return steps.sync_review_queue(config, tables, run_id)


@task(name="steward-lookup", cache_policy=NO_CACHE)
def steward_lookup(version_dir: str, key: bytes | None) -> str | None:
    return steps.build_steward_lookup(Path(version_dir), key)
