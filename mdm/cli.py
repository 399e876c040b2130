"""The ``mdm`` command line.

Every command catches :class:`mdm.errors.MdmError` and prints its message as one line:
a bank operator sees a sentence that says how to fix the problem, never a traceback.
Heavy modules are imported inside the commands so ``mdm --help`` stays fast.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mdm.commands import ConfigOpt
from mdm.errors import MdmError

app = typer.Typer(
    name="mdm",
    help="Bank customer master: one golden customer ID per real person across deposit, card and loan.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=False)
err_console = Console(stderr=True)



@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    from mdm import logs

    logs.configure(logging.DEBUG if verbose else logging.INFO)


@app.command()
def generate(
    persons: Annotated[int, typer.Option(help="number of real persons to simulate")] = 10000,
    out: Annotated[Path, typer.Option(help="output folder for the extracts and the truth file")] = Path("data/sample"),
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives byte-identical files")] = 20261123,
) -> None:
    """Write synthetic deposit, card and loan extracts plus a ground-truth file."""
    from pipelines.generator import generate as run_generate

    summary = run_generate(persons=persons, out_dir=out, seed=seed, progress=True)
    console.print(f"[green]wrote[/green] {summary.total_records:,} source records for {persons:,} persons to {out}")
    for name, count in summary.records_per_source.items():
        console.print(f"  {name:<8} {count:>10,}  {summary.files[name]}")
    console.print(f"  truth    {summary.total_records:>10,}  {summary.files['truth']}")


@app.command()
def run(
    config: ConfigOpt = None,
    business_date: Annotated[
        str | None, typer.Option(help="business date YYYY-MM-DD (default: today in Asia/Shanghai)")
    ] = None,
    sources: Annotated[
        list[str] | None, typer.Option("--source", help="run only these source systems (repeatable)")
    ] = None,
) -> None:
    """Run the nightly flow in-process over the sources the config declares and publish the master."""
    from pipelines.runner import run_locally

    day = _parse_date(business_date)
    result = run_locally(config_path=config, business_date=day, only_sources=sources)
    console.print(result.summary_text())


def _parse_date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as e:
        raise MdmError(f"--business-date {value!r} is not a date; write it as YYYY-MM-DD") from e


def _register_optional() -> None:
    """Attach the command groups that later capabilities provide."""
    import importlib

    for module_name, attr, name in (
        ("mdm.commands.master", "app", "master"),
        ("mdm.commands.analyst", "app", "master"),
        ("mdm.commands.steward", "app", "master"),
        ("mdm.commands.review", "app", "review"),
        ("mdm.commands.users", "app", "users"),
        ("mdm.commands.audit", "app", "audit"),
        ("mdm.commands.keys", "app", "keys"),
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name == module_name:
                continue
            raise
        sub = getattr(module, attr)
        if name == "master":
            # master-level commands (rollback, query, serve, backup, restore) sit at the top level
            for cmd in sub.registered_commands:
                app.registered_commands.append(cmd)
        else:
            app.add_typer(sub, name=name)


_register_optional()


def main() -> None:
    """Entry point of the ``mdm`` console script."""
    try:
        app(standalone_mode=False)
    except MdmError as e:
        err_console.print(f"[red]error:[/red] {e}", markup=True, highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except (typer.Exit, SystemExit) as e:
        code = getattr(e, "exit_code", None) or getattr(e, "code", 0) or 0
        sys.exit(code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as e:  # click usage errors and the like
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise


if __name__ == "__main__":
    main()
