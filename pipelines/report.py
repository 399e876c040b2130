"""The run report: a file in the run folder and a Prefect artifact (markdown and tables)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    run_id: str
    business_date: str
    status: str = "Running"
    failure: str | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    quality: list[dict[str, Any]] = field(default_factory=list)
    data_docs: str | None = None
    matching: dict[str, Any] = field(default_factory=dict)
    golden: dict[str, Any] = field(default_factory=dict)
    review_queue_size: int | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    master_version: str | None = None
    mart_version: str | None = None
    review_sync: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False, indent=2, sort_keys=True, default=str)

    def markdown(self) -> str:
        lines = [f"# Nightly customer master run `{self.run_id}`", ""]
        lines += [f"* business date: **{self.business_date}**", f"* status: **{self.status}**"]
        if self.failure:
            lines.append(f"* reason: {self.failure}")
        if self.master_version:
            lines.append(f"* published master version: `{self.master_version}`")
        if self.data_docs:
            lines.append(f"* data docs: [{self.data_docs}]({Path(self.data_docs).as_uri()})")
        lines.append("")
        if self.sources:
            lines += ["## Rows per source", "", _table(self.sources), ""]
        if self.quality:
            lines += ["## Data-quality gates", "", _table(self.quality), ""]
        if self.matching:
            lines += ["## Matching", ""]
            labels = {
                "pairs_compared": "pairs compared",
                "by_decision": "links by decision",
                "links_by_rule": "candidate pairs by blocking rule",
                "by_score_band": "pairs by match-weight band",
                "review_items": "review items",
                "clusters": "clusters",
                "largest_cluster": "largest cluster",
                "links_cut_by_repair": "links cut by cluster repair",
            }
            for key, label in labels.items():
                if key in self.matching:
                    lines.append(f"* {label}: {_fmt(self.matching[key])}")
            lines.append("")
        if self.golden:
            lines += ["## Golden IDs", ""]
            lines += [f"* {k.replace('_', ' ')}: {_fmt(v)}" for k, v in self.golden.items()]
            lines.append("")
        if self.review_queue_size is not None:
            lines += [f"Review queue: **{self.review_queue_size:,}** items from this run"
                      + (f" ({_fmt(self.review_sync)} in the stewards' queue)" if self.review_sync else ""), ""]
        if self.mart_version:
            lines += [f"Analyst mart: `{self.mart_version}`", ""]
        if self.steps:
            lines += ["## Time and peak memory per step", "", _table(self.steps), ""]
        return "\n".join(lines)

    def write(self, report_dir: Path) -> Path:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "report.json").write_text(self.to_json(), encoding="utf-8")
        path = report_dir / "report.md"
        path.write_text(self.markdown(), encoding="utf-8")
        return path

    def publish_artifact(self) -> str | None:
        """Attach the report to the current Prefect flow run; returns the markdown artifact's id."""
        from prefect.artifacts import create_markdown_artifact, create_table_artifact
        from prefect.context import FlowRunContext

        if FlowRunContext.get() is None:
            return None
        artifact_id = create_markdown_artifact(
            key="nightly-run-report", markdown=self.markdown(), description=f"Run {self.run_id} ({self.status})"
        )
        if self.sources:
            create_table_artifact(key="nightly-rows-per-source", table=self.sources, description="rows per source")
        if self.steps:
            create_table_artifact(key="nightly-step-metrics", table=self.steps, description="time and memory per step")
        return str(artifact_id)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:,.3f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(rows: list[dict[str, Any]]) -> str:
    cols: list[str] = []
    for row in rows:
        cols += [c for c in row if c not in cols]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        cells = [_fmt(row.get(c, "")).replace("|", "\\|").replace("\n", " ") for c in cols]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)
