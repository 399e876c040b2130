"""Path safety: a source may only read files inside the configured base folder."""

from __future__ import annotations

import glob
import logging
from pathlib import Path, PurePath

from mdm.errors import ConfigError, SourceError

logger = logging.getLogger(__name__)


def resolve_source_files(system: str, location: str, base_dir: Path) -> list[Path]:
    """Return the existing files that ``location`` (a path or glob relative to ``base_dir``) names.

    Absolute locations, ``..`` segments and symlinks that lead outside ``base_dir`` are refused
    with :class:`ConfigError`; a location that names no file raises :class:`SourceError`.
    """
    base = base_dir.resolve()
    pure = PurePath(location)
    if pure.is_absolute() or location.startswith(("/", "\\")) or (len(location) > 1 and location[1] == ":"):
        raise ConfigError(
            f"{system}: location {location!r} is absolute; write it relative to the sources base_dir {base}"
        )
    if ".." in pure.parts:
        raise ConfigError(
            f"{system}: location {location!r} climbs out of base_dir with '..'; move the file into {base}"
        )
    pattern = str(base / location)
    candidates = [Path(p) for p in sorted(glob.glob(pattern))] if glob.has_magic(location) else [Path(pattern)]
    files: list[Path] = []
    for candidate in candidates:
        real = candidate.resolve()
        if not real.is_relative_to(base):
            raise ConfigError(
                f"{system}: {candidate.name} resolves outside base_dir {base} (symlink?); "
                "copy the extract into the base folder instead of linking to it"
            )
        if real.is_file():
            files.append(candidate)
        elif real.exists():
            raise SourceError(f"{system}: {candidate} is not a regular file; point location at the extract file")
    if not files:
        raise SourceError(
            f"{system}: no extract file matches {location!r} under {base}; check that the upstream export ran "
            "or fix location in the sources file"
        )
    logger.debug("%s: %d file(s) match %s", system, len(files), location)
    return files


def relative_name(path: Path, base_dir: Path) -> str:
    """The file's path relative to ``base_dir`` in POSIX form (the ``source_file`` lineage value)."""
    base = base_dir.resolve()
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.resolve().relative_to(base).as_posix()
