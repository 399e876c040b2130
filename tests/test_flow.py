"""The nightly flow end to end under Prefect's test harness, on generated data."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from prefect.testing.utilities import prefect_test_harness

from mdm.crypto import connect_duckdb, load_key, read_parquet_any
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
    con = connect_duckdb(version / "master.duckdb", load_key(), read_only=True)
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
    assert report["steps"][0]["step"].startswith("extract")
    assert all(s["peak_rss_mb"] > 0 for s in report["steps"])

    import httpx
    from prefect.settings import PREFECT_API_URL

    artifact = httpx.get(f"{PREFECT_API_URL.value()}/artifacts/{out['artifact_id']}", timeout=30).json()
    assert artifact["key"] == "nightly-run-report"
    assert out["run_id"] in artifact["data"] and "Rows per source" in artifact["data"]


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
        a, b = (
            read_parquet_any(v / f"{table}.parquet", load_key()).to_pandas().sort_values(key).reset_index(drop=True)
            for v in (first, second)
        )
        run_cols = [c for c in a.columns if c.endswith(("_run", "_run_id"))]
        pd.testing.assert_frame_equal(a.drop(columns=run_cols), b.drop(columns=run_cols))


def test_a_second_run_on_the_same_master_is_refused(workspace):
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom pipelines.publish import master_lock\n"
         f"with master_lock({str(workspace.master_dir)!r}):\n    print('held', flush=True)\n    time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match="lock"):
            _run(workspace)
    finally:
        holder.kill()
        holder.wait()


def test_logs_of_a_full_run_hold_no_raw_id_number_or_phone(workspace, caplog):
    import logging
    import re

    import pandas as pd

    caplog.set_level(logging.DEBUG)
    for name in ("mdm", "pipelines", "matchers", "validators", "schemas", "steward", "prefect"):
        logging.getLogger(name).propagate = True
    _run(workspace)
    text = "\n".join(r.getMessage() for r in caplog.records)
    text += "\n" + "\n".join(p.read_text(encoding="utf-8") for p in workspace.runs_dir.glob("*/report/report.*"))
    loan = pd.read_parquet(workspace.sample_dir / "loan.parquet")
    card = pd.read_csv(workspace.sample_dir / "card.csv", dtype=str, encoding="utf-8-sig")
    ids = {v for v in pd.concat([loan["cert_no"], card["id_no"]]).dropna() if len(str(v)) >= 15}
    phones = {re.sub(r"\D", "", v)[-11:] for v in pd.concat([loan["mobile_phone"], card["mobile"]]).dropna()}
    phones = {p for p in phones if len(p) == 11}
    assert ids and phones and len(caplog.records) > 20
    assert not [i for i in ids if i in text], "a raw ID number reached a log line or the report"
    assert not [p for p in phones if p in text], "a raw phone number reached a log line or the report"


def _timed_extracts(monkeypatch, slow: str, seconds: float) -> dict[str, tuple[float, float]]:
    """Record when each source's extract starts and ends; ``slow``'s is held back ``seconds`` first."""
    import threading
    import time

    from pipelines import steps

    spans: dict[str, tuple[float, float]] = {}
    lock = threading.Lock()
    extract = steps.extract_and_gate

    def timed(config, src, folder):
        started = time.monotonic()
        if src.system == slow:
            time.sleep(seconds)
        try:
            return extract(config, src, folder)
        finally:
            with lock:
                spans[src.system] = (started, time.monotonic())

    monkeypatch.setattr(steps, "extract_and_gate", timed)
    return spans


def _set_extract_threads(ws, n: int) -> None:
    import yaml

    config = yaml.safe_load(ws.config_path.read_text(encoding="utf-8"))
    config["resources"] = {**config.get("resources", {}), "extract_threads": n}
    ws.config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")


def test_sources_extracted_at_once_keep_their_declared_order(workspace, monkeypatch):
    """With two extract threads the card extract runs while the deposit one (held back) is still going, and
    the records still come in the sources' declared order: source_records is stored row for row as by a
    run that extracts one source at a time."""
    _set_extract_threads(workspace, 1)
    _run(workspace)
    one_at_a_time = read_parquet_any(_current(workspace) / "source_records.parquet", load_key())

    _set_extract_threads(workspace, 2)
    spans = _timed_extracts(monkeypatch, slow="deposit", seconds=3.0)
    _run(workspace, day=DAY + dt.timedelta(days=1))
    assert spans["card"][0] < spans["deposit"][1]  # card started before deposit was done
    assert spans["card"][1] < spans["deposit"][1]  # and finished first
    at_once = read_parquet_any(_current(workspace) / "source_records.parquet", load_key())
    assert at_once.column("record_key").to_pylist() == one_at_a_time.column("record_key").to_pylist()


def test_a_failed_source_stops_the_run_once_the_other_extracts_have_landed(workspace, monkeypatch):
    """card's extract fails at once while deposit's (held back) is still running: the run waits for deposit
    to land before it stops with card's error, so no extract is left writing into the run folder."""
    _set_extract_threads(workspace, 2)
    (workspace.sample_dir / "card.csv").unlink()
    spans = _timed_extracts(monkeypatch, slow="deposit", seconds=2.0)
    with pytest.raises(MdmError, match="card"):
        _run(workspace)
    assert spans["card"][1] < spans["deposit"][1]
    landed = list(workspace.runs_dir.glob("*/landing/deposit.manifest.json"))
    assert len(landed) == 1  # deposit finished landing before the run stopped
    assert not (workspace.master_dir / "CURRENT").exists()


def test_tables_final_before_publish_are_written_while_the_run_goes_on(workspace, monkeypatch):
    """source_records (once standardized) and match_links (once matched) are written on the version's
    background thread, in that order, and published with the rest."""
    import threading

    from pipelines import version_files

    written: list[tuple[str, str]] = []
    write = version_files.VersionFiles._write_staged

    def spy(self, name, table):
        out = write(self, name, table)
        written.append((name, threading.current_thread().name))
        return out

    monkeypatch.setattr(version_files.VersionFiles, "_write_staged", spy)
    _run(workspace)
    assert [name for name, _ in written] == ["source_records", "match_links"]
    assert all(thread.startswith("publish-early") for _, thread in written)
    version = _current(workspace)
    manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
    con = connect_duckdb(version / "master.duckdb", load_key(), read_only=True)
    try:
        for name, _ in written:
            n = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            assert n == read_parquet_any(version / f"{name}.parquet", load_key()).num_rows > 0
            assert f"{name}.parquet" in json.dumps(manifest)
        xref_rows = con.execute("SELECT count(*) FROM customer_xref").fetchone()[0]
        assert xref_rows == con.execute("SELECT count(*) FROM source_records").fetchone()[0]
    finally:
        con.close()
