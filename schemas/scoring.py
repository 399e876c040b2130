"""Typed config of scoring, decisions and clustering.

Every threshold and switch the matcher's Fellegi-Sunter model, its decision rules and
its cluster repair read lives here; nothing is buried in code. Weights are log2 Bayes
factors (bits).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class USamplingConfig(_Strict):
    """How u (agreement among non-matches) is estimated: from random record pairs."""

    # 250k pairs: a level with u = 1e-3 is seen ~250 times (relative standard error ~6%, ~0.09 bit of
    # weight); rarer levels are mostly exact levels with a term-frequency adjustment, whose weight
    # uses the value's own frequency instead of the sampled u. 1M pairs cost ~4x the time.
    sample_pairs: int = Field(default=250_000, ge=1000, description="random record pairs compared to estimate u")
    seed: int = Field(default=20261123, description="seed of the random pair sample (same seed, same u)")
    smoothing: float = Field(default=1.0, ge=0.0, description="pseudo-count added to every level (no u of exactly 0)")


class EMConfig(_Strict):
    """Expectation-maximisation of m (agreement among matches) and lambda over candidate pairs."""

    max_iterations: int = Field(default=100, ge=0, description="EM iterations at most (0 keeps the initial m)")
    tolerance: float = Field(default=1e-6, gt=0.0, description="stop when no m or lambda moves by more than this")
    seed_from_deterministic: bool = Field(
        default=True, description="initial m from candidate pairs sharing a valid id_key (used as match labels)"
    )
    min_seed_pairs: int = Field(default=20, ge=1, description="labelled pairs needed before they seed m")
    seed_smoothing: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="share of the seeded m spread evenly over levels (lets EM move off zero)",
    )
    update_u: bool = Field(
        default=True, description="fit the candidates' own u in EM (scoring always uses the random-pair u)"
    )
    initial_top_m: float = Field(
        default=0.9,
        gt=0.0,
        lt=1.0,
        description="without labels: initial m of the closest level (the rest shares 1 - this)",
    )
    initial_lambda: float = Field(
        default=0.1, gt=0.0, lt=1.0, description="initial share of matches among candidate pairs"
    )
    estimate_lambda: bool = Field(default=True, description="re-estimate lambda in EM (else keep initial_lambda)")
    probability_floor: float = Field(default=1e-6, gt=0.0, lt=0.01, description="m and u never go below this")


class TermFrequencyConfig(_Strict):
    """Term-frequency adjustment: on an exact level, u is replaced by the value's frequency."""

    enabled: bool = True
    min_u: float = Field(default=1e-8, gt=0.0, description="lower bound of a value's frequency used as u")
    max_u: float = Field(default=1.0, gt=0.0, le=1.0, description="upper bound of a value's frequency used as u")
    weight: float = Field(default=1.0, ge=0.0, le=1.0, description="share of the adjustment applied (1 = full)")

    @model_validator(mode="after")
    def _bounds(self) -> TermFrequencyConfig:
        if self.min_u > self.max_u:
            raise ValueError("term_frequency.min_u must not exceed max_u")
        return self


class HardEvidenceConfig(_Strict):
    """Rules that keep records apart (or link them) regardless of the model's score."""

    deterministic_id_key: bool = Field(default=True, description="records sharing a valid, non-placeholder id_key link")
    deterministic_max_group: int = Field(
        default=200, ge=2, description="an id_key held by more records than this links none of them (likely junk)"
    )
    resident_id_conflict: bool = Field(
        default=True, description="two different valid resident IDs never link automatically"
    )
    gender_conflict: bool = Field(
        default=True, description="genders read from two valid IDs differ: never link automatically"
    )
    birth_date_conflict: bool = Field(
        default=True, description="birth dates read from two valid IDs differ: never link automatically"
    )


class RepairConfig(_Strict):
    """Cluster repair: split clusters that hold a conflict along their weakest links."""

    enabled: bool = True
    split_on_cannot_link: bool = Field(default=True, description="a cluster may not hold a steward cannot-link pair")
    split_on_hard_conflict: bool = Field(default=True, description="a cluster may not hold a hard-conflict pair")
    split_on_resident_id: bool = Field(
        default=True, description="a cluster may not hold two different valid resident IDs"
    )


class ScoringConfig(_Strict):
    """Fellegi-Sunter scoring, decision thresholds and cluster repair."""

    accept_weight: float = Field(
        default=12.0, description="match weight (log2) at or above which a pair links automatically"
    )
    review_weight: float = Field(default=4.0, description="pairs between review_weight and accept_weight go to review")
    review_when_disagree: tuple[str, ...] = Field(
        default=(),
        description="comparisons whose 'else' level (full disagreement) caps a pair at review: never auto-linked",
    )
    prior: float | None = Field(
        default=None, gt=0.0, lt=1.0, description="fixed probability that two random records match (default: estimated)"
    )
    u_estimation: USamplingConfig = Field(default_factory=USamplingConfig)
    em: EMConfig = Field(default_factory=EMConfig)
    term_frequency: TermFrequencyConfig = Field(default_factory=TermFrequencyConfig)
    hard_evidence: HardEvidenceConfig = Field(default_factory=HardEvidenceConfig)
    repair: RepairConfig = Field(default_factory=RepairConfig)
    score_bands: tuple[float, ...] = Field(
        default=(-10.0, 0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 30.0),
        description="edges of the match-weight bands counted in the run statistics",
    )

    @model_validator(mode="after")
    def _thresholds(self) -> ScoringConfig:
        if self.review_weight > self.accept_weight:
            raise ValueError("review_weight must not exceed accept_weight")
        if list(self.score_bands) != sorted(self.score_bands):
            raise ValueError("score_bands must be ascending")
        return self
