"""Stewards' view of the data-quality results: JSON files and a self-contained HTML summary.

The summary needs no network (GX's own data docs load their styles from a CDN) and links
to the GX data docs of each gate run.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SUMMARY_FILE = "summary.json"
_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{border:1px solid #bbb;padding:4px 8px;text-align:left;vertical-align:top}"
    ".pass{color:#070}.fail{color:#b00;font-weight:bold}"
)


def write_json(path: Path, payload: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _rows(entries: Iterable[dict[str, Any]], base: Path) -> str:
    out = []
    for e in entries:
        status = '<span class="pass">passed</span>' if e["passed"] else '<span class="fail">FAILED</span>'
        failures = "<br>".join(html.escape(f) for f in e["failures"]) or "&nbsp;"
        stats = html.escape(json.dumps(e.get("statistics", {}), ensure_ascii=False, default=str))
        links = []
        for label, key in (("results JSON", "results_path"), ("GX data docs", "docs_path")):
            target = e.get(key)
            if target:
                rel = os.path.relpath(target, base)
                links.append(f'<a href="{html.escape(rel)}">{label}</a>')
        out.append(
            f"<tr><td>{html.escape(e['gate'])}</td><td>{html.escape(e['source'])}</td><td>{status}</td>"
            f"<td>{failures}</td><td><code>{stats}</code></td><td>{' '.join(links)}</td></tr>"
        )
    return "\n".join(out)


def render_index(folder: Path, title: str, entries: list[dict[str, Any]]) -> Path:
    """Write ``folder/index.html``: one table row per gate result."""
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        "<table><tr><th>gate</th><th>source</th><th>status</th><th>failures</th><th>statistics</th>"
        f"<th>details</th></tr>{_rows(entries, folder)}</table></body></html>"
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "index.html"
    tmp = path.with_name(".index.html.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, path)
    return path


def refresh_parent_index(results_dir: Path) -> Path:
    """Rebuild ``results_dir.parent/index.html`` from every sibling folder's summary.json."""
    parent = results_dir.parent
    entries: list[dict[str, Any]] = []
    for summary in sorted(parent.glob(f"*/{SUMMARY_FILE}")):
        try:
            entries.extend(json.loads(summary.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return render_index(parent, "Data-quality gates of this run", entries)
