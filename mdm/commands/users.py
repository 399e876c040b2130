"""``mdm users ...``: accounts of the steward web app."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mdm.commands import ConfigOpt
from steward.users import UserStore

app = typer.Typer(help="Manage the web app's user accounts (roles: steward, analyst, admin).", no_args_is_help=True)
console = Console()


@contextmanager
def _store(config: Path | None) -> Iterator[UserStore]:
    from schemas.settings import load_run_config

    store = UserStore.open(load_run_config(config).state_dir)
    try:
        yield store
    finally:
        store.close()


def _password(value: str | None) -> str:
    if value:
        return value
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


@app.command("add")
def add(
    username: str,
    role: Annotated[str, typer.Option(help="steward, analyst or admin")] = "steward",
    password: Annotated[str | None, typer.Option(help="omit to be prompted", envvar="MDM_NEW_PASSWORD")] = None,
    config: ConfigOpt = None,
) -> None:
    """Add a user."""
    with _store(config) as store:
        store.add(username, _password(password), role)
    console.print(f"added {username} ({role})")


@app.command("passwd")
def passwd(
    username: str,
    password: Annotated[str | None, typer.Option(help="omit to be prompted", envvar="MDM_NEW_PASSWORD")] = None,
    config: ConfigOpt = None,
) -> None:
    """Set a user's password (ends the user's sessions)."""
    with _store(config) as store:
        store.set_password(username, _password(password))
    console.print(f"password changed for {username}")


@app.command("role")
def role(username: str, new_role: str, config: ConfigOpt = None) -> None:
    """Change a user's role."""
    with _store(config) as store:
        store.set_role(username, new_role)
    console.print(f"{username} is now {new_role}")


@app.command("disable")
def disable(username: str, config: ConfigOpt = None) -> None:
    """Disable a user (ends the user's sessions)."""
    with _store(config) as store:
        store.set_disabled(username, True)
    console.print(f"disabled {username}")


@app.command("enable")
def enable(username: str, config: ConfigOpt = None) -> None:
    """Enable a disabled user."""
    with _store(config) as store:
        store.set_disabled(username, False)
    console.print(f"enabled {username}")


@app.command("list")
def list_users(config: ConfigOpt = None) -> None:
    """List the users."""
    with _store(config) as store:
        rows = store.all_users()
    table = Table("user", "role", "disabled", "created")
    for r in rows:
        table.add_row(str(r["username"]), str(r["role"]), "yes" if r["disabled"] else "", str(r["created_at"]))
    console.print(table)
