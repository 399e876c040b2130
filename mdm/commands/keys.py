"""``mdm keys rotate`` and ``mdm keys check``: the master encryption key.

Rotation re-encrypts every encrypted file under the master versions, the run folders, the
analyst mart and the state folder from ``MDM_MASTER_KEY`` to ``MDM_MASTER_KEY_NEW``, one
file at a time (temp file, verified, then renamed over the original), and refreshes the
checksums in the folder's ``manifest.json``. A file that already opens with the new key is
skipped, so an interrupted rotation is finished by running it again. Afterwards set
``MDM_MASTER_KEY`` to the new key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mdm.commands import ConfigOpt
from mdm.errors import SecurityError

app = typer.Typer(help="Encryption keys of the master at rest.", no_args_is_help=True, add_completion=False)
console = Console()
log = logging.getLogger(__name__)



def encrypted_files(roots: Iterable[Path]) -> Iterator[Path]:
    """Every encrypted file under ``roots`` (temp files of interrupted writes excluded)."""
    from mdm.crypto import is_encrypted

    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.name.endswith(".tmp") and is_encrypted(path):
                yield path


def _opens_with(path: Path, key: bytes) -> bool:
    from mdm.crypto import check_file

    try:
        check_file(path, key)
    except SecurityError:
        return False
    return True


def refresh_manifest(path: Path) -> None:
    """Update size and SHA-256 of ``path`` in the ``manifest.json`` beside it, when it lists the file."""
    manifest = path.parent / "manifest.json"
    if not manifest.is_file():
        return
    data = json.loads(manifest.read_text(encoding="utf-8"))
    files = data.get("files")
    if not isinstance(files, dict) or path.name not in files:
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    files[path.name] = {**files[path.name], "bytes": path.stat().st_size, "sha256": digest}
    tmp = manifest.with_name(f".{manifest.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, manifest)


def rotate_all(roots: Iterable[Path], old: bytes, new: bytes) -> tuple[int, int]:
    """Re-encrypt every encrypted file under ``roots``; return (rotated, already on the new key)."""
    from mdm.crypto import rotate_file

    rotated = skipped = 0
    for path in encrypted_files(roots):
        if _opens_with(path, new):
            skipped += 1
            continue
        rotate_file(path, old, new)
        refresh_manifest(path)
        rotated += 1
        log.info("re-encrypted %s", path)
    return rotated, skipped


def _roots(config: Path | None) -> tuple[list[Path], Path, Path]:
    from schemas.settings import load_run_config

    cfg = load_run_config(config)
    roots = [cfg.master_dir / "versions", cfg.runs_dir, cfg.state_dir, cfg.mart_dir]
    return roots, cfg.master_dir, cfg.state_dir


@app.command()
def rotate(
    config: ConfigOpt = None,
    user: Annotated[str | None, typer.Option("--user", help="who rotates (default: the OS user)")] = None,
) -> None:
    """Re-encrypt everything from MDM_MASTER_KEY to MDM_MASTER_KEY_NEW (then set MDM_MASTER_KEY to the new key)."""
    import getpass

    from mdm.audit import AuditLog
    from mdm.crypto import ENV_MASTER_KEY_NEW, load_key
    from pipelines.publish import master_lock

    old = load_key()
    new = load_key(ENV_MASTER_KEY_NEW)
    assert old is not None and new is not None
    if old == new:
        raise SecurityError("MDM_MASTER_KEY_NEW equals MDM_MASTER_KEY; generate a new key first")
    roots, master_dir, state_dir = _roots(config)
    with master_lock(master_dir):
        rotated, skipped = rotate_all(roots, old, new)
    AuditLog.for_state(state_dir).append(
        user or getpass.getuser(), "key_rotation", "master_key", {"rotated": rotated, "already_new": skipped}
    )
    console.print(
        f"[green]re-encrypted {rotated} file(s)[/green] ({skipped} already on the new key); "
        "now set MDM_MASTER_KEY to the new key"
    )


@app.command()
def check(config: ConfigOpt = None) -> None:
    """Verify that MDM_MASTER_KEY opens every encrypted file (exit code 1 names the first that fails)."""
    from mdm.crypto import check_file, load_key

    key = load_key()
    assert key is not None
    roots, _, _ = _roots(config)
    count = 0
    for path in encrypted_files(roots):
        try:
            check_file(path, key)
        except SecurityError as e:
            console.print(f"[red]{e}[/red]")
            raise typer.Exit(1) from None
        count += 1
    console.print(f"[green]OK:[/green] MDM_MASTER_KEY opens all {count} encrypted file(s)")
