"""Typed config of scoring, decisions and clustering (extended by the scoring module's owner)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ScoringConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    accept_weight: float = Field(12.0, description="match weight (log2) at or above which a pair links automatically")
    review_weight: float = Field(4.0, description="pairs between review_weight and accept_weight go to review")
