"""Bookkeeping of dirty-data patterns: which records each pattern hit, out of how many eligible."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa


@dataclass
class PatternLog:
    """One boolean column per pattern over all records, plus eligible counts and rates used."""

    n: int
    hits: dict[str, np.ndarray] = field(default_factory=dict)
    eligible: dict[str, int] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)

    def draw(self, rng: np.random.Generator, name: str, eligible: np.ndarray, rate: float) -> np.ndarray:
        """Hit each eligible record with probability ``rate``; record and return the hit mask."""
        mask = eligible & (rng.random(self.n) < rate)
        self.mark(name, mask, eligible, rate)
        return mask

    def mark(self, name: str, mask: np.ndarray, eligible: np.ndarray, rate: float) -> None:
        """Record a pattern whose hits were decided elsewhere."""
        prev = self.hits.get(name)
        self.hits[name] = mask.copy() if prev is None else prev | mask
        self.eligible[name] = self.eligible.get(name, 0) + int(eligible.sum())
        self.rates[name] = float(rate)

    def counts(self) -> dict[str, int]:
        return {k: int(v.sum()) for k, v in sorted(self.hits.items())}

    def list_array(self, order: np.ndarray) -> pa.ListArray:
        """``list<string>`` of pattern names per record, records taken in ``order``."""
        names = sorted(self.hits)
        if not names:
            return pa.ListArray.from_arrays(pa.array(np.zeros(len(order) + 1, np.int32)), pa.array([], pa.string()))
        matrix = np.stack([self.hits[k][order] for k in names], axis=1)
        _, cols = np.nonzero(matrix)
        offsets = np.zeros(len(order) + 1, dtype=np.int32)
        np.cumsum(matrix.sum(axis=1), out=offsets[1:])
        values = pa.array(np.asarray(names, dtype=object)[cols], pa.string())
        return pa.ListArray.from_arrays(pa.array(offsets), values)
