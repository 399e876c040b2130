"""Comparison vectors: one gamma level per comparison for every candidate pair.

Each comparison in the config compiles to one ``CASE WHEN`` over the two records of a
pair (``l`` and ``r``): missing first (-1), then the listed levels closest first
(highest gamma), else 0. Term frequencies of the agreeing value come from one
``GROUP BY`` per tf column. All of it runs as one query in the engine; character-level
similarity is an engine-registered vectorized function (see :mod:`matchers.dialect`).
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from matchers.dialect import Dialect
from matchers.engine import Engine, EngineError
from mdm.errors import MatchConfigError
from schemas.matching import (
    AllOfLevel,
    AnyOfLevel,
    Comparison,
    CustomLevel,
    DamerauLevel,
    DateDayMonthSwappedLevel,
    DateDiffLevel,
    DateDigitEditsLevel,
    DateSameYearLevel,
    ExactAnyLevel,
    ExactLevel,
    JaccardBigramLevel,
    JaroWinklerLevel,
    Level,
    LevenshteinLevel,
    MatchConfig,
    SubstrExactLevel,
)

log = logging.getLogger(__name__)

_counter = itertools.count()
_PAIR = "__mdm_pair"

_DATE_KINDS = (DateDiffLevel, DateSameYearLevel, DateDayMonthSwappedLevel, DateDigitEditsLevel)
_TEXT_KINDS = (LevenshteinLevel, DamerauLevel, JaroWinklerLevel, JaccardBigramLevel)


def comparison_level_labels(config: MatchConfig) -> dict[str, list[str]]:
    """Labels of every comparison's levels, indexed by gamma (index 0 = else)."""
    return {c.name: c.labels() for c in config.comparisons}


def edit_guard(left: str, right: str, k: int, d: Dialect) -> str:
    """A cheap condition every pair within edit distance ``k`` meets (checked before the distance).

    The lengths differ by at most ``k``. For ``k == 1`` the values also share their first or
    their last ``(shorter length - 2) // 2`` characters: one substitution, insertion,
    deletion or adjacent transposition leaves everything before it and everything after it
    intact, and the two stretches together hold at least ``shorter length - 2`` characters.
    Far pairs (most random pairs, most candidates) then never reach the distance function.
    """
    len_l, len_r = d.length(left), d.length(right)
    guard = f"abs({len_l} - {len_r}) <= {k}"
    if k == 1:
        h = f"greatest({d.half_floor(f'least({len_l}, {len_r}) - 2')}, 0)"
        guard += f" AND ({d.left(left, h)} = {d.left(right, h)} OR {d.right(left, h)} = {d.right(right, h)})"
    return f"({guard})"


def level_sql(level: Level, d: Dialect) -> str:
    """SQL condition (over aliases ``l`` and ``r``) that is true when a pair is on ``level``."""

    def lr(column: str) -> tuple[str, str]:
        return d.col("l", column), d.col("r", column)

    if isinstance(level, ExactLevel):
        return "(" + " AND ".join("{} = {}".format(*lr(c)) for c in level.columns()) + ")"
    if isinstance(level, ExactAnyLevel):
        return d.lists_overlap(*lr(level.column))
    if isinstance(level, LevenshteinLevel | DamerauLevel):
        left, right = lr(level.column)
        dist = (d.levenshtein if isinstance(level, LevenshteinLevel) else d.damerau)(left, right, ascii=level.ascii)
        if not level.ascii:  # short names: the guard would cost more than it saves
            return f"({dist} <= {level.k})"
        return f"({edit_guard(left, right, level.k, d)} AND {dist} <= {level.k})"
    if isinstance(level, JaroWinklerLevel):
        return f"({d.jaro_winkler(*lr(level.column), ascii=level.ascii)} >= {level.t!r})"
    if isinstance(level, JaccardBigramLevel):
        return f"({d.jaccard_bigram(*lr(level.column))} >= {level.t!r})"
    if isinstance(level, DateDiffLevel):
        return f"({d.date_diff_days(*lr(level.column))} <= {level.days})"
    if isinstance(level, DateSameYearLevel):
        left, right = lr(level.column)
        return f"({d.year(left)} = {d.year(right)})"
    if isinstance(level, DateDayMonthSwappedLevel):
        left, right = lr(level.column)
        return (
            f"({d.year(left)} = {d.year(right)} AND {d.month(left)} = {d.day(right)} "
            f"AND {d.day(left)} = {d.month(right)})"
        )
    if isinstance(level, DateDigitEditsLevel):
        left, right = lr(level.column)
        return f"({d.levenshtein(d.date_digits(left), d.date_digits(right), ascii=True)} <= {level.k})"
    if isinstance(level, SubstrExactLevel):
        left, right = lr(level.column)
        return f"({d.substr(left, level.start, level.length)} = {d.substr(right, level.start, level.length)})"
    if isinstance(level, CustomLevel):
        return f"({level.sql})"
    if isinstance(level, AllOfLevel):
        return "(" + " AND ".join(level_sql(c, d) for c in level.conditions) + ")"
    if isinstance(level, AnyOfLevel):
        return "(" + " OR ".join(level_sql(c, d) for c in level.conditions) + ")"
    raise TypeError(f"unknown comparison level {type(level).__name__}")


def _side_missing(comp: Comparison, alias: str, schema: pa.Schema, d: Dialect) -> str:
    parts = []
    for c in comp.missing_columns():
        col = d.col(alias, c)
        if pa.types.is_list(schema.field(c).type) or pa.types.is_large_list(schema.field(c).type):
            parts.append(f"({col} IS NULL OR {d.is_empty_list(col)})")
        else:
            parts.append(f"{col} IS NULL")
    return "(" + " AND ".join(parts) + ")"


def gamma_sql(comp: Comparison, schema: pa.Schema, d: Dialect) -> str:
    """The ``CASE`` expression giving the gamma level of ``comp`` (int8)."""
    missing = f"{_side_missing(comp, 'l', schema, d)} OR {_side_missing(comp, 'r', schema, d)}"
    if comp.missing_when:
        missing += f" OR coalesce(({comp.missing_when}), false)"
    whens = [f"WHEN {missing} THEN -1"]
    whens += [f"WHEN {level_sql(lv, d)} THEN {comp.gamma_of(i)}" for i, lv in enumerate(comp.levels)]
    return d.int8("CASE " + " ".join(whens) + " ELSE 0 END")


def walk_levels(level: Level) -> list[Level]:
    """``level`` and every condition nested in it (all_of / any_of), depth first."""
    if isinstance(level, AllOfLevel | AnyOfLevel):
        return [level, *(x for c in level.conditions for x in walk_levels(c))]
    return [level]


def check_comparison_columns(schema: pa.Schema, table_name: str, config: MatchConfig) -> list[str]:
    """Problems with the columns the comparisons name and their types (empty when all is well)."""
    names = set(schema.names)
    problems = []
    for comp in config.comparisons:
        for col in comp.columns():
            if col not in names:
                problems.append(f"comparison {comp.name!r}: column {col!r} is not in {table_name}")
        for lv in (x for top in comp.levels for x in walk_levels(top)):
            for col in lv.columns():
                if col not in names:
                    continue
                t = schema.field(col).type
                if isinstance(lv, _DATE_KINDS) and not pa.types.is_date(t) and not pa.types.is_timestamp(t):
                    problems.append(f"comparison {comp.name!r}: {lv.kind} needs a date column; {col!r} is {t}")
                if isinstance(lv, ExactAnyLevel) and not pa.types.is_list(t):
                    problems.append(f"comparison {comp.name!r}: exact_any needs a list column; {col!r} is {t}")
                if isinstance(lv, _TEXT_KINDS) and not (pa.types.is_string(t) or pa.types.is_large_string(t)):
                    problems.append(f"comparison {comp.name!r}: {lv.kind} needs a string column; {col!r} is {t}")
    return problems


def compare_pairs(
    engine: Engine,
    records_table_name: str,
    pairs: pa.Table,
    config: MatchConfig,
    *,
    term_frequencies: bool = True,
    ordered: bool = True,
    materialized: bool = False,
) -> pa.Table:
    """Pairs with ``gamma_<comparison>`` (int8) and ``tf_<comparison>`` (float64) columns added.

    The columns of ``pairs`` come first and are carried through unchanged; rows are ordered
    by ``rid_l, rid_r``. Without ``term_frequencies`` the ``tf_`` columns are left out, and
    without ``ordered`` the rows come in the engine's order (u estimation needs neither).
    ``materialized`` says ``records_table_name`` is an engine table made by
    :func:`materialize_records` (used as is, not copied again).
    """
    schema = engine.schema(records_table_name)
    problems = check_comparison_columns(schema, records_table_name, config)
    for col in ("rid_l", "rid_r"):
        if col not in pairs.column_names:
            problems.append(f"pairs table has no {col} column")
    if problems:
        raise MatchConfigError("comparisons do not fit the records:\n" + "\n".join(f"  - {p}" for p in problems))

    d = engine.dialect
    run = next(_counter)
    pairs_name = f"__mdm_cmp{run}_pairs"
    recs = f"__mdm_cmp{run}_recs"
    created = [pairs_name]
    # only the row keys travel through the engine; the other pair columns are taken back by row number
    keys = pa.table(
        {
            "rid_l": pairs["rid_l"],
            "rid_r": pairs["rid_r"],
            _PAIR: pa.array(np.arange(pairs.num_rows, dtype=np.int64)),
        }
    )
    try:
        if materialized:
            recs = records_table_name
        else:
            created.append(recs)
            materialize_records(engine, records_table_name, config, recs)
        gammas = [f"{gamma_sql(c, schema, d)} AS {d.quote('gamma_' + c.name)}" for c in config.comparisons]
        tf_comps = [c for c in config.comparisons if c.tf_column is not None and term_frequencies]
        tf_values = [
            f"{d.col('l', _tf_column(c.tf_column))} AS {d.quote('__tfv_' + c.name)}" for c in tf_comps if c.tf_column
        ]
        inner = (
            f"SELECT {', '.join([d.col('p', _PAIR), *gammas, *tf_values])} FROM {d.quote(pairs_name)} AS p "
            f"JOIN {d.quote(recs)} AS l ON l.rid = p.rid_l "
            f"JOIN {d.quote(recs)} AS r ON r.rid = p.rid_r"
        )
        outer_cols = [d.col("g", _PAIR)] + [d.col("g", "gamma_" + c.name) for c in config.comparisons]
        for comp in tf_comps:
            gamma, value = d.col("g", "gamma_" + comp.name), d.col("g", "__tfv_" + comp.name)
            tf_sql = d.float64(f"CASE WHEN {gamma} = {comp.tf_level()} THEN {value} END")
            outer_cols.append(f"{tf_sql} AS {d.quote('tf_' + comp.name)}")
        query = f"SELECT {', '.join(outer_cols)} FROM ({inner}) AS g"
        scored = _in_batches(engine, query, pairs_name, keys, config.compare_batch_pairs)
    finally:
        for name in created:
            engine.unregister(name)
    row = scored[_PAIR].to_numpy()
    if ordered:
        rid_l = pairs["rid_l"].to_numpy()[row]
        rid_r = pairs["rid_r"].to_numpy()[row]
        perm = np.lexsort((rid_r, rid_l))
        row, scored = row[perm], scored.take(pa.array(perm))
    carried = pairs.take(pa.array(row))
    out = pa.table(
        [*carried.columns, *scored.drop_columns([_PAIR]).columns],
        names=[*carried.column_names, *scored.drop_columns([_PAIR]).column_names],
    )
    log.info("comparisons: %d pairs scored on %d comparison(s)", out.num_rows, len(config.comparisons))
    return out


def _in_batches(engine: Engine, query: str, pairs_name: str, keys: pa.Table, batch: int) -> pa.Table:
    """``query`` over ``keys`` registered as ``pairs_name``, ``batch`` pairs at a time, results concatenated.

    One query over every pair builds its joins over all of them (at 10M records, 18M pairs:
    gigabytes the engine must spill); a batch of pairs is the small side of both joins and the
    records are scanned once per batch.
    """
    parts: list[pa.Table] = []
    try:
        for start in range(0, max(keys.num_rows, 1), batch):
            engine.register(pairs_name, keys.slice(start, batch))
            parts.append(engine.sql(query))
    except EngineError as e:
        raise MatchConfigError(f"comparisons cannot run (check custom SQL and column types): {e}") from e
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def materialize_records(
    engine: Engine, records_table_name: str, config: MatchConfig, out: str, extra_columns: Sequence[str] = ()
) -> None:
    """An engine table ``out`` with the columns the comparisons read (one conversion, reused by every join).

    ``extra_columns`` are copied too (the blocking rules' columns, so one table serves both).

    Each tf column gets the relative frequency of the record's value, from one ``GROUP BY``
    per column joined back on the value: a window partitioned by a string column sorts
    the whole table once per column and took ten times as long at a million records.
    """
    d = engine.dialect
    src = d.quote(records_table_name)
    schema = engine.schema(records_table_name)
    wanted = set(_needed_columns(schema, config)) | set(extra_columns)
    selected = [f"b.{d.quote(c)}" for c in schema.names if c in wanted]
    joins = []
    for i, column in enumerate(dict.fromkeys(c.tf_column for c in config.comparisons if c.tf_column)):
        c, alias = d.quote(column), f"tf{i}"
        selected.append(f"{alias}.share AS {d.quote(_tf_column(column))}")
        share = f"{d.float64('count(*)')} / sum(count(*)) OVER ()"
        joins.append(
            f"LEFT JOIN (SELECT {c} AS v, {share} AS share FROM {src} WHERE {c} IS NOT NULL GROUP BY {c}) AS {alias} "
            f"ON b.{c} = {alias}.v"
        )
    body = f"SELECT {', '.join(selected)} FROM {src} AS b {' '.join(joins)}"
    engine.execute(f"CREATE TEMP TABLE {d.quote(out)} AS {body}")


def _tf_column(column: str) -> str:
    return f"__mdm_tf_{column}"


def _needed_columns(schema: pa.Schema, config: MatchConfig) -> list[str]:
    """rid, the columns the comparisons name, and any ``l.<col>`` / ``r.<col>`` in custom SQL."""
    cols = {"rid"} | {c for comp in config.comparisons for c in comp.columns()}
    for comp in config.comparisons:
        texts = [comp.missing_when or ""]
        texts += [lv.sql for top in comp.levels for lv in walk_levels(top) if isinstance(lv, CustomLevel)]
        for text in texts:
            cols |= set(re.findall(r"\b[lr]\.\"?([A-Za-z_][A-Za-z0-9_]*)", text))
    return [c for c in schema.names if c in cols]
