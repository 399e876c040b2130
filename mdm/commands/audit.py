"""``mdm audit verify`` and ``mdm audit show``: the hash-chained audit trail."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mdm.commands import ConfigOpt

app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True, add_completion=False)
console = Console()



@app.command()
def verify(config: ConfigOpt = None) -> None:
    """Check the whole chain: prints OK with the count, or the first bad entry (exit code 1)."""
    from mdm.audit import AuditLog
    from schemas.settings import load_run_config

    cfg = load_run_config(config)
    result = AuditLog.for_state(cfg.state_dir).verify()
    if result.ok:
        console.print(f"[green]{result.summary()}[/green]")
        return
    console.print(f"[red]{result.summary()}[/red]")
    raise typer.Exit(1)


@app.command()
def show(
    config: ConfigOpt = None,
    last: Annotated[int, typer.Option("--last", "-n", help="number of entries, newest last")] = 20,
) -> None:
    """Show the last entries of the audit log."""
    from mdm.audit import AuditLog
    from schemas.settings import load_run_config

    cfg = load_run_config(config)
    table = Table("seq", "time (UTC)", "actor", "action", "target", "details")
    for e in AuditLog.for_state(cfg.state_dir).tail(last):
        details = json.dumps(e.get("details", {}), ensure_ascii=False, sort_keys=True)
        table.add_row(
            str(e.get("seq")),
            str(e.get("ts", ""))[:19],
            str(e.get("actor")),
            str(e.get("action")),
            str(e.get("target")),
            details,
        )
    console.print(table)
