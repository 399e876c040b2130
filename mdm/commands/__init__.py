"""Sub-commands of ``mdm``; each module exposes a ``typer.Typer`` app or plain command functions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="run config (default: the demo config data/config/demo.yaml)"),
]
"""The ``--config`` option every command shares."""
