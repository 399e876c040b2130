"""benchmarks/report.py: the generated tables of docs/BENCHMARKS.md come from the result files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.report import BLOCKS, febrl_block, fit_exponent, rewrite, through_publish

STEPS = [
    "extract + source gates",
    "standardize",
    "standardized gates",
    "match + cluster",
    "golden IDs + survivorship",
    "publish",
    "analyst mart",
    "review queue",
]


def _nightly(persons: int, records: int, scale: float) -> dict[str, object]:
    steps = [
        {
            "step": s,
            "wall_s": scale * (i + 1),
            "cpu_s": scale,
            "peak_rss_mb": 100.0 * (i + 1),
            "rows_in": records,
            "rows_out": records,
        }
        for i, s in enumerate(STEPS)
    ]
    summary = {"pairwise_precision": 1.0, "pairwise_recall": 0.99, "pairwise_f1": 0.995, "bcubed_f1": 0.998}
    cases = [{"tag": "twin", "kind": "case", "purity": 1.0, "completeness": 0.99}]
    return {
        "persons": persons,
        "records": records,
        "wall_s": scale * 40,
        "cpu_s": scale * 30,
        "peak_rss_mb": 2048.0,
        "steps": steps,
        "matching": {"pairs_compared": records * 2},
        "accuracy": {"summary": summary, "hard_cases": cases},
        "machine": {"cores": 2, "memory_gb": 23.5, "date": "2026-11-24", "python": "3.11.7"},
    }


def _febrl(system: str, wall: float, link_f1: float, sha: str = "abc") -> dict[str, object]:
    def figures(records: int, pairs: int) -> dict[str, object]:
        return {
            "records": records,
            "compared_pairs": pairs,
            "link_precision": 1.0,
            "link_recall": 0.99,
            "link_f1": link_f1,
            "cluster_pairwise_f1": 0.9989,
            "bcubed_f1": 0.9993,
            "wall_s": wall,
            "cpu_s": wall / 2,
            "peak_rss_mb": 250.0,
            "f1_by_threshold": {"0.5": {"link_f1": 0.996, "cluster_pairwise_f1": 0.998, "bcubed_f1": 0.999}},
        }

    return {
        "system": system,
        "settings": {"threshold": 0.95},
        "data_sha256": {"dataset3.csv": sha, "dataset4a.csv": "d4a", "dataset4b.csv": "d4b"},
        "machine": {"date": "2026-11-25", "load_before": 0.5},
        "datasets": {"febrl3": figures(5000, 6891), "febrl4": figures(10_000, 186_736)},
    }


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    folder.mkdir()
    for persons, records, scale in ((10_000, 17_000, 1.0), (100_000, 170_000, 10.0)):
        (folder / f"nightly-{persons // 1000}k.json").write_text(json.dumps(_nightly(persons, records, scale)))
    splink = {
        "total": {"wall_s": 900.0, "peak_rss_mb_sampled": 3000.0},
        "accuracy": {"pairwise_f1": 0.93, "bcubed_f1": 0.98},
        "hard_cases": [{"tag": "twin", "kind": "case", "purity": 0.08, "completeness": 0.99}],
    }
    (folder / "splink-100k.json").write_text(json.dumps(splink))
    (folder / "febrl.json").write_text(json.dumps(_febrl("ours", 22.9, 0.9948)))
    (folder / "splink-febrl.json").write_text(json.dumps(_febrl("Splink 5.0.0", 6.3, 0.9913)))
    return folder


def test_exponent_of_a_power_law_is_recovered() -> None:
    assert fit_exponent([(10, 10), (100, 100), (1000, 1000)]) == pytest.approx(1.0)
    assert fit_exponent([(10, 100), (100, 10_000)]) == pytest.approx(2.0)
    assert fit_exponent([(10, 1)]) is None


def test_through_publish_sums_the_steps_up_to_publish_only() -> None:
    wall, peak = through_publish(_nightly(1, 1, 1.0))
    assert wall == sum(range(1, 7)) and peak == 600.0


def test_through_publish_spans_from_extract_to_publish_gaps_included() -> None:
    result = _nightly(1, 1, 1.0)
    clock = 0.0
    for step in result["steps"]:  # type: ignore[attr-defined]
        clock += 0.5  # a gap before every step
        step["started_s"], step["ended_s"] = clock, clock + step["wall_s"]
        clock = step["ended_s"]
    wall, peak = through_publish(result)
    assert wall == sum(range(1, 7)) + 5 * 0.5 and peak == 600.0  # the gaps between the six steps count


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
    assert "| FEBRL3 (dedupe) | ours | 5,000 | 6,891 | 1.0000 / 0.9900 / 0.9948 | 0.9989 | 0.9993 | 22.9 |" in out
    assert "| FEBRL3 (dedupe) | Splink 5.0.0 | 5,000 | 6,891 | 1.0000 / 0.9900 / 0.9913 |" in out


def test_febrl_block_puts_both_systems_per_data_set_and_says_how_to_reproduce() -> None:
    out = febrl_block(_febrl("ours", 30.1, 0.9998), _febrl("Splink 5.0.0", 12.3, 0.9971))
    rows = [line for line in out.splitlines() if line.startswith("| FEBRL")]
    order = [("FEBRL3 (dedupe)", "ours"), ("FEBRL3 (dedupe)", "Splink 5.0.0"), ("FEBRL4 (link)", "ours")]
    assert [tuple(r.strip("| ").split(" | ")[:2]) for r in rows] == [*order, ("FEBRL4 (link)", "Splink 5.0.0")]
    assert "| 10,000 | 186,736 | 1.0000 / 0.9900 / 0.9998 | 0.9989 | 0.9993 | 30.1 | 15.1 | 250 |" in rows[2]
    assert "byte-identical for both systems" in out
    assert "FEBRL4 (link) F1 ≥ 0.999: link 0.9998 met, cluster pairwise 0.9989 not met, B-cubed 0.9993 met" in out
    assert "match probability ≥ 0.95" in out  # Splink's threshold, then its F1 at other thresholds
    assert "| 0.5 | 0.9960 / 0.9980 / 0.9990 | 0.9960 / 0.9980 / 0.9990 |" in out
    assert "python benchmarks/febrl.py --json benchmarks/results/febrl.json" in out
    assert "benchmarks/.venv-splink/bin/python benchmarks/splink_febrl.py" in out
    assert "python benchmarks/run_series.py --febrl-only" in out


def test_febrl_block_says_which_result_is_missing_and_flags_different_data() -> None:
    assert "No results yet" in febrl_block(None, None)
    only_ours = febrl_block(_febrl("ours", 22.9, 0.9948), None)
    assert "| FEBRL4 (link) | ours |" in only_ours and "Splink 5.0.0" not in only_ours
    assert "_No Splink result yet: run `benchmarks/.venv-splink/bin/python benchmarks/splink_febrl.py" in only_ours
    other = febrl_block(_febrl("ours", 22.9, 0.9948), _febrl("Splink 5.0.0", 6.3, 0.9913, sha="other"))
    assert "**not the same files**" in other


def test_vs_splink_block_gives_the_ratio_of_each_run_and_says_when_there_is_none(tmp_path: Path) -> None:
    from benchmarks.report import vs_splink_block

    assert "bench_vs_splink.py" in vs_splink_block({}, None)
    run = {
        "date": "2026-11-24 06:50",
        "load_average_before": 0.4,
        "ours": {
            "records": 1_024_303,
            "standardize": {"wall_s": 12.5},
            "match": {"wall_s": 13.0},
            "wall_s": 25.5,
            "peak_rss_mb": 3072.0,
            "accuracy": {"pairwise_f1": 0.9983, "bcubed_f1": 0.9992},
        },
        "splink": {"wall_s": 102.0, "peak_rss_mb": 3584.0, "accuracy": {"pairwise_f1": 0.93, "bcubed_f1": 0.986}},
        "ratio": 0.25,
    }
    (tmp_path / "vs-splink-600k.json").write_text(json.dumps(run), encoding="utf-8")
    text, done = rewrite("<!-- generated:vs_splink --><!-- /generated:vs_splink -->", tmp_path)
    assert done == ["vs_splink"]
    row = next(line for line in text.splitlines() if line.startswith("| 600,000"))
    assert "**0.250**" in row and "25.5" in row and "102.0" in row and "3.00" in row
    assert "0.9983 vs 0.9300" in row
