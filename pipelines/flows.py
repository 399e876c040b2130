"""The nightly flow: extract → validate → standardize → match → golden IDs → publish → report.

The flow body reads like the run's table of contents; the work is in ``pipelines.steps``
(plain functions) over the pure code in ``validators/`` and ``matchers/``.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from prefect import flow, get_run_logger
from prefect.futures import wait
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from mdm.memory import freeze_long_lived, release_memory, unfreeze
from pipelines import preload, steps, tasks
from pipelines.landing import RunFolder
from pipelines.metrics import RunMetrics
from pipelines.report import RunReport
from schemas.settings import RunConfig, load_run_config

log = logging.getLogger(__name__)

# Whoever imports this module is about to run the flow (the local runner, Prefect's engine loading
# the deployment's entrypoint): the gates' library is imported while Prefect sets the flow run up.
preload.start()


def _run_name() -> str:
    day = flow_run.parameters.get("business_date") or steps.today_in_shanghai()
    scope = flow_run.parameters.get("sources")
    return f"nightly-{day}" + (f"-{'-'.join(scope)}" if scope else "")


@flow(name="nightly-customer-master", flow_run_name=_run_name, validate_parameters=True)
def nightly_customer_master(
    business_date: dt.date | None = None,
    config_path: str | None = None,
    sources: list[str] | None = None,
) -> dict[str, Any]:
    """Build tonight's customer master from the declared extracts and publish it atomically."""
    config = load_run_config(config_path)
    day = business_date or steps.today_in_shanghai()
    from pipelines.publish import master_lock

    with master_lock(config.master_dir):
        run = NightlyRun(config, day, sources)
        return run.execute()


class NightlyRun:
    """One execution of the nightly flow: holds the run folder, metrics and report."""

    def __init__(self, config: RunConfig, business_date: dt.date, only_sources: list[str] | None) -> None:
        self.config = config
        self.business_date = business_date
        self.run_id = steps.new_run_id(business_date)
        self.key = config.master_key()  # fails here, before anything is read, when the key is missing
        self.folder = RunFolder.create(config.runs_dir, self.run_id, business_date, self.key)
        self.metrics = RunMetrics()
        self.report = RunReport(run_id=self.run_id, business_date=business_date.isoformat())
        self.only_sources = only_sources
        self.started = dt.datetime.now(steps.SHANGHAI)

    def execute(self) -> dict[str, Any]:
        logger = get_run_logger()
        logger.info("run %s for business date %s", self.run_id, self.business_date)
        try:
            canonical, quarantine, outcomes = self.extract()
            freeze_long_lived()  # the libraries are imported: later collections skip their objects
            std = self.standardize(canonical, outcomes)
            del canonical  # each step's input is released once the next holds what it needs (peak memory)
            release_memory("standardize")
            with steps.open_version(self.config, self.run_id, self.key) as version:
                with self.metrics.step("publish"):  # source_records is written while matching runs
                    version.stage("source_records", steps.source_records_table(std))
                std = steps.linking_records(std, self.config)  # the raw values go once source_records is written
                previous, constraints = tasks.load_previous(self.config, self.key), tasks.load_constraints(self.config)
                matched = self.match(std, constraints)
                with self.metrics.step("publish"):  # match_links is written while survivorship runs
                    version.stage("match_links", steps.match_links_table(std, matched))
                release_memory("match")
                golden = self.golden(std, matched, previous)
                keys = std.select(list(steps.RECORD_KEY_COLUMNS))
                del std  # only the record keys are needed from here on
                release_memory("golden IDs")
                tables = self.assemble(keys, matched, golden, quarantine, previous, outcomes, version.staged)
                del keys, matched, golden, quarantine, previous
                release_memory("assembling the master tables")
                published, review_inputs = self.publish(version, tables)
            self.serve(published, review_inputs)
            self.report.status = "Completed"
        except Exception as err:
            self.report.status = "Failed"
            self.report.failure = str(err)
            if self.report.master_version:  # a step after publish failed: the new version stands
                logger.error("run %s failed after publishing master version %s: %s", self.run_id,
                             self.report.master_version, err)
            else:
                logger.error("run %s failed: %s; the published master is unchanged", self.run_id, err)
            raise
        finally:
            unfreeze()
            steps.audit(self.config, "run", f"run:{self.run_id}", {
                "business_date": self.business_date.isoformat(), "status": self.report.status,
                "master_version": self.report.master_version})
            self.report.steps = self.metrics.as_rows()
            path = self.report.write(self.folder.report_dir)
            artifact = self.report.publish_artifact()
            logger.info("run report: %s", path)
        return {
            "run_id": self.run_id,
            "report": str(path),
            "master_version": self.report.master_version,
            "artifact_id": artifact,
        }

    # -- the steps -------------------------------------------------------------------------

    def extract(self) -> tuple[pa.Table, pa.Table, dict[str, steps.SourceOutcome]]:
        with self.metrics.step("extract + source gates") as m:
            selected = steps.selected_sources(self.config, self.only_sources)
            tonight = self._extract_tonight([src for src, read_tonight in selected if read_tonight])
            results: dict[str, Any] = {}
            outcomes: dict[str, steps.SourceOutcome] = {}
            for src, read_tonight in selected:  # the sources' declared order (the records' order)
                extracted = tonight[src.system] if read_tonight else steps.reuse_last_landing(
                    self.config, src, self.folder)
                results[src.system], outcomes[src.system] = extracted
            canonical = pa.concat_tables([r.canonical for r in results.values()], promote_options="default")
            quarantines = [r.quarantine for r in results.values() if r.quarantine is not None]
            quarantine = self.folder.write_quarantine(quarantines)
            m.rows_in = sum(o.rows_in for o in outcomes.values())
            m.rows_out = canonical.num_rows
        return canonical, quarantine, outcomes

    def _extract_tonight(self, sources: list[Any]) -> dict[str, tuple[Any, steps.SourceOutcome]]:
        """Tonight's extracts of ``sources``, ``resources.extract_threads`` at a time (reading, checks and
        landing release the GIL for most of their time). All of them finish before a failure is raised,
        the first in the sources' order, so no extract is still landing files when the run stops."""
        runner: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(self.config.model.resources.extract_threads)
        with runner:
            futures = {
                src.system: runner.submit(
                    tasks.extract_source, {"config": self.config, "src": src, "folder": self.folder}
                )
                for src in sources
            }
            wait(list(futures.values()))
        return {system: future.result() for system, future in futures.items()}

    def standardize(self, canonical: pa.Table, outcomes: dict[str, steps.SourceOutcome]) -> pa.Table:
        with self.metrics.step("standardize") as m:
            std: pa.Table = tasks.standardize(canonical, self.config)
            m.rows_in, m.rows_out = canonical.num_rows, std.num_rows
        counts = steps.rows_per_system(std)
        for system, outcome in outcomes.items():
            outcome.rows_standardized = int(counts.get(system, 0))
        steps.check_counts(outcomes)
        self.report.sources = [
            {
                "source": o.system,
                "rows in": o.rows_in,
                "standardized": o.rows_standardized,
                "quarantined": o.rows_quarantined,
                "carried forward from": o.carried_forward_from or "",
            }
            for o in outcomes.values()
        ]
        with self.metrics.step("standardized gates"):
            gates = tasks.validate_standardized(std, self.config, self.folder)
        self.report.quality = [
            {"source": k, "passed": v.passed, "failures": "; ".join(v.failures)} for k, v in gates.items()
        ]
        self.report.data_docs = str(self.folder.quality_dir / "index.html")
        return std

    def match(self, std: pa.Table, constraints: Any) -> Any:
        with self.metrics.step("match + cluster") as m:
            matched: Any = tasks.match(std, self.config, constraints, self.folder.root)
            m.rows_in, m.rows_out = std.num_rows, int(matched.clusters["cluster"].nunique())
        self.report.matching = {k: v for k, v in matched.stats.items() if not k.startswith("time")}
        self.report.review_queue_size = len(matched.review)
        return matched

    def golden(self, std: pa.Table, matched: Any, previous: Any) -> steps.GoldenOutcome:
        with self.metrics.step("golden IDs + survivorship") as m:
            golden = tasks.golden(std, matched.clusters, previous, self.run_id, self.business_date, self.config)
            m.rows_in, m.rows_out = std.num_rows, len(golden.golden)
        counts = golden.events["event_type"].value_counts() if len(golden.events) else pd.Series(dtype=int)
        self.report.golden = {"golden customers": len(golden.golden)} | {
            f"events {k}": int(v) for k, v in counts.items()
        }
        return golden

    def assemble(
        self,
        keys: pa.Table,
        matched: Any,
        golden: steps.GoldenOutcome,
        quarantine: pa.Table,
        previous: Any,
        outcomes: dict[str, steps.SourceOutcome],
        staged: frozenset[str],
    ) -> dict[str, pa.Table]:
        """The version's tables not yet staged, conformed to the master schemas (Arrow), ready to publish."""
        with self.metrics.step("publish"):
            run_log = self._run_log(previous, outcomes, len(golden.golden))
            return steps.assemble_master_tables(keys, matched, golden, quarantine, run_log, staged=staged)

    def publish(self, version: Any, tables: dict[str, pa.Table]) -> tuple[str, dict[str, pa.Table]]:
        """Publish the version; its path, and the tables the steps after publish take from memory."""
        rows = {name: tables[name].num_rows for name in ("golden_customer", "customer_xref")}
        review_inputs = {name: tables[name] for name in ("review_queue", "customer_xref")}
        with self.metrics.step("publish"):  # takes the tables over: each is freed once written
            published = tasks.publish(version, tables)
        del tables
        release_memory("publish")
        self.report.master_version = published
        steps.audit(self.config, "publish", f"master:{self.run_id}", {
            "golden_customers": rows["golden_customer"], "source_records": rows["customer_xref"]})
        return published, review_inputs

    def serve(self, version: str, review_inputs: dict[str, pa.Table]) -> None:
        """What the published version feeds: the analysts' mart, the stewards' queue and look-up store."""
        with self.metrics.step("analyst mart"):  # reads the other tables back from the version, in chunks
            self.report.mart_version = tasks.analyst_mart(self.config, version, self.key, dict(review_inputs))
        release_memory("the analyst mart")
        with self.metrics.step("review queue"):
            self.report.review_sync = tasks.review_queue(self.config, review_inputs, self.run_id)
        del review_inputs  # the xref and the queue are not held through the stewards' lookup build
        with self.metrics.step("steward lookup"):
            tasks.steward_lookup(version, self.key)

    def _run_log(self, previous: Any, outcomes: dict[str, steps.SourceOutcome], n_golden: int) -> pd.DataFrame:
        row = pd.DataFrame(
            [
                {
                    "run_id": self.run_id,
                    "business_date": self.business_date,
                    "started_at": self.started.replace(tzinfo=None),
                    "finished_at": dt.datetime.now(steps.SHANGHAI).replace(tzinfo=None),
                    "status": "published",
                    "sources": ",".join(outcomes),
                    "rows_in": sum(o.rows_in for o in outcomes.values()),
                    "rows_quarantined": sum(o.rows_quarantined for o in outcomes.values()),
                    "golden_customers": n_golden,
                }
            ]
        )
        prev = getattr(previous, "run_log", None)
        if prev is not None and len(prev):
            row = pd.concat([prev, row], ignore_index=True)
        row["business_date"] = pd.to_datetime(row["business_date"]).dt.date
        return row


def run_flow(config_path: Path | None, business_date: dt.date | None, sources: list[str] | None) -> dict[str, Any]:
    """Call the flow in-process (Prefect runs it against a temporary local API when no server is configured)."""
    return nightly_customer_master(
        business_date=business_date, config_path=str(config_path) if config_path else None, sources=sources
    )
