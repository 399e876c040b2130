"""Wall time, CPU time and peak memory per pipeline step."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import psutil

log = logging.getLogger(__name__)


@dataclass
class StepMetrics:
    step: str
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    rows_in: int | None = None
    rows_out: int | None = None
    started_s: float | None = None
    """When the step (its first part) started, in seconds since the run's metrics were created."""
    ended_s: float | None = None
    """When the step (its last part) ended: the run's span from one step to another includes the gaps
    between steps and what runs beside them (a table staged for publish is written during matching)."""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class RunMetrics:
    steps: list[StepMetrics] = field(default_factory=list)
    origin: float = field(default_factory=time.perf_counter)

    @contextmanager
    def step(self, name: str) -> Iterator[StepMetrics]:
        """Measure one step; peak RSS is sampled every 20 ms by a background thread."""
        metrics = StepMetrics(step=name)
        proc = psutil.Process(os.getpid())
        peak = [proc.memory_info().rss]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.02):
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:  # pragma: no cover - process is going away
                    return
                if rss > peak[0]:
                    peak[0] = rss

        sampler = threading.Thread(target=sample, name=f"rss-{name}", daemon=True)
        sampler.start()
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield metrics
        finally:
            stop.set()
            sampler.join()
            t1 = time.perf_counter()
            metrics.wall_s = round(t1 - t0, 3)
            metrics.started_s, metrics.ended_s = round(t0 - self.origin, 3), round(t1 - self.origin, 3)
            metrics.cpu_s = round(time.process_time() - c0, 3)
            metrics.peak_rss_mb = round(max(peak[0], proc.memory_info().rss) / 2**20, 1)
            self._record(metrics)
            # as each step ends (a run stopped from outside still leaves its finished steps in the log)
            log.info("step %s: %.1f s wall, %.1f s CPU, peak %.0f MB resident",
                     name, metrics.wall_s, metrics.cpu_s, metrics.peak_rss_mb)

    def _record(self, metrics: StepMetrics) -> None:
        """Append a step; a step measured in several parts (same name) is one row: times add up, peaks max."""
        for held in self.steps:
            if held.step == metrics.step:
                held.wall_s = round(held.wall_s + metrics.wall_s, 3)
                held.cpu_s = round(held.cpu_s + metrics.cpu_s, 3)
                held.peak_rss_mb = max(held.peak_rss_mb, metrics.peak_rss_mb)
                held.ended_s = metrics.ended_s
                held.rows_in = metrics.rows_in if metrics.rows_in is not None else held.rows_in
                held.rows_out = metrics.rows_out if metrics.rows_out is not None else held.rows_out
                return
        self.steps.append(metrics)

    def as_rows(self) -> list[dict[str, object]]:
        return [s.as_dict() for s in self.steps]
