"""Sub-commands of ``mdm``; each module exposes a ``typer.Typer`` app or plain command functions."""
