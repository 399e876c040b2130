"""The nightly flow end to end under Prefect's test harness, on generated data."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from prefect.testing.utilities import prefect_test_harness

from mdm.errors import MdmError, RunLockedError

DAY = dt.date(2026, 11, 23)


@pytest.fixture(scope="module", autouse=True)
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def _run(ws, day=DAY, sources=None):
    from pipelines.flows import nightly_customer_master

    return nightly_customer_master(business_date=day, config_path=str(ws.config_path), sources=sources)


def _current(ws) -> Path:
    name = (ws.master_dir / "CURRENT").read_text(encoding="utf-8").strip()
    return ws.master_dir / "versions" / name


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_flow_publishes_master_report_and_artifact(workspace):
    out = _run(workspace)
    version = _current(workspace)
    con = duckdb.connect(str(version / "master.duckdb"), read_only=True)
    n_records = con.execute("SELECT count(*) FROM customer_xref").fetchone()[0]
    n_golden = con.execute("SELECT count(*) FROM golden_customer").fetchone()[0]
    n_quarantine = con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    orphans = con.execute(
        "SELECT count(*) FROM customer_xref x LEFT JOIN golden_customer g USING (golden_id) WHERE g.golden_id IS NULL"
    ).fetchone()[0]
    con.close()
    assert 0 < n_golden < n_records
    assert orphans == 0

    report = json.loads((Path(out["report"]).parent / "report.json").read_text(encoding="utf-8"))
    assert report["status"] == "Completed"
    rows_in = sum(s["rows in"] for s in report["sources"])
    assert rows_in == n_records + n_quarantine  # nothing lost
    assert {s["source"] for s in report["sources"]} == {"deposit", "card", "loan"}
    assert [s["step"] for s in report["steps"]][0].startswith("extract")
    assert all(s["peak_rss_mb"] > 0 for s in report["steps"])

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, TaskRunFilter
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["nightly-run-report"])),
            flow_run_filter=FlowRunFilter(), task_run_filter=TaskRunFilter(),
            sort=ArtifactSort.UPDATED_DESC, offset=0, limit=10,
        )
    assert any(out["run_id"] in str(a.data) for a in artifacts), [(a.key, str(a.data)[:200]) for a in artifacts]


def test_missing_extract_fails_the_run_and_keeps_the_master(workspace):
    _run(workspace)
    before_pointer = (workspace.master_dir / "CURRENT").read_text(encoding="utf-8")
    before = _digest(_current(workspace))
    (workspace.sample_dir / "card.csv").unlink()
    with pytest.raises(MdmError, match="card"):
        _run(workspace, day=DAY + dt.timedelta(days=1))
    assert (workspace.master_dir / "CURRENT").read_text(encoding="utf-8") == before_pointer
    assert _digest(_current(workspace)) == before
    reports = sorted(workspace.runs_dir.glob("*/report/report.json"))
    failed = [json.loads(p.read_text(encoding="utf-8")) for p in reports]
    assert any(r["status"] == "Failed" and "card" in r["failure"] for r in failed)


def test_rerun_of_a_business_date_gives_an_identical_master(workspace):
    _run(workspace)
    first = _current(workspace)
    _run(workspace)
    second = _current(workspace)
    assert first != second
    for table, key in (("customer_xref", "record_key"), ("golden_customer", "golden_id")):
        a = pd.read_parquet(first / f"{table}.parquet").sort_values(key).reset_index(drop=True)
        b = pd.read_parquet(second / f"{table}.parquet").sort_values(key).reset_index(drop=True)
        run_cols = [c for c in a.columns if c.endswith(("_run", "_run_id"))]
        pd.testing.assert_frame_equal(a.drop(columns=run_cols), b.drop(columns=run_cols))


def test_a_second_run_on_the_same_master_is_refused(workspace):
    from pipelines.publish import master_lock

    with master_lock(workspace.master_dir), pytest.raises(RunLockedError):
        _run(workspace)
