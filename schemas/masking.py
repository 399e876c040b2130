"""Typed masking configuration: which column holds which class of personal data, and how it is shown.

Every column an analyst can see must be classified here. A column is either

* a **PII column** (``columns``): shown masked, with a keyed token beside it when its
  class is in ``token_classes``;
* a **token-only column** (class ``token_only``): the raw value is dropped, only its token is kept;
* a **dropped column** (class ``drop``): never leaves the master (``quarantine.raw_text``, ``id_key``);
* a **pass-through column** (``passthrough`` or a glob in ``passthrough_patterns``): non-personal.

Anything else is dropped from the analyst mart by default, so a new PII column added to the
master never leaks by accident. The run config's ``masking:`` block overrides these defaults
(:func:`masking_config_from_overrides`).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mdm.errors import ConfigError

__all__ = [
    "DEFAULT_MASKING",
    "PII_CLASSES",
    "TOKEN_CLASSES",
    "ColumnClass",
    "MaskPattern",
    "MaskingConfig",
    "PiiClass",
    "masking_config_from_overrides",
]

PiiClass = Literal["id_number", "phone", "mobile", "landline", "name", "name_latin", "address", "email"]
ColumnClass = Literal[
    "id_number", "phone", "mobile", "landline", "name", "name_latin", "address", "email", "token_only", "drop"
]
PII_CLASSES: tuple[str, ...] = ("id_number", "phone", "mobile", "landline", "name", "name_latin", "address", "email")
TOKEN_CLASSES: tuple[str, ...] = (
    "id_number",
    "phone",
    "mobile",
    "landline",
    "name",
    "name_latin",
    "email",
    "token_only",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MaskPattern(_Strict):
    """Keep ``keep_first`` leading and ``keep_last`` trailing characters, mask the rest.

    At least ``min_masked`` characters are always masked: on short values the kept ends shrink
    (a 9-character passport number never shows 6 + 4 characters).
    """

    keep_first: int = Field(..., ge=0, le=8)
    keep_last: int = Field(..., ge=0, le=8)
    min_masked: int = Field(default=4, ge=1, le=16)


def _default_columns() -> dict[str, ColumnClass]:
    cols: dict[str, ColumnClass] = {
        # golden_customer
        "id_number": "id_number",
        "all_id_numbers": "id_number",
        "mobile": "mobile",
        "phone": "phone",
        "all_phones": "phone",
        "phones": "phone",
        "landline": "landline",
        "name": "name",
        "name_norm": "name",
        "all_names": "name",
        "name_pinyin": "name_latin",
        "name_latin": "name_latin",
        "name_latin_key": "name_latin",
        "name_fuzzy": "drop",
        "email": "email",
        "all_emails": "email",
        "address": "address",
        "address_norm": "address",
        # source_records (raw beside standardized values)
        "id_number_raw": "id_number",
        "mobile_raw": "phone",
        "phone_raw": "phone",
        "email_raw": "email",
        "address_raw": "address",
        "customer_no": "token_only",
        "id_key": "drop",
        "road": "drop",
        "house_no": "drop",
        "building": "drop",
        "unit": "drop",
        "room": "drop",
        "birth_date_raw": "drop",
        "updated_at_raw": "drop",
        # quarantine
        "raw_text": "drop",
        "detail": "drop",
    }
    return cols


_PASSTHROUGH: tuple[str, ...] = (
    "golden_id",
    "related_golden_id",
    "merged_into",
    "status",
    "record_key",
    "record_key_l",
    "record_key_r",
    "source_system",
    "source_record_id",
    "source_record_ids",
    "source_file",
    "source_line",
    "source_trust",
    "link_type",
    "link_weight",
    "match_weight",
    "match_probability",
    "decision",
    "rules",
    "id_type",
    "id_type_raw",
    "id_type_declared",
    "id_valid",
    "id_placeholder",
    "gender",
    "gender_raw",
    "gender_declared",
    "birth_date",
    "id_birth_date",
    "id_gender",
    "name_script",
    "province",
    "city",
    "district",
    "adcode",
    "updated_at",
    "n_records",
    "systems",
    "quality_flags",
    "first_seen_run",
    "first_seen_date",
    "last_seen_run",
    "last_seen_date",
    "created_run_id",
    "retired_run_id",
    "issued_seq",
    "event_id",
    "run_id",
    "event_type",
    "reason",
    "business_date",
    "started_at",
    "finished_at",
    "rid",
)


class MaskingConfig(_Strict):
    """Classification of every analyst-visible column and the mask / token rules (see module doc)."""

    columns: dict[str, ColumnClass] = Field(default_factory=_default_columns)
    passthrough: tuple[str, ...] = _PASSTHROUGH
    passthrough_patterns: tuple[str, ...] = (
        "*_source_system",
        "*_source_record_id",
        "*_updated_at",
        "n_*",
        "gamma_*",
        "bf_*",
        "tf_*",
        "rows_*",
        "duration_*",
    )
    id_number: MaskPattern = MaskPattern(keep_first=6, keep_last=4, min_masked=8)
    mobile: MaskPattern = MaskPattern(keep_first=3, keep_last=4, min_masked=4)
    other_phone: MaskPattern = MaskPattern(keep_first=0, keep_last=4, min_masked=4)
    mask_char: str = Field(default="*", min_length=1, max_length=1)
    name_keep: int = Field(default=1, ge=0, le=2, description="leading characters of a name shown before one mask char")
    email_keep: int = Field(default=1, ge=0, le=3, description="leading characters of the local part shown")
    address_keep: Literal["district", "city", "province", "none"] = "district"
    token_classes: tuple[str, ...] = ("id_number", "phone", "mobile", "landline", "name", "email", "token_only")
    token_hex_chars: int = Field(default=32, ge=16, le=64, description="hex characters kept of the HMAC-SHA256")
    token_suffix: str = "_token"
    list_token_suffix: str = "_tokens"
    masked_suffix: str = Field(default="", description="suffix of masked columns in the mart; '' keeps the column name")

    @field_validator("token_classes")
    @classmethod
    def _known_token_classes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(TOKEN_CLASSES))
        if unknown:
            raise ValueError(f"unknown token class(es) {unknown}; use some of {list(TOKEN_CLASSES)}")
        return value

    def classify(self, column: str) -> ColumnClass | Literal["passthrough"] | None:
        """The class of ``column``: a PII class, ``token_only``, ``drop``, ``passthrough`` or None (unclassified)."""
        if column in self.columns:
            return self.columns[column]
        if column in self.passthrough or any(fnmatchcase(column, p) for p in self.passthrough_patterns):
            return "passthrough"
        return None

    def token_column(self, column: str, is_list: bool) -> str:
        """Name of the token column derived from ``column``."""
        return column + (self.list_token_suffix if is_list else self.token_suffix)

    def wants_token(self, cls: str) -> bool:
        return cls in self.token_classes


DEFAULT_MASKING = MaskingConfig()


def masking_config_from_overrides(overrides: dict[str, Any] | None) -> MaskingConfig:
    """The default config with the run config's ``masking:`` block applied.

    ``columns`` and ``passthrough`` entries are merged into the defaults (a column can be
    reclassified, e.g. ``{columns: {nickname: name}}``); every other key replaces its default.
    """
    if not overrides:
        return DEFAULT_MASKING
    data = dict(overrides)
    merged: dict[str, Any] = {}
    if "columns" in data:
        cols: dict[str, Any] = dict(DEFAULT_MASKING.columns)
        cols.update(data.pop("columns") or {})
        merged["columns"] = cols
    if "passthrough" in data:
        merged["passthrough"] = tuple(dict.fromkeys([*DEFAULT_MASKING.passthrough, *(data.pop("passthrough") or [])]))
    merged.update(data)
    try:
        return MaskingConfig.model_validate(merged)
    except ValidationError as e:
        problems = "; ".join(f"masking.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"invalid masking config: {problems}") from e
