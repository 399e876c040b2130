"""Master-level commands (``mdm rollback``, ``mdm versions``); ``mdm.cli`` lifts them to the top level."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mdm.commands import ConfigOpt

app = typer.Typer(help="Published master versions.", no_args_is_help=True, add_completion=False)
console = Console()



@app.command()
def rollback(
    version: Annotated[
        str | None, typer.Argument(help="version to make current (default: the one before the current)")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Point the master back at an earlier published version (checked against its manifest first)."""
    from pipelines.publish import current_version
    from pipelines.publish import rollback as do_rollback
    from schemas.settings import load_run_config

    cfg = load_run_config(config)
    before = current_version(cfg.master_dir)
    path = do_rollback(cfg.master_dir, version)
    from mdm.audit import AuditLog

    AuditLog.for_state(cfg.state_dir).append(
        getpass.getuser(), "rollback", f"master:{path.name}", {"from": before.name if before is not None else None}
    )
    console.print(f"[green]current master:[/green] {path.name} (was {before.name if before is not None else 'none'})")


@app.command()
def versions(config: ConfigOpt = None) -> None:
    """List the kept master versions, oldest first; the current one is marked."""
    from pipelines.publish import current_version, list_versions
    from schemas.settings import load_run_config

    cfg = load_run_config(config)
    kept = list_versions(cfg.master_dir)
    if not kept:
        console.print(f"no master version published under {cfg.master_dir} yet")
        return
    current = current_version(cfg.master_dir)
    table = Table("", "version", "published at (UTC)", "golden customers", "source records", "events")
    for v in kept:
        table.add_row(
            "*" if current is not None and v.name == current.name else "",
            v.name,
            v.published_at,
            f"{v.rows.get('golden_customer', 0):,}",
            f"{v.rows.get('customer_xref', 0):,}",
            f"{v.rows.get('golden_id_events', 0):,}",
        )
    console.print(table)
    console.print(f"keeping {cfg.model.keep_versions} version(s); * marks the current one")
