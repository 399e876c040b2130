"""``mdm run``: the nightly flow in-process, on the embedded default when no config is given."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.settings import RunConfig, load_run_config

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_id: str
    report_path: Path
    master_version: str | None
    report: dict[str, Any]

    def summary_text(self) -> str:
        r = self.report
        lines = [f"run {self.run_id} ({r.get('status')}) for business date {r.get('business_date')}"]
        for s in r.get("sources", []):
            lines.append(
                f"  {s['source']:<10} in {s['rows in']:>10,}  standardized {s['standardized']:>10,}"
                f"  quarantined {s['quarantined']:>8,}"
            )
        golden = r.get("golden", {})
        if golden:
            lines.append("  " + ", ".join(f"{k}: {v:,}" for k, v in golden.items()))
        if r.get("review_queue_size") is not None:
            lines.append(f"  review queue: {r['review_queue_size']:,} items")
        lines.append(f"  master:  {self.master_version}")
        lines.append(f"  report:  {self.report_path}")
        if r.get("data_docs"):
            lines.append(f"  data docs: {r['data_docs']}")
        return "\n".join(lines)


def ensure_demo_extracts(config: RunConfig) -> None:
    """Generate the demo extracts when the config asks for them and they are missing."""
    demo = config.model.demo
    if demo is None:
        return
    wanted = [config.sources_base / s.location for s in config.sources.sources if s.location]
    if all(p.exists() for p in wanted):
        return
    from pipelines.generator import generate

    log.info("generating demo extracts for %d persons into %s", demo.persons, config.sample_dir)
    generate(persons=demo.persons, out_dir=config.sample_dir, seed=demo.seed, progress=True)


def _prefect_defaults() -> None:
    """In-process runs use Prefect's temporary local API; give it time to start on a busy machine."""
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def run_locally(
    config_path: Path | None = None, business_date: dt.date | None = None, only_sources: list[str] | None = None
) -> RunResult:
    _prefect_defaults()
    from pipelines.flows import run_flow

    config = load_run_config(config_path)
    ensure_demo_extracts(config)
    out = run_flow(config.path, business_date, only_sources)
    report_path = Path(out["report"])
    report = json.loads((report_path.parent / "report.json").read_text(encoding="utf-8"))
    return RunResult(out["run_id"], report_path, out.get("master_version"), report)
