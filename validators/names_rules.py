"""Typed rules for personal-name normalization: reference tables, fuzzy-pinyin folds, placeholders.

Every table lives in ``data/reference/`` as a small TSV file; the ``*_overrides`` fields add or replace
rows without editing the files (e.g. a bank's own surname readings).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_REFERENCE_DIR = Path(__file__).resolve().parent.parent / "data" / "reference"

# Reason codes written to ``name_flags`` (and from there to ``quality_flags``).
NAME_MISSING = "NAME_MISSING"
NAME_PLACEHOLDER = "NAME_PLACEHOLDER"
NAME_TRADITIONAL_FOLDED = "NAME_TRADITIONAL_FOLDED"
NAME_SPACES_REMOVED = "NAME_SPACES_REMOVED"
NAME_JUNK_REMOVED = "NAME_JUNK_REMOVED"
NAME_UNREADABLE_CHAR = "NAME_UNREADABLE_CHAR"
NAME_MIDDLE_DOT_FOLDED = "NAME_MIDDLE_DOT_FOLDED"
NAME_FULLWIDTH = "NAME_FULLWIDTH"
NAME_PINYIN_PARTIAL = "NAME_PINYIN_PARTIAL"
NAME_FROM_LATIN = "NAME_FROM_LATIN"

_PLACEHOLDERS = frozenset(
    {"无", "不详", "未知", "匿名", "测试", "客户", "null", "none", "n/a", "na", "nil", "unknown", "test", "xxx"}
)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FuzzyPinyinRules(_Frozen):
    """Dialect mergers folded by ``name_fuzzy``, applied to each syllable (first matching rule of each kind)."""

    initial_folds: tuple[tuple[str, str], ...] = Field(
        default=(("zh", "z"), ("ch", "c"), ("sh", "s"), ("n", "l"), ("h", "f")),
        description="(prefix, replacement) at the start of a syllable: z/zh, c/ch, s/sh, n/l, h/f",
    )
    final_folds: tuple[tuple[str, str], ...] = Field(
        default=(("ang", "an"), ("eng", "en"), ("ing", "in")),
        description="(suffix, replacement) at the end of a syllable: -n/-ng (iang and uang fold too)",
    )


class NameRules(_Frozen):
    """Where the name tables live and the rules that interpret them."""

    reference_dir: Path = Field(default=DEFAULT_REFERENCE_DIR, description="folder of the reference tables")
    surnames_file: str = Field(default="surnames.tsv", description="surname<TAB>reading; compound surnames included")
    romanized_surnames_file: str = Field(default="romanized_surnames.tsv", description="spelling<TAB>pinyin")
    han_variants_file: str = Field(default="han_variants.tsv", description="from<TAB>to character folds after t2s")
    pinyin_syllables_file: str = Field(default="pinyin_syllables.txt", description="pinyin syllables")
    surname_reading_overrides: dict[str, str] = Field(default_factory=dict, description="surname -> pinyin")
    romanized_surname_overrides: dict[str, str] = Field(default_factory=dict, description="spelling -> pinyin")
    han_variant_overrides: dict[str, str] = Field(default_factory=dict, description="character -> character")
    transliterated_min_len: int = Field(
        default=5,
        ge=2,
        description="Han names this long (middle dots not counted) that do not start with a compound surname are "
        "transliterations (阿依古丽·买买提): no surname, every key is one token",
    )
    placeholder_names: frozenset[str] = Field(default=_PLACEHOLDERS, description="lowercased names that mean 'no name'")
    max_name_chars: int = Field(default=128, ge=8, description="longer inputs are cut to this many characters first")
    fuzzy: FuzzyPinyinRules = FuzzyPinyinRules()

    def path(self, file_name: str) -> Path:
        return self.reference_dir / file_name
