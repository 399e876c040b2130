"""``generate``: simulate persons, spread them over the systems, dirty the records, write the files."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.generator.config import DirtRates, GeneratorError, SourceMix
from pipelines.generator.dirt import apply_dirt
from pipelines.generator.persons import build_persons
from pipelines.generator.records import SOURCES, spread
from pipelines.generator.render import person_cases, render, truth_table
from pipelines.generator.writers import write_delimited, write_manifest, write_parquet, write_quoted_csv

logger = logging.getLogger(__name__)

FILE_NAMES = {"deposit": "deposit.dat", "card": "card.csv", "loan": "loan.parquet",
              "truth": "truth.parquet", "manifest": "manifest.json"}
_STEPS = ("persons", "records", "dirt", "render", "deposit", "card", "loan", "truth", "manifest")


@dataclass(frozen=True)
class GenerateSummary:
    """What :func:`generate` wrote."""

    records_per_source: dict[str, int]
    files: dict[str, Path]
    total_records: int


def _check_out_dir(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise GeneratorError(f"output folder {out_dir} is an existing file; pass a folder path to --out")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GeneratorError(f"cannot create output folder {out_dir}: {e.strerror}; choose another --out") from e
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise GeneratorError(f"output folder {out_dir} is not writable; fix its permissions or choose another --out")
    return out_dir


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str], None]]:
    if not enabled:
        yield lambda step: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]generate[/bold] {task.description:<9}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), transient=False) as bar:
        task = bar.add_task("start", total=len(_STEPS))

        def advance(step: str) -> None:
            bar.update(task, advance=1, description=step)

        yield advance


def generate(persons: int, out_dir: Path, seed: int, progress: bool = False, rates: DirtRates | None = None,
             mix: SourceMix | None = None) -> GenerateSummary:
    """Write deposit.dat, card.csv, loan.parquet, truth.parquet and manifest.json to ``out_dir``.

    The same ``seed`` (and options) gives byte-identical files.
    """
    if isinstance(persons, bool) or not isinstance(persons, int | np.integer) or persons < 1:
        raise GeneratorError(f"persons must be a whole number of at least 1 (got {persons!r})")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise GeneratorError(f"seed must be a non-negative whole number (got {seed!r})")
    rates = rates or DirtRates()
    mix = mix or SourceMix()
    out = _check_out_dir(out_dir)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(len(_STEPS))]
    files = {k: out / v for k, v in FILE_NAMES.items()}

    with _progress(progress) as step:
        people = build_persons(streams[0], int(persons), rates, mix)
        step("persons")
        recs = spread(streams[1], len(people), rates, mix)
        step("records")
        apply_dirt(streams[2], recs, people, rates)
        step("dirt")
        rendered = render(streams[3], recs, people)
        step("render")
        write_delimited(files["deposit"], rendered.deposit)
        step("deposit")
        write_quoted_csv(files["card"], rendered.card)
        step("card")
        write_parquet(files["loan"], rendered.loan)
        step("loan")
        write_parquet(files["truth"], truth_table(recs, people, rendered))
        step("truth")
        counts = {s: len(rendered.order[s]) for s in SOURCES}
        write_manifest(files["manifest"], _manifest(int(seed), int(persons), counts, rates, mix, recs.log,
                                                    person_cases(recs, people)))
        step("manifest")
    logger.info("generated %d records for %d persons (seed %d) in %s", sum(counts.values()), persons, seed, out)
    return GenerateSummary(
        records_per_source=counts,
        files={k: files[k] for k in ("deposit", "card", "loan", "truth")},
        total_records=sum(counts.values()),
    )


def _manifest(seed: int, persons: int, counts: dict[str, int], rates: DirtRates, mix: SourceMix,
              log: Any, cases: np.ndarray) -> dict[str, Any]:
    patterns = {name: {"rate": log.rates[name], "eligible": log.eligible[name], "count": int(hits.sum())}
                for name, hits in log.hits.items()}
    case_counts = Counter(str(c) for c in cases.tolist() if c)
    return {
        "seed": seed,
        "persons": persons,
        "records_per_source": counts,
        "total_records": sum(counts.values()),
        "rates": rates.as_dict(),
        "source_mix": mix.as_dict(),
        "patterns": patterns,
        "cases": dict(case_counts),
        "files": {k: v for k, v in FILE_NAMES.items() if k != "manifest"},
    }
