"""``mdm review ...``: the review queue from the command line, and offline review through CSV."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mdm.commands import ConfigOpt
from mdm.errors import ReviewError

app = typer.Typer(help="Work the review queue: list, show, decide, export and import.", no_args_is_help=True)
console = Console()
StewardOpt = Annotated[str | None, typer.Option("--steward", help="your user name (default: the OS user)")]
EXPORT_COLUMNS = ("item_id", "kind", "match_weight", "record_key_l", "record_key_r")


def _context(config: Path | None) -> tuple[Any, Any]:
    from schemas.settings import load_run_config
    from steward.store import DecisionStore

    cfg = load_run_config(config)
    return cfg, DecisionStore.open(cfg.state_dir)


def _audit(cfg: Any, actor: str, action: str, target: str, details: dict[str, Any]) -> None:
    from mdm.audit import AuditLog

    AuditLog.for_state(cfg.state_dir).append(actor, action, target, details)


@app.command("list")
def list_items(
    config: ConfigOpt = None,
    status: Annotated[str, typer.Option(help="open, decided, resolved or all")] = "open",
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
) -> None:
    """List review items, highest priority first."""
    _, store = _context(config)
    try:
        items = store.items(status=None if status == "all" else status, limit=limit)
        counts = store.counts()
    finally:
        store.close()
    table = Table("item", "kind", "left", "right", "weight", "priority", "claimed by", title="review queue")
    for r in items.to_dict("records"):
        weight = "" if r["match_weight"] is None else f"{r['match_weight']:.2f}"
        table.add_row(r["item_id"], r["kind"], r["record_key_l"], r["record_key_r"], weight,
                      f"{r['priority']:.0f}", r.get("claimed_by") or "")
    console.print(table)
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items()) if ":" not in k) or "queue is empty")


@app.command("show")
def show(item_id: str, config: ConfigOpt = None, steward: StewardOpt = None) -> None:
    """Show one item's evidence: both records side by side and the weight of each comparison."""
    from steward import evidence
    from steward.master import MasterReader

    cfg, store = _context(config)
    actor = steward or getpass.getuser()
    try:
        item = store.item(item_id)
    finally:
        store.close()
    reader = MasterReader(cfg.master_dir, cfg.master_key())
    try:
        with reader.cursor() as con:
            ev = evidence.pair_evidence(con, item["record_key_l"], item["record_key_r"])
    finally:
        reader.close()
    _audit(cfg, actor, "view_unmasked", f"review_item:{item_id}", {"via": "cli"})
    table = Table("field", f"{ev.system_l} {ev.record_key_l}", f"{ev.system_r} {ev.record_key_r}", "same")
    for f in ev.fields:
        same = "" if f.same is None else ("yes" if f.same else "NO")
        table.add_row(f.label, f.std_l, f.std_r, same, style="bold" if f.same is False else None)
    console.print(table)
    weights = Table("comparison", "level", "weight (log2)")
    for c in ev.contributions:
        weights.add_row(c.comparison, "" if c.level is None else str(c.level), f"{c.weight:+.2f}")
    console.print(weights)
    console.print(f"match weight: {ev.match_weight}, model decision: {ev.decision}, golden IDs: "
                  f"{ev.golden_id_l} / {ev.golden_id_r}")


@app.command("decide")
def decide(
    item_id: str,
    verdict: Annotated[str, typer.Argument(help="match, no_match or skip")],
    config: ConfigOpt = None,
    steward: StewardOpt = None,
    reason: Annotated[str | None, typer.Option(help="why (kept in the history)")] = None,
) -> None:
    """Decide one item (claims it first; refused while another steward holds it)."""
    cfg, store = _context(config)
    actor = steward or getpass.getuser()
    try:
        store.claim(item_id, actor)
        decision_id = store.decide(item_id, actor, verdict, reason)
    finally:
        store.close()
    _audit(cfg, actor, "steward_decision", f"review_item:{item_id}", {"verdict": verdict, "via": "cli"})
    console.print(f"decision {decision_id} recorded: {verdict}; the master reflects it at the next run")


@app.command("export")
def export(
    out: Annotated[Path, typer.Argument(help="CSV file to write")],
    config: ConfigOpt = None,
    steward: StewardOpt = None,
    limit: Annotated[int, typer.Option(min=1)] = 1000,
) -> None:
    """Export open items with their evidence as a spreadsheet-safe CSV; fill `decision` and import it."""
    import pandas as pd

    from mdm.csvsafe import write_safe_csv
    from steward import evidence
    from steward.master import MasterReader

    cfg, store = _context(config)
    actor = steward or getpass.getuser()
    try:
        items = store.items(status="open", limit=limit)
    finally:
        store.close()
    rows: list[dict[str, Any]] = []
    reader = MasterReader(cfg.master_dir, cfg.master_key())
    try:
        with reader.cursor() as con:
            for it in items.to_dict("records"):
                ev = evidence.pair_evidence(con, it["record_key_l"], it["record_key_r"])
                row = {c: it[c] for c in EXPORT_COLUMNS}
                for f in ev.fields:
                    row[f"{f.label} (left)"] = f.std_l
                    row[f"{f.label} (right)"] = f.std_r
                row["decision"] = ""
                row["reason"] = ""
                rows.append(row)
    finally:
        reader.close()
    write_safe_csv(pd.DataFrame(rows, columns=[*EXPORT_COLUMNS, "decision", "reason"] if not rows else None), out)
    _audit(cfg, actor, "export", "review_queue", {"items": len(rows), "file": out.name})
    console.print(f"wrote {len(rows)} items to {out}; fill the decision column with match, no_match or skip")


@app.command("import")
def import_(
    sheet: Annotated[Path, typer.Argument(help="CSV written by `mdm review export`, with decisions filled in")],
    config: ConfigOpt = None,
    steward: StewardOpt = None,
) -> None:
    """Apply the decisions of a reviewed sheet, with the same checks as the web app."""
    from mdm.csvsafe import read_safe_csv
    from steward.store import VERDICTS

    if not sheet.exists():
        raise ReviewError(f"{sheet} does not exist")
    rows = read_safe_csv(sheet, required=("item_id", "decision"))
    cfg, store = _context(config)
    actor = steward or getpass.getuser()
    applied, refused = 0, []
    try:
        for n, row in enumerate(rows, start=2):
            verdict = row.get("decision", "").strip().lower()
            if not verdict:
                continue
            if verdict not in VERDICTS:
                refused.append(f"line {n}: unknown decision {verdict!r}")
                continue
            try:
                store.claim(row["item_id"].strip(), actor)
                store.decide(row["item_id"].strip(), actor, verdict, (row.get("reason") or "").strip() or None,
                             origin="import")
                applied += 1
            except ReviewError as e:
                refused.append(f"line {n}: {e}")
    finally:
        store.close()
    _audit(cfg, actor, "steward_decision", "review_queue", {"imported": applied, "refused": len(refused)})
    console.print(f"applied {applied} decision(s) from {sheet}")
    for msg in refused:
        console.print(f"[yellow]refused[/yellow] {msg}")
    if refused:
        raise typer.Exit(1)
