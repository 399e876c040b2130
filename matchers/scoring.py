"""Fellegi-Sunter scoring: u from random pairs, m and lambda by EM, weights, term frequencies.

The model works on comparison vectors: one ``gamma_<cmp>`` int8 level per comparison
(-1 missing, 0 far ... highest = exact). Training compresses the candidate pairs to
their distinct gamma patterns with counts, so EM costs the same for 10 thousand or 100
million pairs. Weights are log2 Bayes factors; a missing level contributes 0.

u (agreement among non-matches) comes from a random sample of record pairs, where
almost every pair is a non-match. m (agreement among matches) and the share of matches
among candidate pairs come from EM over the candidate pairs, optionally seeded by the
pairs that share a valid ID key. The prior of the scoring model is the match share over
*all* record pairs (the candidate share times candidates / all pairs), because the
weights count the agreement that made the pair a candidate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from mdm.arrays import sorted_unique
from schemas.scoring import EMConfig, ScoringConfig, TermFrequencyConfig

log = logging.getLogger(__name__)

GammaColumns = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class ComparisonModel:
    """m and u per level of one comparison (index = gamma level)."""

    name: str
    m: np.ndarray
    u: np.ndarray
    labels: tuple[str, ...] = ()
    tf: bool = False

    @property
    def n_levels(self) -> int:
        return len(self.m)

    def bayes_factors(self) -> np.ndarray:
        """log2(m/u) per level."""
        return np.log2(self.m / self.u)


@dataclass(frozen=True)
class FSModel:
    """A trained Fellegi-Sunter model: per-comparison m/u and the prior match probability."""

    comparisons: tuple[ComparisonModel, ...]
    prior: float
    candidate_lambda: float = float("nan")
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def prior_weight(self) -> float:
        return float(np.log2(self.prior / (1.0 - self.prior)))

    def comparison(self, name: str) -> ComparisonModel:
        for cmp in self.comparisons:
            if cmp.name == name:
                return cmp
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable description of the model (plain floats and lists)."""
        return {
            "prior": float(self.prior),
            "prior_weight": self.prior_weight,
            "candidate_lambda": float(self.candidate_lambda),
            "comparisons": {
                c.name: {
                    "levels": list(c.labels) if c.labels else [str(i) for i in range(c.n_levels)],
                    "m": [float(x) for x in c.m],
                    "u": [float(x) for x in c.u],
                    "bayes_factor_log2": [float(x) for x in c.bayes_factors()],
                    "term_frequency": c.tf,
                }
                for c in self.comparisons
            },
            "info": _jsonable(self.info),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---------------------------------------------------------------------------------------------- u


def sample_random_pairs(
    n_records: int, n_pairs: int, seed: int, sources: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct random record pairs (rid_l < rid_r); with ``sources`` only pairs across sources.

    Deterministic for a given seed. Returns fewer pairs when fewer exist.
    """
    if n_records < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    total = n_records * (n_records - 1) // 2
    n_pairs = int(min(n_pairs, total))
    rng = np.random.default_rng(seed)
    left = np.empty(0, np.int64)
    right = np.empty(0, np.int64)
    for _ in range(20):  # rejection sampling; a handful of rounds is plenty unless a source dominates
        need = n_pairs - len(left)
        if need <= 0:
            break
        draw = int(need * 1.3) + 100
        a = rng.integers(0, n_records, draw, dtype=np.int64)
        b = rng.integers(0, n_records, draw, dtype=np.int64)
        keep = a != b
        if sources is not None:
            keep &= sources[a] != sources[b]
        lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
        key = sorted_unique(np.concatenate([left * n_records + right, lo * n_records + hi]))
        if len(key) > n_pairs:
            key = rng.choice(key, n_pairs, replace=False)
        left, right = key // n_records, key % n_records
    order = np.lexsort((right, left))
    return left[order], right[order]


def level_shares(gamma: np.ndarray, n_levels: int, smoothing: float = 0.0) -> np.ndarray:
    """Share of each level among the non-missing values of ``gamma`` (with a pseudo-count per level)."""
    g = gamma[gamma >= 0].astype(np.int64)
    counts = np.bincount(g, minlength=n_levels)[:n_levels].astype(np.float64) + smoothing
    total = counts.sum()
    if total <= 0:
        return np.full(n_levels, 1.0 / n_levels)
    return counts / total


def estimate_u(
    gammas: GammaColumns, n_levels: Mapping[str, int], smoothing: float, floor: float
) -> dict[str, np.ndarray]:
    """u per level of each comparison from the gamma columns of random (non-match) pairs."""
    return {name: _floor(level_shares(gammas[name], n_levels[name], smoothing), floor) for name in n_levels}


def _floor(p: np.ndarray, floor: float) -> np.ndarray:
    p = np.maximum(p, floor)
    return p / p.sum()


# ---------------------------------------------------------------------------------------------- patterns


@dataclass(frozen=True)
class GammaPatterns:
    """Distinct comparison vectors with how many pairs (and labelled matches) carry each."""

    names: tuple[str, ...]
    patterns: np.ndarray  # (k, c) int8
    counts: np.ndarray  # (k,) float64
    labelled: np.ndarray  # (k,) float64: pairs of that pattern labelled as matches


def gamma_patterns(
    gammas: GammaColumns, n_levels: Mapping[str, int], labels: np.ndarray | None = None
) -> GammaPatterns:
    """Compress gamma columns to their distinct patterns (vectorized mixed-radix key + hash count)."""
    names = tuple(n_levels)
    n = len(gammas[names[0]]) if names else 0
    key = np.zeros(n, np.int64)
    radix = 1
    radices = []
    for name in names:
        base = n_levels[name] + 1
        key += (gammas[name].astype(np.int64) + 1) * radix
        radices.append(radix)
        radix *= base
    counts = pd.Series(key).value_counts(sort=False)
    keys = counts.index.to_numpy(np.int64)
    lab: np.ndarray = np.zeros(len(keys))
    if labels is not None and labels.any():
        lab_counts = pd.Series(key[labels]).value_counts(sort=False)
        lab = lab_counts.reindex(counts.index, fill_value=0).to_numpy(np.float64)
    pats = np.empty((len(keys), len(names)), np.int8)
    for j, name in enumerate(names):
        pats[:, j] = (keys // radices[j]) % (n_levels[name] + 1) - 1
    return GammaPatterns(names, pats, counts.to_numpy(np.float64), lab)


# ---------------------------------------------------------------------------------------------- EM


@dataclass(frozen=True)
class EMResult:
    m: dict[str, np.ndarray]
    u: dict[str, np.ndarray]
    lam: float
    iterations: int
    converged: bool
    seeded: bool


def _log_lookup(pats: GammaPatterns, probs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Sum over comparisons of log(prob[level]) per pattern; missing contributes 0."""
    total = np.zeros(len(pats.counts))
    for j, name in enumerate(pats.names):
        g = pats.patterns[:, j].astype(np.int64)
        logp = np.log(probs[name])
        total += np.where(g >= 0, logp[np.maximum(g, 0)], 0.0)
    return total


def _level_sums(g: np.ndarray, weights: np.ndarray, n_levels: int) -> np.ndarray:
    ok = g >= 0
    return np.bincount(g[ok].astype(np.int64), weights=weights[ok], minlength=n_levels)[:n_levels]


def initial_m(pats: GammaPatterns, n_levels: Mapping[str, int], cfg: EMConfig) -> tuple[dict[str, np.ndarray], bool]:
    """Initial m: level shares among labelled matches when there are enough, else a top-heavy default."""
    seeded = cfg.seed_from_deterministic and pats.labelled.sum() >= cfg.min_seed_pairs
    m: dict[str, np.ndarray] = {}
    for j, name in enumerate(pats.names):
        k = n_levels[name]
        default = np.full(k, (1.0 - cfg.initial_top_m) / max(k - 1, 1))
        default[-1] = cfg.initial_top_m if k > 1 else 1.0
        if seeded:
            sums = _level_sums(pats.patterns[:, j], pats.labelled, k)
            if sums.sum() > 0:
                shares = sums / sums.sum()
                m[name] = _floor((1 - cfg.seed_smoothing) * shares + cfg.seed_smoothing / k, cfg.probability_floor)
                continue
        m[name] = _floor(default / default.sum(), cfg.probability_floor)
    return m, bool(seeded)


def run_em(
    pats: GammaPatterns,
    n_levels: Mapping[str, int],
    u_init: Mapping[str, np.ndarray],
    cfg: EMConfig,
) -> EMResult:
    """EM over distinct gamma patterns: m, lambda and (if ``cfg.update_u``) the candidates' u."""
    m, seeded = initial_m(pats, n_levels, cfg)
    u = {k: np.asarray(v, np.float64).copy() for k, v in u_init.items()}
    total = pats.counts.sum()
    lam = cfg.initial_lambda
    if seeded and total > 0:
        lam = float(np.clip(pats.labelled.sum() / total, 0.01, 0.99))
    converged = False
    it = 0
    for it in range(1, cfg.max_iterations + 1):  # noqa: B007 (the count is reported)
        logit = np.log(lam / (1 - lam)) + _log_lookup(pats, m) - _log_lookup(pats, u)
        w = expit(logit)
        wm = w * pats.counts
        wu = (1.0 - w) * pats.counts
        new_m: dict[str, np.ndarray] = {}
        new_u: dict[str, np.ndarray] = {}
        delta = 0.0
        for j, name in enumerate(pats.names):
            g = pats.patterns[:, j]
            sm = _level_sums(g, wm, n_levels[name])
            new_m[name] = _floor(sm / sm.sum(), cfg.probability_floor) if sm.sum() > 0 else m[name]
            delta = max(delta, float(np.abs(new_m[name] - m[name]).max()))
            if cfg.update_u:
                su = _level_sums(g, wu, n_levels[name])
                new_u[name] = _floor(su / su.sum(), cfg.probability_floor) if su.sum() > 0 else u[name]
                delta = max(delta, float(np.abs(new_u[name] - u[name]).max()))
            else:
                new_u[name] = u[name]
        new_lam = float(np.clip(wm.sum() / total, 1e-9, 1 - 1e-9)) if cfg.estimate_lambda and total > 0 else lam
        delta = max(delta, abs(new_lam - lam))
        m, u, lam = new_m, new_u, new_lam
        if delta < cfg.tolerance:
            converged = True
            break
    log.info("EM: %d iterations, converged=%s, candidate match share %.4f, seeded=%s", it, converged, lam, seeded)
    return EMResult(m=m, u=u, lam=lam, iterations=it, converged=converged, seeded=seeded)


def train_model(
    candidate_gammas: GammaColumns,
    random_gammas: GammaColumns,
    n_levels: Mapping[str, int],
    config: ScoringConfig,
    *,
    labels: np.ndarray | None = None,
    total_pairs: float | None = None,
    level_labels: Mapping[str, Sequence[str]] | None = None,
    tf_comparisons: Sequence[str] = (),
) -> FSModel:
    """Train m (EM over candidates) and u (random pairs) and derive the prior over all pairs.

    ``total_pairs`` is the number of record pairs the candidates were drawn from
    (n(n-1)/2 for deduplication); without it the prior is the candidate match share.
    """
    cfg = config.em
    u = estimate_u(random_gammas, n_levels, config.u_estimation.smoothing, cfg.probability_floor)
    pats = gamma_patterns(candidate_gammas, n_levels, labels)
    em = run_em(pats, n_levels, u, cfg)
    n_cand = float(pats.counts.sum())
    if config.prior is not None:
        prior = config.prior
    elif total_pairs and total_pairs > 0:
        prior = float(np.clip(em.lam * n_cand / total_pairs, 1e-15, 0.5))
    else:
        prior = em.lam
    comps = tuple(
        ComparisonModel(
            name=name,
            m=em.m[name],
            u=u[name],
            labels=tuple(level_labels[name]) if level_labels and name in level_labels else (),
            tf=name in tf_comparisons,
        )
        for name in n_levels
    )
    info = {
        "em_iterations": em.iterations,
        "em_converged": em.converged,
        "em_seeded_from_deterministic": em.seeded,
        "candidate_pairs": int(n_cand),
        "distinct_patterns": len(pats.counts),
        "labelled_pairs": int(pats.labelled.sum()),
        "random_pairs": len(next(iter(random_gammas.values()))) if random_gammas else 0,
        "total_pairs": float(total_pairs) if total_pairs else None,
        "candidate_u": {k: v.tolist() for k, v in em.u.items()},
    }
    return FSModel(comparisons=comps, prior=prior, candidate_lambda=em.lam, info=info)


# ---------------------------------------------------------------------------------------------- scoring


def term_frequency_adjustment(
    gamma: np.ndarray, tf: np.ndarray, cmp: ComparisonModel, cfg: TermFrequencyConfig
) -> np.ndarray:
    """log2(u_level / u_value) where ``tf`` (the agreeing value's frequency) is set, else 0.

    A value more common than the average agreeing value gets a negative adjustment.
    """
    has = ~np.isnan(tf) & (gamma >= 0)
    u_value = np.clip(np.where(has, tf, 1.0), cfg.min_u, cfg.max_u)
    u_level = cmp.u[np.maximum(gamma, 0).astype(np.int64)]
    return np.where(has, cfg.weight * (np.log2(u_level) - np.log2(u_value)), 0.0)


@dataclass(frozen=True)
class Scores:
    bf: dict[str, np.ndarray]
    tf_adjustment: np.ndarray
    match_weight: np.ndarray
    match_probability: np.ndarray


def bayes_factors(model: FSModel, gammas: GammaColumns) -> dict[str, np.ndarray]:
    """bf_<cmp> (log2) of each pair: a look-up of its gamma level (0 where the comparison is null)."""
    return {cmp.name: _bayes_factor(cmp, gammas[cmp.name]) for cmp in model.comparisons}


def _bayes_factor(cmp: ComparisonModel, g: np.ndarray) -> np.ndarray:
    table = cmp.bayes_factors()
    return np.where(g >= 0, table[np.clip(g, 0, cmp.n_levels - 1).astype(np.int64)], 0.0)


def score_pairs(
    model: FSModel,
    gammas: GammaColumns,
    tfs: GammaColumns | None = None,
    tf_config: TermFrequencyConfig | None = None,
    *,
    with_bf: bool = True,
) -> Scores:
    """Per-comparison Bayes factors (bf_<cmp>, log2), TF adjustment, match weight and probability.

    ``with_bf=False`` leaves ``bf`` empty: one float64 per pair and comparison is the largest
    thing scoring makes, and a caller that keeps only some pairs computes it for those
    (:func:`bayes_factors`).
    """
    tf_config = tf_config or TermFrequencyConfig()
    n = len(next(iter(gammas.values()))) if gammas else 0
    weight = np.full(n, model.prior_weight)
    tf_total = np.zeros(n)
    bfs: dict[str, np.ndarray] = {}
    for cmp in model.comparisons:
        g = gammas[cmp.name]
        bf = _bayes_factor(cmp, g)
        if with_bf:
            bfs[cmp.name] = bf
        weight += bf
        if tf_config.enabled and cmp.tf and tfs is not None and cmp.name in tfs:
            tf_total += term_frequency_adjustment(g, np.asarray(tfs[cmp.name], np.float64), cmp, tf_config)
    weight += tf_total
    return Scores(bf=bfs, tf_adjustment=tf_total, match_weight=weight, match_probability=expit(weight * np.log(2.0)))
