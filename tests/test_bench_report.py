"""benchmarks/report.py: the generated tables of docs/BENCHMARKS.md come from the result files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.report import BLOCKS, fit_exponent, rewrite, through_publish

STEPS = ["extract + source gates", "standardize", "standardized gates", "match + cluster",
         "golden IDs + survivorship", "publish", "analyst mart", "review queue"]


def _nightly(persons: int, records: int, scale: float) -> dict[str, object]:
    steps = [{"step": s, "wall_s": scale * (i + 1), "cpu_s": scale, "peak_rss_mb": 100.0 * (i + 1),
              "rows_in": records, "rows_out": records} for i, s in enumerate(STEPS)]
    summary = {"pairwise_precision": 1.0, "pairwise_recall": 0.99, "pairwise_f1": 0.995, "bcubed_f1": 0.998}
    cases = [{"tag": "twin", "kind": "case", "purity": 1.0, "completeness": 0.99}]
    return {"persons": persons, "records": records, "wall_s": scale * 40, "cpu_s": scale * 30,
            "peak_rss_mb": 2048.0, "steps": steps, "matching": {"pairs_compared": records * 2},
            "accuracy": {"summary": summary, "hard_cases": cases},
            "machine": {"cores": 2, "memory_gb": 23.5, "date": "2026-11-24", "python": "3.11.7"}}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    folder.mkdir()
    for persons, records, scale in ((10_000, 17_000, 1.0), (100_000, 170_000, 10.0)):
        (folder / f"nightly-{persons // 1000}k.json").write_text(json.dumps(_nightly(persons, records, scale)))
    splink = {"total": {"wall_s": 900.0, "peak_rss_mb_sampled": 3000.0},
              "accuracy": {"pairwise_f1": 0.93, "bcubed_f1": 0.98},
              "hard_cases": [{"tag": "twin", "kind": "case", "purity": 0.08, "completeness": 0.99}]}
    (folder / "splink-100k.json").write_text(json.dumps(splink))
    return folder


def test_exponent_of_a_power_law_is_recovered() -> None:
    assert fit_exponent([(10, 10), (100, 100), (1000, 1000)]) == pytest.approx(1.0)
    assert fit_exponent([(10, 100), (100, 10_000)]) == pytest.approx(2.0)
    assert fit_exponent([(10, 1)]) is None


def test_through_publish_sums_the_steps_up_to_publish_only() -> None:
    wall, peak = through_publish(_nightly(1, 1, 1.0))
    assert wall == sum(range(1, 7)) and peak == 600.0


def test_rewrite_replaces_only_marked_blocks(results: Path) -> None:
    doc = "intro stays\n" + "".join(f"<!-- generated:{n} -->\nold {n}\n<!-- /generated:{n} -->\n" for n in BLOCKS)
    out, done = rewrite(doc + "outro stays\n", results)
    assert set(done) == set(BLOCKS)
    assert out.startswith("intro stays\n") and out.endswith("outro stays\n")
    assert "old series" not in out
    assert "| 100,000 | 170,000 |" in out  # the series table, from the result file
    assert "records^1.00" in out  # wall grows 10x for 10x records: linear
    assert "0.9950 vs 0.9300" in out  # side by side with Splink at 100k
    assert "No results yet" in out  # no delta result file: says so and how to get one
