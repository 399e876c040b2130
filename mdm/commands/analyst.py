"""Analyst and operator commands lifted to the top level: ``mdm query``, ``mdm backup``, ``mdm restore``."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mdm.commands import ConfigOpt
from mdm.errors import MdmError

app = typer.Typer(help="Analyst queries, backup and restore.", no_args_is_help=True, add_completion=False)
console = Console()



def _user(name: str | None) -> str:
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="one SELECT statement over the analyst mart")],
    config: ConfigOpt = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="write the rows to this CSV (spreadsheet-safe)")] = None,
    parquet: Annotated[Path | None, typer.Option("--parquet", help="write the rows to this Parquet file")] = None,
    user: Annotated[str | None, typer.Option("--user", help="who runs the query (default: the OS user)")] = None,
    limit: Annotated[int, typer.Option(help="rows shown on screen")] = 50,
) -> None:
    """Run read-only SQL against the analyst mart (masked data and tokens only); every query is audited."""
    import pyarrow.parquet as pq

    from mdm.audit import AuditLog
    from mdm.crypto import PARQUET_OPTIONS, load_key
    from mdm.csvsafe import write_safe_csv
    from mdm.query import run_query
    from schemas.settings import load_run_config

    if csv is not None and parquet is not None:
        raise MdmError("give either --csv or --parquet, not both")
    cfg = load_run_config(config)
    output = "csv" if csv is not None else "parquet" if parquet is not None else "screen"
    result = run_query(
        sql,
        cfg.mart_dir,
        _user(user),
        AuditLog.for_state(cfg.state_dir),
        key=load_key("MDM_MART_KEY", required=False),
        output=output,
    )
    if csv is not None:
        write_safe_csv(result.table.to_pandas(), csv)
        console.print(f"wrote {result.rows:,} rows to {csv}")
    elif parquet is not None:
        parquet.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(result.table, parquet, **PARQUET_OPTIONS)
        console.print(f"wrote {result.rows:,} rows to {parquet}")
    else:
        table = Table(*result.table.column_names)
        for row in result.table.slice(0, max(0, limit)).to_pylist():
            table.add_row(*("" if v is None else str(v) for v in row.values()))
        console.print(table)
        shown = min(limit, result.rows)
        more = "" if shown == result.rows else f"; first {shown} shown"
        console.print(f"{result.rows:,} rows (mart {result.mart_version}){more}")


@app.command()
def backup(
    out: Annotated[Path, typer.Option("--out", help="archive to write (.tar.gz)")],
    config: ConfigOpt = None,
    user: Annotated[str | None, typer.Option("--user", help="who takes the backup (default: the OS user)")] = None,
) -> None:
    """Back up the current master version, the analyst mart and the state folder, with checksums."""
    from mdm.audit import AuditLog
    from mdm.backup import create_backup
    from schemas.settings import load_run_config

    cfg = load_run_config(config)
    report = create_backup(cfg.master_dir, cfg.state_dir, cfg.mart_dir, out)
    AuditLog.for_state(cfg.state_dir).append(
        _user(user),
        "backup",
        out.name,
        {"files": report.files, "bytes": report.bytes, "master_version": report.master_version},
    )
    console.print(f"[green]backup written:[/green] {out} ({report.files} files, master {report.master_version})")


@app.command()
def restore(
    archive: Annotated[Path, typer.Argument(help="archive written by `mdm backup`")],
    config: ConfigOpt = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite a non-empty master / state folder")] = False,
    user: Annotated[str | None, typer.Option("--user", help="who restores (default: the OS user)")] = None,
) -> None:
    """Restore a backup into the folders the config names (empty unless --force), checking every checksum."""
    from mdm.audit import AuditLog
    from mdm.backup import restore_backup
    from schemas.settings import load_run_config

    cfg = load_run_config(config)
    report = restore_backup(archive, cfg.master_dir, cfg.state_dir, cfg.mart_dir, force=force)
    AuditLog.for_state(cfg.state_dir).append(
        _user(user),
        "restore",
        archive.name,
        {"files": report.files, "master_version": report.master_version, "forced": force},
    )
    console.print(f"[green]restored[/green] {report.files} files; current master {report.master_version}")
