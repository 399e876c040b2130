"""The sources file: which extracts the nightly run reads and how they map onto the canonical record.

Adding a system (e.g. wealth management) is a new entry in this file, not a code change.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mdm.errors import ConfigError
from schemas.enums import IdType

CANONICAL_TEXT_FIELDS: tuple[str, ...] = (
    "source_record_id",
    "customer_no",
    "name",
    "name_latin",
    "id_type_raw",
    "id_number_raw",
    "gender_raw",
    "birth_date_raw",
    "mobile_raw",
    "phone_raw",
    "address_raw",
    "email_raw",
    "updated_at_raw",
)
REQUIRED_MAPPED_FIELDS: tuple[str, ...] = ("source_record_id", "name")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DelimitedFormat(_Strict):
    kind: Literal["delimited"] = "delimited"
    encoding: str = Field("utf-8", description="gb18030, gbk, utf-8, utf-8-sig, ...")
    delimiter: str = ","
    quotechar: str | None = '"'
    header: bool = True
    columns: list[str] | None = Field(None, description="column names when the file has no header")
    max_field_bytes: int = Field(65536, gt=0, description="longer fields quarantine the row")
    max_record_lines: int = Field(
        64, ge=1, description="physical lines one quoted record may span; more means a broken quote"
    )
    max_undecodable_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="share of data lines that may fail to decode before the whole file is refused",
    )
    check_encoding: bool = Field(
        True, description="refuse a file whose first MiB is plainly UTF-8 while the encoding says otherwise"
    )

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, v: str) -> str:
        if len(v) != 1:
            raise ValueError("delimiter must be exactly one character")
        return v

    @field_validator("encoding")
    @classmethod
    def _known_codec(cls, v: str) -> str:
        try:
            name = codecs.lookup(v).name
        except LookupError:
            raise ValueError(f"unknown encoding {v!r}; use e.g. gb18030, gbk, utf-8 or utf-8-sig") from None
        if name.startswith(("utf-16", "utf-32")):
            raise ValueError(f"encoding {v!r} is not ASCII-compatible; re-export the file as utf-8 or gb18030")
        return v


class ParquetFormat(_Strict):
    kind: Literal["parquet"] = "parquet"


class SqlFormat(_Strict):
    kind: Literal["sql"] = "sql"
    url_env: str = Field(..., description="environment variable holding the SQLAlchemy database URL")
    query: str


SourceFormat = Annotated[DelimitedFormat | ParquetFormat | SqlFormat, Field(discriminator="kind")]


class CodeTables(_Strict):
    id_type: dict[str, IdType] = Field(default_factory=dict)
    gender: dict[str, Literal["M", "F"]] = Field(default_factory=dict)


class SourceConfig(_Strict):
    system: str = Field(..., pattern=r"^[a-z][a-z0-9_]{0,31}$")
    location: str | None = Field(None, description="path or glob, relative to the sources file's base_dir")
    format: SourceFormat
    columns: dict[str, str] = Field(..., description="canonical field -> source column")
    code_tables: CodeTables = Field(default_factory=CodeTables)
    date_formats: list[str] = Field(default_factory=lambda: ["%Y%m%d", "%Y-%m-%d"])
    trust: int = Field(50, ge=0, le=100, description="survivorship trust rank, higher wins")
    required: bool = Field(True, description="a missing or failed extract fails the run")

    @model_validator(mode="after")
    def _check(self) -> SourceConfig:
        unknown = sorted(set(self.columns) - set(CANONICAL_TEXT_FIELDS))
        if unknown:
            raise ValueError(f"unknown canonical fields {unknown}; allowed: {list(CANONICAL_TEXT_FIELDS)}")
        missing = [f for f in REQUIRED_MAPPED_FIELDS if f not in self.columns]
        if missing:
            raise ValueError(f"columns must map {missing}")
        if self.format.kind != "sql" and not self.location:
            raise ValueError("location is required for file sources")
        return self


class QualityThresholds(_Strict):
    min_valid_id_share: float = Field(0.5, ge=0, le=1)
    min_parseable_date_share: float = Field(0.5, ge=0, le=1)
    row_count_band: float = Field(0.5, ge=0, description="allowed relative change of row count vs the previous run")
    min_rows: int = Field(1, ge=0)


class SourcesFile(_Strict):
    base_dir: str = Field(".", description="folder that source locations are relative to; reads outside it are refused")
    sources: list[SourceConfig]
    quality: QualityThresholds = Field(default_factory=lambda: QualityThresholds.model_validate({}))
    carry_forward: list[str] = Field(
        default_factory=list,
        description="systems whose last good extract is reused when tonight's fails its gates",
    )

    @model_validator(mode="after")
    def _unique(self) -> SourcesFile:
        names = [s.system for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate source systems {dupes}")
        unknown = sorted(set(self.carry_forward) - set(names))
        if unknown:
            raise ValueError(f"carry_forward names unknown systems {unknown}")
        return self


def format_validation_error(path: Path | str, err: ValidationError) -> str:
    lines = [f"{path}: invalid configuration ({err.error_count()} problem(s)):"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        lines.append(f"  - {loc}: {e['msg']}")
    return "\n".join(lines)


def load_yaml(path: Path) -> dict[str, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(f"config file {path} not found; pass --config with an existing file") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a YAML mapping at the top level")
    return data
