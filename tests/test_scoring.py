"""Fellegi-Sunter scoring: u from random pairs, EM for m, weights, term frequencies."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matchers.scoring import (
    ComparisonModel,
    FSModel,
    estimate_u,
    gamma_patterns,
    run_em,
    sample_random_pairs,
    score_pairs,
    term_frequency_adjustment,
    train_model,
)
from schemas.scoring import EMConfig, ScoringConfig, TermFrequencyConfig

M = {"name": np.array([0.03, 0.07, 0.9]), "dob": np.array([0.05, 0.15, 0.8]), "phone": np.array([0.3, 0.1, 0.6])}
U = {"name": np.array([0.9, 0.08, 0.02]), "dob": np.array([0.85, 0.1, 0.05]), "phone": np.array([0.97, 0.02, 0.01])}
LEVELS = {"name": 3, "dob": 3, "phone": 3}


def _mixture(n: int, lam: float, seed: int = 7) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    is_match = rng.random(n) < lam
    gammas = {}
    for name in LEVELS:
        g_m = rng.choice(3, n, p=M[name])
        g_u = rng.choice(3, n, p=U[name])
        gammas[name] = np.where(is_match, g_m, g_u).astype(np.int8)
    return gammas, is_match


def _random_pairs(n: int, seed: int = 11) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.choice(3, n, p=U[name]).astype(np.int8) for name in LEVELS}


def test_em_recovers_m_and_lambda_on_a_synthetic_mixture() -> None:
    gammas, _ = _mixture(60_000, lam=0.25)
    u = estimate_u(_random_pairs(200_000), LEVELS, smoothing=1.0, floor=1e-6)
    pats = gamma_patterns(gammas, LEVELS)
    assert len(pats.counts) <= 27  # EM runs on distinct patterns only
    result = run_em(pats, LEVELS, u, EMConfig())
    assert result.converged
    assert result.lam == pytest.approx(0.25, abs=0.02)
    for name in LEVELS:
        np.testing.assert_allclose(result.m[name], M[name], atol=0.03)
        np.testing.assert_allclose(u[name], U[name], atol=0.01)


def test_em_seeded_from_labels_recovers_m_without_the_default_start() -> None:
    gammas, is_match = _mixture(40_000, lam=0.3, seed=3)
    labels = is_match & (np.random.default_rng(1).random(len(is_match)) < 0.2)  # some matches are labelled
    pats = gamma_patterns(gammas, LEVELS, labels)
    assert pats.labelled.sum() == labels.sum()
    cfg = EMConfig(initial_top_m=0.34)  # an uninformative default start: the labels must do the work
    result = run_em(pats, LEVELS, estimate_u(_random_pairs(100_000), LEVELS, 1.0, 1e-6), cfg)
    assert result.seeded
    assert result.lam == pytest.approx(0.3, abs=0.02)
    np.testing.assert_allclose(result.m["name"], M["name"], atol=0.03)


def test_gamma_patterns_counts_every_pair_and_decodes_levels() -> None:
    gammas = {"a": np.array([-1, 0, 2, 2, -1], np.int8), "b": np.array([1, 1, 0, 0, 1], np.int8)}
    pats = gamma_patterns(gammas, {"a": 3, "b": 2})
    got = {(int(p[0]), int(p[1])): int(c) for p, c in zip(pats.patterns, pats.counts, strict=True)}
    assert got == {(-1, 1): 2, (0, 1): 1, (2, 0): 2}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 3), st.integers(-1, 1), st.integers(-1, 5)), min_size=1, max_size=60))
def test_gamma_patterns_are_a_lossless_compression(rows: list[tuple[int, int, int]]) -> None:
    levels = {"x": 4, "y": 2, "z": 6}
    arr = np.array(rows, np.int8)
    gammas = {name: arr[:, j] for j, name in enumerate(levels)}
    pats = gamma_patterns(gammas, levels)
    rebuilt = np.repeat(pats.patterns, pats.counts.astype(int), axis=0)
    assert sorted(map(tuple, rebuilt.tolist())) == sorted(map(tuple, arr.tolist()))


def _model() -> FSModel:
    return FSModel(
        comparisons=(
            ComparisonModel("name", m=np.array([0.05, 0.15, 0.8]), u=np.array([0.9, 0.09, 0.01]), tf=True),
            ComparisonModel("dob", m=np.array([0.05, 0.95]), u=np.array([0.99, 0.01])),
        ),
        prior=1e-4,
    )


def test_missing_level_contributes_zero() -> None:
    model = _model()
    scores = score_pairs(model, {"name": np.array([-1, 2], np.int8), "dob": np.array([1, 1], np.int8)})
    assert scores.bf["name"][0] == 0.0
    assert scores.bf["name"][1] == pytest.approx(np.log2(0.8 / 0.01))
    assert scores.match_weight[0] == pytest.approx(model.prior_weight + np.log2(0.95 / 0.01))


def test_weight_is_prior_plus_bayes_factors_and_probability_matches() -> None:
    model = _model()
    scores = score_pairs(model, {"name": np.array([0], np.int8), "dob": np.array([0], np.int8)})
    expected = np.log2(1e-4 / (1 - 1e-4)) + np.log2(0.05 / 0.9) + np.log2(0.05 / 0.99)
    assert scores.match_weight[0] == pytest.approx(expected)
    assert scores.match_probability[0] == pytest.approx(2**expected / (1 + 2**expected))


def test_term_frequency_lowers_a_common_name_and_raises_a_rare_one() -> None:
    model = _model()
    gammas = {"name": np.array([2, 2, 2], np.int8), "dob": np.array([1, 1, 1], np.int8)}
    tf = {"name": np.array([0.05, 1e-6, np.nan])}  # 张伟-like, a rare name, no frequency
    scores = score_pairs(model, gammas, tf, TermFrequencyConfig())
    common, rare, plain = scores.match_weight
    assert common < plain < rare
    assert scores.tf_adjustment[0] == pytest.approx(np.log2(0.01 / 0.05))
    assert scores.tf_adjustment[2] == 0.0
    off = score_pairs(model, gammas, tf, TermFrequencyConfig(enabled=False))
    assert np.all(off.tf_adjustment == 0.0)


def test_term_frequency_is_bounded_by_config() -> None:
    cmp = _model().comparison("name")
    cfg = TermFrequencyConfig(min_u=1e-3, max_u=0.02)
    adj = term_frequency_adjustment(np.array([2, 2], np.int8), np.array([1e-9, 0.5]), cmp, cfg)
    assert adj[0] == pytest.approx(np.log2(0.01 / 1e-3))
    assert adj[1] == pytest.approx(np.log2(0.01 / 0.02))
    half = term_frequency_adjustment(np.array([2], np.int8), np.array([1e-3]), cmp, TermFrequencyConfig(weight=0.5))
    assert half[0] == pytest.approx(0.5 * np.log2(0.01 / 1e-3))


def test_sample_random_pairs_is_deterministic_distinct_and_ordered() -> None:
    a = sample_random_pairs(1000, 5000, seed=5)
    b = sample_random_pairs(1000, 5000, seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    left, right = a
    assert len(left) == 5000 and np.all(left < right)
    assert len(np.unique(left * 1000 + right)) == 5000


def test_sample_random_pairs_across_sources_only_and_capped_at_all_pairs() -> None:
    sources = np.array(["a"] * 30 + ["b"] * 20)
    left, right = sample_random_pairs(50, 10_000, seed=1, sources=sources)
    assert np.all(sources[left] != sources[right])
    assert len(left) == 30 * 20  # every cross pair exactly once
    left, right = sample_random_pairs(4, 100, seed=1)
    assert len(left) == 6


def test_train_model_prior_scales_candidate_share_to_all_pairs_and_is_json() -> None:
    gammas, _ = _mixture(20_000, lam=0.2)
    model = train_model(gammas, _random_pairs(50_000), LEVELS, ScoringConfig(), total_pairs=1e9)
    assert model.candidate_lambda == pytest.approx(0.2, abs=0.03)
    assert model.prior == pytest.approx(model.candidate_lambda * 20_000 / 1e9, rel=1e-6)
    text = json.dumps(model.to_dict())
    assert "bayes_factor_log2" in text
    fixed = train_model(gammas, _random_pairs(50_000), LEVELS, ScoringConfig(prior=1e-5))
    assert fixed.prior == 1e-5
