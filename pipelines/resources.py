"""The machine resources a run may take, resolved from ``RunConfig.model.resources``.

The match engine (DuckDB) runs inside the flow's process, beside the Arrow tables the
flow holds. Its buffer pool is capped so that process and engine together stay below the
machine's memory, and what outgrows the cap spills to a private folder of the run that is
removed when the match ends (spilled blocks hold record values).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mdm.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["engine_memory_limit", "machine_memory_bytes", "spill_folder"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|[KMGT]i?B)\s*$")


def machine_memory_bytes() -> int:
    """Physical memory of the machine (bytes)."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def engine_memory_limit(setting: str, total_bytes: int | None = None) -> str:
    """DuckDB's ``memory_limit`` for a config value: a size passes through, a share of RAM becomes MB.

    >>> engine_memory_limit("25%", total_bytes=16 * 2**30)
    '4096MB'
    >>> engine_memory_limit("6GB")
    '6GB'
    """
    match = _SIZE.match(setting)
    if match is None:
        raise ConfigError(
            f"resources.match_engine_memory is {setting!r}; give a size such as '6GB' or a share of RAM such as '25%'"
        )
    number, unit = float(match.group(1)), match.group(2)
    if unit != "%":
        return f"{match.group(1)}{unit}"
    if not 0 < number <= 100:
        raise ConfigError(f"resources.match_engine_memory is {setting!r}; a share of RAM lies between 0% and 100%")
    total = total_bytes if total_bytes is not None else machine_memory_bytes()
    return f"{max(1, int(total * number / 100 / 2**20))}MB"


@contextlib.contextmanager
def spill_folder(run_root: Path | None) -> Iterator[Path]:
    """A private (mode 700) folder for the engine's spill files, removed afterwards.

    Under ``run_root`` (the run folder) when given, else a fresh temporary folder.
    """
    if run_root is None:
        path = Path(tempfile.mkdtemp(prefix="mdm-engine-spill-"))
    else:
        path = Path(run_root) / "engine-spill"
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        log.debug("engine spill folder %s removed", path)
