"""Typed config of the matcher: link type, blocking rules and comparisons.

Blocking rules and comparisons are data that :mod:`matchers.blocking` and
:mod:`matchers.comparisons` compile to SQL. Column names are free, so the same
mechanism runs the bank's standardized records and the FEBRL benchmark files.
Every setting error is collected into one :class:`mdm.errors.MatchConfigError`
whose message names the setting and the fix.

The defaults live in ``data/config/matching.yaml``; :func:`load_match_config` reads them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mdm.errors import MatchConfigError
from schemas.scoring import ScoringConfig

DEFAULT_MATCH_CONFIG = Path(__file__).resolve().parent.parent / "data" / "config" / "matching.yaml"

_IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"

# ---------------------------------------------------------------- table schemas

CANDIDATE_PAIRS_SCHEMA = pa.schema(
    [
        pa.field("rid_l", pa.int64(), nullable=False),
        pa.field("rid_r", pa.int64(), nullable=False),
        pa.field("rules", pa.list_(pa.string()), nullable=False),
    ]
)
"""Output of blocking: one row per distinct pair, ``rid_l < rid_r``."""

BLOCKING_REPORT_SCHEMA = pa.schema(
    [
        pa.field("rule", pa.string()),
        pa.field("pairs_before_cap", pa.int64()),
        pa.field("pairs", pa.int64()),
        pa.field("new_pairs", pa.int64()),
        pa.field("blocks", pa.int64()),
        pa.field("skipped_blocks", pa.int64()),
        pa.field("skipped_records", pa.int64()),
        pa.field("largest_block", pa.int64()),
        pa.field("max_block_size", pa.int64()),
    ]
)
"""One row per blocking rule (see :class:`matchers.blocking.BlockingReport`)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- blocking keys

KeyFunction = Literal["substr", "left", "right", "lower", "year"]
_KEY_ARITY: dict[str, int] = {"substr": 2, "left": 1, "right": 1, "lower": 0, "year": 0}
_KEY_RE = re.compile(
    r"^\s*(?:(?P<func>[a-z_]+)\s*\(\s*(?P<col>[A-Za-z_]\w*)\s*(?P<args>(?:,\s*-?\d+\s*)*)\)"
    r"|(?P<bare>[A-Za-z_]\w*))\s*$"
)


@dataclass(frozen=True)
class KeyExpr:
    """A parsed blocking key: a column, or a simple function of one column.

    ``substr(col, start, length)`` is 1-based; ``left(col, n)`` / ``right(col, n)`` take the
    first / last ``n`` characters; ``lower(col)``; ``year(col)`` of a date column.
    """

    column: str
    func: KeyFunction | None = None
    args: tuple[int, ...] = ()

    def __str__(self) -> str:
        if self.func is None:
            return self.column
        inner = ", ".join([self.column, *(str(a) for a in self.args)])
        return f"{self.func}({inner})"


def parse_key(text: str) -> KeyExpr:
    """Parse one blocking key; ``ValueError`` says which forms are allowed."""
    m = _KEY_RE.match(text)
    allowed = "a column name, substr(col, start, length), left(col, n), right(col, n), lower(col) or year(col)"
    if m is None:
        raise ValueError(f"blocking key {text!r} is not {allowed}")
    if m.group("bare"):
        return KeyExpr(column=m.group("bare"))
    func = m.group("func")
    if func not in _KEY_ARITY:
        raise ValueError(f"blocking key {text!r}: unknown function {func!r}; use {allowed}")
    args = tuple(int(a) for a in re.findall(r"-?\d+", m.group("args") or ""))
    if len(args) != _KEY_ARITY[func]:
        raise ValueError(f"blocking key {text!r}: {func} takes {_KEY_ARITY[func]} number(s) after the column")
    if any(a < 1 for a in args):
        raise ValueError(f"blocking key {text!r}: positions and lengths start at 1")
    return KeyExpr(column=m.group("col"), func=func, args=args)  # type: ignore[arg-type]


class BlockingRule(_Strict):
    """Candidate pairs are records that agree on every key (a self-join on the keys)."""

    name: str = Field(..., pattern=_IDENT, description="rule name, reported in pairs.rules and the blocking report")
    keys: list[str] = Field(..., min_length=1, description="equality keys: columns or simple derived expressions")
    where: str | None = Field(
        None, description="SQL condition on the record's columns; records failing it are left out"
    )
    explode: list[str] = Field(
        default_factory=list, description="list columns unnested first (one key per element, e.g. phones)"
    )
    unless_both: str | None = Field(
        None,
        description="SQL condition on the record's columns; a pair whose two records both meet it is not produced "
        "(e.g. two valid resident IDs: they differ, so hard evidence keeps them apart anyway)",
    )
    max_block_size: int | None = Field(None, ge=2, description="blocks larger than this are skipped and reported")
    max_pairs: int | None = Field(None, ge=1, description="refuse the rule if it would produce more pairs than this")

    @field_validator("keys")
    @classmethod
    def _keys_parse(cls, keys: list[str]) -> list[str]:
        problems = []
        for k in keys:
            try:
                parse_key(k)
            except ValueError as e:
                problems.append(str(e))
        if problems:
            raise ValueError("; ".join(problems))
        return keys

    def parsed_keys(self) -> list[KeyExpr]:
        return [parse_key(k) for k in self.keys]

    def columns(self) -> list[str]:
        return sorted({k.column for k in self.parsed_keys()} | set(self.explode))


class BlockingConfig(_Strict):
    max_block_size: int = Field(1000, ge=2, description="default cap on block size for every rule")
    max_pairs: int = Field(50_000_000, ge=1, description="default cap on pairs one rule may produce")
    rules: list[BlockingRule] = Field(..., min_length=1, max_length=63)


# ---------------------------------------------------------------- comparison levels


class _Level(_Strict):
    label: str | None = Field(None, description="label in explanations and charts")

    def columns(self) -> list[str]:
        raise NotImplementedError

    def default_label(self) -> str:
        raise NotImplementedError

    def display(self) -> str:
        return self.label or self.default_label()


class _OneColumn(_Level):
    column: str = Field(..., pattern=_IDENT)

    def columns(self) -> list[str]:
        return [self.column]


class ExactLevel(_Level):
    kind: Literal["exact"] = "exact"
    columns_: list[str] = Field(..., alias="columns", min_length=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _one_column(cls, data: Any) -> Any:
        if isinstance(data, dict) and "column" in data and "columns" not in data:
            data = {**data, "columns": [data["column"]]}
            del data["column"]
        return data

    def columns(self) -> list[str]:
        return list(self.columns_)

    def default_label(self) -> str:
        return "same " + "+".join(self.columns_)


class ExactAnyLevel(_OneColumn):
    """Two list columns share at least one element (e.g. any phone in common)."""

    kind: Literal["exact_any"] = "exact_any"

    def default_label(self) -> str:
        return f"{self.column} overlap"


class _Similarity(_OneColumn):
    ascii: bool = Field(
        False,
        description="the column holds ASCII only (IDs, phones): the engine's byte-based built-in may be used",
    )


class LevenshteinLevel(_Similarity):
    kind: Literal["levenshtein_max"] = "levenshtein_max"
    k: int = Field(..., ge=0)

    def default_label(self) -> str:
        return f"{self.column} levenshtein <= {self.k}"


class DamerauLevel(_Similarity):
    kind: Literal["damerau_max"] = "damerau_max"
    k: int = Field(..., ge=0)

    def default_label(self) -> str:
        return f"{self.column} damerau-levenshtein <= {self.k}"


class JaroWinklerLevel(_Similarity):
    kind: Literal["jaro_winkler_min"] = "jaro_winkler_min"
    t: float = Field(..., gt=0.0, le=1.0)

    def default_label(self) -> str:
        return f"{self.column} jaro-winkler >= {self.t}"


class JaccardBigramLevel(_OneColumn):
    kind: Literal["jaccard_bigram_min"] = "jaccard_bigram_min"
    t: float = Field(..., gt=0.0, le=1.0)

    def default_label(self) -> str:
        return f"{self.column} bigram jaccard >= {self.t}"


class DateDiffLevel(_OneColumn):
    kind: Literal["date_diff_days_max"] = "date_diff_days_max"
    days: int = Field(..., ge=0)

    def default_label(self) -> str:
        return f"{self.column} within {self.days} days"


class DateSameYearLevel(_OneColumn):
    kind: Literal["date_same_year"] = "date_same_year"

    def default_label(self) -> str:
        return f"{self.column} same year"


class DateDayMonthSwappedLevel(_OneColumn):
    kind: Literal["date_day_month_swapped"] = "date_day_month_swapped"

    def default_label(self) -> str:
        return f"{self.column} day and month swapped"


class DateDigitEditsLevel(_OneColumn):
    """YYYYMMDD forms of two dates within ``k`` single-digit edits (one digit off: k=1)."""

    kind: Literal["date_digit_edits_max"] = "date_digit_edits_max"
    k: int = Field(1, ge=1)

    def default_label(self) -> str:
        return f"{self.column} within {self.k} digit edit(s)"


class SubstrExactLevel(_OneColumn):
    kind: Literal["substr_exact"] = "substr_exact"
    start: int = Field(..., ge=1, description="1-based first character")
    length: int = Field(..., ge=1)

    def default_label(self) -> str:
        return f"{self.column}[{self.start}:{self.start + self.length - 1}] equal"


class CustomLevel(_Level):
    """A SQL condition over ``l.<column>`` and ``r.<column>``; it must be symmetric in l and r."""

    kind: Literal["custom"] = "custom"
    sql: str = Field(..., min_length=1)
    uses: list[str] = Field(..., min_length=1, description="columns the condition reads (checked against the table)")

    def columns(self) -> list[str]:
        return list(self.uses)

    def default_label(self) -> str:
        return "custom: " + self.sql


class AllOfLevel(_Level):
    kind: Literal["all_of"] = "all_of"
    conditions: list[Level] = Field(..., min_length=1)

    def columns(self) -> list[str]:
        return _unique([c for cond in self.conditions for c in cond.columns()])

    def default_label(self) -> str:
        return " and ".join(c.display() for c in self.conditions)


class AnyOfLevel(_Level):
    kind: Literal["any_of"] = "any_of"
    conditions: list[Level] = Field(..., min_length=1)

    def columns(self) -> list[str]:
        return _unique([c for cond in self.conditions for c in cond.columns()])

    def default_label(self) -> str:
        return " or ".join(c.display() for c in self.conditions)


Level = Annotated[
    ExactLevel
    | ExactAnyLevel
    | LevenshteinLevel
    | DamerauLevel
    | JaroWinklerLevel
    | JaccardBigramLevel
    | DateDiffLevel
    | DateSameYearLevel
    | DateDayMonthSwappedLevel
    | DateDigitEditsLevel
    | SubstrExactLevel
    | CustomLevel
    | AllOfLevel
    | AnyOfLevel,
    Field(discriminator="kind"),
]

AllOfLevel.model_rebuild()
AnyOfLevel.model_rebuild()


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


class Comparison(_Strict):
    """One feature of a pair: ordered levels, closest first.

    The first level gets the highest gamma (``len(levels)``), the last listed level 1, and
    a pair meeting none of them 0 ("else"). Gamma -1 means missing: on either side every
    column in ``missing_if_null`` is null (or an empty list), or ``missing_when`` holds.
    """

    name: str = Field(..., pattern=_IDENT, description="feature name: output column gamma_<name>")
    description: str = ""
    levels: list[Level] = Field(..., min_length=1)
    missing_if_null: list[str] = Field(
        default_factory=list,
        description="missing when a side has all of these null; default: the columns of the first level",
    )
    missing_when: str | None = Field(None, description="extra SQL condition over l./r. that makes the pair missing")
    else_label: str = "else"
    tf_column: str | None = Field(
        None, description="term-frequency adjustment on this column, at the first level that is exact on it"
    )

    def missing_columns(self) -> list[str]:
        return list(self.missing_if_null) or self.levels[0].columns()

    def columns(self) -> list[str]:
        cols = [c for lv in self.levels for c in lv.columns()] + self.missing_columns()
        if self.tf_column:
            cols.append(self.tf_column)
        return _unique(cols)

    def gamma_of(self, index: int) -> int:
        """Gamma of ``levels[index]``."""
        return len(self.levels) - index

    def tf_level(self) -> int | None:
        """Gamma of the level on which ``tf_<name>`` is filled, or None without tf."""
        if self.tf_column is None:
            return None
        for i, lv in enumerate(self.levels):
            if isinstance(lv, ExactLevel) and lv.columns() == [self.tf_column]:
                return self.gamma_of(i)
        return None

    def labels(self) -> list[str]:
        """Labels indexed by gamma (0 = else)."""
        return [self.else_label, *(lv.display() for lv in reversed(self.levels))]


class MatchConfig(_Strict):
    link_type: Literal["dedupe", "link_only"] = Field(
        "dedupe", description="dedupe: all pairs; link_only: only pairs across different source_column values"
    )
    source_column: str | None = Field(None, pattern=_IDENT, description="column naming the file/system of a record")
    blocking: BlockingConfig
    comparisons: list[Comparison] = Field(..., min_length=1)
    scoring: ScoringConfig = ScoringConfig()
    compare_batch_pairs: int = Field(
        2_000_000,
        ge=1_000,
        description=(
            "pairs compared per engine query: each batch is joined to the records on its own, so the "
            "join's working memory is bounded by the batch instead of growing with every candidate pair"
        ),
    )

    def comparison(self, name: str) -> Comparison:
        for c in self.comparisons:
            if c.name == name:
                return c
        raise KeyError(name)


# ---------------------------------------------------------------- loading and semantic checks


def _semantic_problems(cfg: MatchConfig) -> list[str]:
    problems: list[str] = []
    if cfg.link_type == "link_only" and not cfg.source_column:
        problems.append("source_column: link_type link_only needs source_column (the column that names the file)")
    seen: set[str] = set()
    for rule in cfg.blocking.rules:
        if rule.name in seen:
            problems.append(f"blocking.rules: rule name {rule.name!r} appears twice; give each rule its own name")
        seen.add(rule.name)
    seen = set()
    for comp in cfg.comparisons:
        if comp.name in seen:
            problems.append(f"comparisons: name {comp.name!r} appears twice; give each comparison its own name")
        seen.add(comp.name)
        if comp.tf_column is not None and comp.tf_level() is None:
            problems.append(
                f"comparisons.{comp.name}.tf_column: no level is 'exact' on exactly [{comp.tf_column}]; "
                "add such a level or remove tf_column"
            )
    return problems


def _format(origin: str, err: ValidationError | None, extra: list[str]) -> str:
    lines: list[str] = []
    if err is not None:
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"])
            lines.append(f"  - {loc}: {e['msg']}")
    lines.extend(f"  - {p}" for p in extra)
    return f"{origin}: invalid matching configuration ({len(lines)} problem(s)):\n" + "\n".join(lines)


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge recursively; any other value (lists included) replaces the default."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise MatchConfigError(f"matching config {path} not found; pass an existing file") from e
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise MatchConfigError(f"cannot read matching config {path}: {e}") from e
    if not isinstance(data, dict):
        raise MatchConfigError(f"{path} must hold a YAML mapping at the top level")
    return data


def validate_match_config(data: Mapping[str, Any], origin: str = "matching config") -> MatchConfig:
    """Validate a mapping; every problem is collected into one :class:`MatchConfigError`."""
    try:
        cfg = MatchConfig.model_validate(dict(data))
    except ValidationError as e:
        raise MatchConfigError(_format(origin, e, [])) from e
    problems = _semantic_problems(cfg)
    if problems:
        raise MatchConfigError(_format(origin, None, problems))
    return cfg


def load_match_config(source: str | Path | Mapping[str, Any] | None = None) -> MatchConfig:
    """Load the matcher config.

    ``None``: the defaults (``data/config/matching.yaml``). A path: a complete config file.
    A mapping: overrides merged onto the defaults (nested mappings merge; lists such as
    ``blocking.rules`` or ``comparisons`` replace the default list).
    """
    if source is None:
        return validate_match_config(_read_yaml(DEFAULT_MATCH_CONFIG), str(DEFAULT_MATCH_CONFIG))
    if isinstance(source, str | Path):
        path = Path(source)
        return validate_match_config(_read_yaml(path), str(path))
    merged = _merge(_read_yaml(DEFAULT_MATCH_CONFIG), source)
    return validate_match_config(merged, "matching config (defaults + overrides)")
