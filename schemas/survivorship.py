"""Typed config of survivorship: which source value becomes the golden value, per attribute.

An attribute rule names the golden columns it fills (copied together from one winning
record, so an address's province and adcode never come from different records), how a
candidate's validity is scored, and the ordered criteria that rank candidates:

* ``validity``: the rule's validity score (higher wins), minus a penalty for listed flags;
* ``trust``: the source's trust rank (``source_trust``, or the override below);
* ``recency``: the most recent ``updated_at``;
* ``frequency``: the value held by most of the golden ID's records.

The last tie-breaker is always the record key, so the result never depends on row order.
The run config's ``survivorship:`` block overrides these defaults.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mdm.errors import ConfigError
from schemas.enums import IdType

Criterion = Literal["validity", "trust", "recency", "frequency"]
Validity = Literal["non_null", "id_document", "phone", "address", "han_name"]

__all__ = ["AttributeRule", "Criterion", "ListRule", "SurvivorshipConfig", "Validity", "load_survivorship_config"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AttributeRule(_Strict):
    """How one golden attribute (a group of columns taken from one record) survives."""

    columns: tuple[str, ...] = Field(
        ..., min_length=1, description="golden columns copied from the winning record; the first must be non-null"
    )
    validity: Validity = Field(default="non_null", description="how a candidate's validity is scored (higher wins)")
    penalty_flags: tuple[str, ...] = Field(
        default=(), description="quality flags that make a candidate lose to an otherwise equally valid one"
    )
    order: tuple[Criterion, ...] = Field(
        default=("validity", "trust", "recency"), min_length=1, description="ranking criteria, most important first"
    )

    @field_validator("order")
    @classmethod
    def _unique(cls, v: tuple[Criterion, ...]) -> tuple[Criterion, ...]:
        if len(set(v)) != len(v):
            raise ValueError("each criterion may appear once in order")
        return v


class ListRule(_Strict):
    """A multi-valued golden attribute: every distinct value over the golden ID's records, sorted."""

    columns: tuple[str, ...] = Field(..., min_length=1, description="scalar or list columns whose values are collected")
    require: str | None = Field(default=None, description="bool column that must be true for a value to count")
    exclude: str | None = Field(default=None, description="bool column that must not be true for a value to count")
    prefix_column: str | None = Field(default=None, description="written before each value as PREFIX:value")


def _default_attributes() -> dict[str, AttributeRule]:
    return {
        "name": AttributeRule(
            columns=("name_norm", "name", "name_pinyin", "name_script"),
            validity="han_name",
            penalty_flags=("NAME_MISSING",),
            order=("validity", "trust", "recency", "frequency"),
        ),
        "id": AttributeRule(
            columns=("id_number", "id_type", "id_valid"),
            validity="id_document",
            penalty_flags=("ID_LEGACY_UPGRADED", "ID_CENTENARIAN_LEGACY", "ID_TYPE_CORRECTED"),
            order=("validity", "trust", "recency", "frequency"),
        ),
        "gender": AttributeRule(
            columns=("gender",),
            penalty_flags=("GENDER_CONFLICTS_WITH_ID",),
            order=("validity", "frequency", "trust", "recency"),
        ),
        "birth_date": AttributeRule(
            columns=("birth_date",),
            penalty_flags=("DOB_CONFLICTS_WITH_ID", "DOB_INVALID"),
            order=("validity", "frequency", "trust", "recency"),
        ),
        "mobile": AttributeRule(columns=("mobile",), order=("validity", "recency", "trust", "frequency")),
        "phone": AttributeRule(columns=("phone",), validity="phone", order=("validity", "recency", "trust")),
        "email": AttributeRule(
            columns=("email",), penalty_flags=("EMAIL_INVALID",), order=("validity", "recency", "trust")
        ),
        "address": AttributeRule(
            columns=("address_norm", "province", "city", "district", "adcode"),
            validity="address",
            penalty_flags=("ADDRESS_AMBIGUOUS",),
            order=("validity", "recency", "trust"),
        ),
    }


def _default_lists() -> dict[str, ListRule]:
    return {
        "all_phones": ListRule(columns=("mobile", "phones")),
        "all_id_numbers": ListRule(
            columns=("id_number",), require="id_valid", exclude="id_placeholder", prefix_column="id_type"
        ),
        "all_names": ListRule(columns=("name_norm",)),
        "all_emails": ListRule(columns=("email",)),
    }


class SurvivorshipConfig(_Strict):
    """Survivorship rules for every golden attribute and multi-valued list."""

    attributes: dict[str, AttributeRule] = Field(default_factory=_default_attributes)
    lists: dict[str, ListRule] = Field(default_factory=_default_lists)
    id_type_preference: tuple[IdType, ...] = Field(
        default=(
            IdType.RESIDENT_ID,
            IdType.HMT_RESIDENCE_PERMIT,
            IdType.FOREIGN_PR_CARD,
            IdType.PASSPORT_CN,
            IdType.HK_MACAU_PERMIT,
            IdType.TAIWAN_PERMIT,
            IdType.PASSPORT_FOREIGN,
            IdType.MILITARY_ID,
        ),
        description="valid documents of an earlier type beat later ones; types not listed rank last",
    )
    source_trust: dict[str, int] = Field(
        default_factory=dict, description="trust rank per source system, overriding the records' source_trust"
    )
    flag_columns: tuple[str, ...] = Field(
        default=("quality_flags", "id_flags"), description="list columns of reason codes (union = golden flags)"
    )

    @field_validator("attributes")
    @classmethod
    def _no_overlap(cls, v: dict[str, AttributeRule]) -> dict[str, AttributeRule]:
        seen: dict[str, str] = {}
        for name, rule in v.items():
            for col in rule.columns:
                if col in seen:
                    raise ValueError(f"column {col!r} is filled by both {seen[col]!r} and {name!r}")
                seen[col] = name
        return v


def load_survivorship_config(overrides: dict[str, Any] | None) -> SurvivorshipConfig:
    """The defaults updated with the run config's ``survivorship:`` block (attributes replace by name)."""
    data = dict(overrides or {})
    base = SurvivorshipConfig()
    try:
        if "attributes" in data:
            merged = {k: r.model_dump() for k, r in base.attributes.items()}
            merged.update(data["attributes"] or {})
            data["attributes"] = {k: v for k, v in merged.items() if v is not None}
        if "lists" in data:
            merged_l = {k: r.model_dump() for k, r in base.lists.items()}
            merged_l.update(data["lists"] or {})
            data["lists"] = {k: v for k, v in merged_l.items() if v is not None}
        return SurvivorshipConfig.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"survivorship.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"invalid survivorship config: {problems}") from e
