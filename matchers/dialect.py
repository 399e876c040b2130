"""SQL that differs between engines, in one place.

Blocking and comparisons build their SQL from these methods only. A new engine
(Spark, ...) subclasses :class:`Dialect`; everything else stays the same.
Character-level similarity on non-ASCII text comes from the project's own vectorized
functions (:mod:`matchers.similarity`), which every engine registers under the names in
:data:`UDF_NAMES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from schemas.matching import KeyExpr

UDF_NAMES: dict[str, str] = {
    "levenshtein": "mdm_levenshtein",
    "damerau": "mdm_damerau_levenshtein",
    "jaro_winkler": "mdm_jaro_winkler",
    "jaccard_bigram": "mdm_jaccard_bigram",
}
"""Character-level similarity functions every engine registers (see :mod:`matchers.similarity`)."""


class Dialect(ABC):
    """Engine-specific SQL fragments."""

    name: str

    def quote(self, identifier: str) -> str:
        return '"' + identifier.replace('"', '""') + '"'

    def col(self, alias: str | None, column: str) -> str:
        return f"{alias}.{self.quote(column)}" if alias else self.quote(column)

    # -- blocking -------------------------------------------------------------
    @abstractmethod
    def key(self, key: KeyExpr, alias: str | None = None, *, text: bool = True) -> str:
        """A blocking key expression, cast to text so keys of any type can be compared.

        ``text=False``: the key is a bare column that is not text (a date): it is hashed as it is.
        Formatting a million dates as text only to hash them took as long as the rest of the rule.
        """

    @abstractmethod
    def hash_key(self, parts_sql: list[str]) -> str:
        """One 64-bit integer hash of several key expressions (blocks are joined on it, not on text)."""

    @abstractmethod
    def unnest(self, column_sql: str) -> str:
        """Select-list expression that turns one list value into one row per element."""

    def semi_join(self) -> str:
        """Keyword of a left semi join (rows of the left side that have a match)."""
        return "SEMI JOIN"

    @abstractmethod
    def bit_or_of_shift(self, bit_sql: str) -> str:
        """Aggregate: bitwise OR of ``1 << bit`` over the group (a BIGINT mask of rule indexes)."""

    # -- comparisons ----------------------------------------------------------
    @abstractmethod
    def is_empty_list(self, column_sql: str) -> str: ...

    @abstractmethod
    def lists_overlap(self, left_sql: str, right_sql: str) -> str: ...

    @abstractmethod
    def levenshtein(self, left_sql: str, right_sql: str, ascii: bool) -> str: ...

    @abstractmethod
    def damerau(self, left_sql: str, right_sql: str, ascii: bool) -> str: ...

    @abstractmethod
    def jaro_winkler(self, left_sql: str, right_sql: str, ascii: bool) -> str: ...

    def jaccard_bigram(self, left_sql: str, right_sql: str) -> str:
        return f"{UDF_NAMES['jaccard_bigram']}({left_sql}, {right_sql})"

    @abstractmethod
    def substr(self, column_sql: str, start: int, length: int) -> str: ...

    def length(self, sql: str) -> str:
        """Length in characters (code points), as the similarity functions count them."""
        return f"length({sql})"

    def left(self, sql: str, n_sql: str) -> str:
        """The first ``n_sql`` characters (``n_sql`` >= 0)."""
        return f"left({sql}, {n_sql})"

    def right(self, sql: str, n_sql: str) -> str:
        """The last ``n_sql`` characters (``n_sql`` >= 0)."""
        return f"right({sql}, {n_sql})"

    def half_floor(self, sql: str) -> str:
        """Integer ``floor(x / 2)`` of an integer expression."""
        return f"CAST(floor(({sql}) / 2) AS INT)"

    @abstractmethod
    def date_diff_days(self, left_sql: str, right_sql: str) -> str:
        """Absolute difference in days between two dates."""

    @abstractmethod
    def year(self, date_sql: str) -> str: ...

    @abstractmethod
    def month(self, date_sql: str) -> str: ...

    @abstractmethod
    def day(self, date_sql: str) -> str: ...

    @abstractmethod
    def date_digits(self, date_sql: str) -> str:
        """The date as an 8-character YYYYMMDD string."""

    def int8(self, sql: str) -> str:
        return f"CAST({sql} AS TINYINT)"

    def float64(self, sql: str) -> str:
        return f"CAST({sql} AS DOUBLE)"


class DuckDBDialect(Dialect):
    name = "duckdb"

    def key(self, key: KeyExpr, alias: str | None = None, *, text: bool = True) -> str:
        c = self.col(alias, key.column)
        if key.func is None:
            return f"CAST({c} AS VARCHAR)" if text else c
        if key.func == "substr":
            return f"substr(CAST({c} AS VARCHAR), {key.args[0]}, {key.args[1]})"
        if key.func == "left":
            return f"left(CAST({c} AS VARCHAR), {key.args[0]})"
        if key.func == "right":
            return f"right(CAST({c} AS VARCHAR), {key.args[0]})"
        if key.func == "lower":
            return f"lower(CAST({c} AS VARCHAR))"
        if key.func == "year":
            return f"CAST(year({c}) AS VARCHAR)"
        raise ValueError(f"unknown key function {key.func}")

    def hash_key(self, parts_sql: list[str]) -> str:
        return f"hash({', '.join(parts_sql)})"

    def unnest(self, column_sql: str) -> str:
        return f"unnest({column_sql})"

    def bit_or_of_shift(self, bit_sql: str) -> str:
        return f"bit_or(CAST(1 AS BIGINT) << {bit_sql})"

    def is_empty_list(self, column_sql: str) -> str:
        return f"(len({column_sql}) = 0)"

    def lists_overlap(self, left_sql: str, right_sql: str) -> str:
        return f"list_has_any({left_sql}, {right_sql})"

    def levenshtein(self, left_sql: str, right_sql: str, ascii: bool) -> str:
        fn = "levenshtein" if ascii else UDF_NAMES["levenshtein"]
        return f"{fn}({left_sql}, {right_sql})"

    def damerau(self, left_sql: str, right_sql: str, ascii: bool) -> str:
        # DuckDB's damerau_levenshtein is about 3x slower than the rapidfuzz function even on ASCII
        return f"{UDF_NAMES['damerau']}({left_sql}, {right_sql})"

    def jaro_winkler(self, left_sql: str, right_sql: str, ascii: bool) -> str:
        fn = "jaro_winkler_similarity" if ascii else UDF_NAMES["jaro_winkler"]
        return f"{fn}({left_sql}, {right_sql})"

    def substr(self, column_sql: str, start: int, length: int) -> str:
        return f"substr(CAST({column_sql} AS VARCHAR), {start}, {length})"

    def half_floor(self, sql: str) -> str:
        return f"(({sql}) // 2)"

    def date_diff_days(self, left_sql: str, right_sql: str) -> str:
        return f"abs(date_diff('day', {left_sql}, {right_sql}))"

    def year(self, date_sql: str) -> str:
        return f"year({date_sql})"

    def month(self, date_sql: str) -> str:
        return f"month({date_sql})"

    def day(self, date_sql: str) -> str:
        return f"day({date_sql})"

    def date_digits(self, date_sql: str) -> str:
        return f"strftime({date_sql}, '%Y%m%d')"
