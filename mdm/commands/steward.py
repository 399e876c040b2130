"""``mdm serve``: the steward web app."""

from __future__ import annotations

from typing import Annotated

import typer

from mdm.commands import ConfigOpt

app = typer.Typer()


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    secure_cookies: Annotated[bool, typer.Option(help="mark cookies Secure (behind HTTPS)")] = False,
    session_hours: Annotated[float, typer.Option(help="sessions expire after this many hours")] = 8.0,
) -> None:
    """Serve the steward web app: review queue, pair decisions, search, golden records."""
    from schemas.settings import load_run_config
    from steward.app import AppSettings
    from steward.app import serve as run_server

    settings = AppSettings(session_ttl_seconds=int(session_hours * 3600), secure_cookies=secure_cookies)
    run_server(load_run_config(config), host, port, settings)
