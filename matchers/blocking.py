"""Blocking: candidate pairs from equality keys, one self-join per rule, deduplicated across rules.

For each rule the records are reduced to ``(rid, key hash)`` (list columns exploded first),
blocks are counted, blocks above the cap are skipped and reported, and a rule whose
pairs would still exceed ``max_pairs`` is refused before any pair is built. The pairs of
all rules are then merged: one row per pair with every rule that produced it.

A rule's keys are hashed to one 64-bit integer before blocks are counted and joined:
windows and joins on an integer take half the time of those on text. Two different keys
with one hash (about one chance in 10^7 at a million blocks) only put two blocks
together: the extra pairs are compared and scored like any other candidate, never
linked on the strength of the key.
"""

from __future__ import annotations

import itertools
import logging
import re
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from matchers.engine import Engine, EngineError
from mdm.errors import MatchConfigError
from schemas.matching import BLOCKING_REPORT_SCHEMA, CANDIDATE_PAIRS_SCHEMA, BlockingRule, MatchConfig

log = logging.getLogger(__name__)

_SRC = "__mdm_src"
_BOTH = "__mdm_unless_both"
_counter = itertools.count()


@dataclass(frozen=True)
class RuleReport:
    """What one blocking rule did. Keys themselves are never reported (they are personal data)."""

    rule: str
    pairs_before_cap: int  # sum of pairs over all blocks, capped or not
    pairs: int  # distinct pairs the rule produced after the cap
    new_pairs: int  # pairs no earlier rule produced
    blocks: int  # distinct key values (blocks of one record included)
    skipped_blocks: int  # blocks larger than max_block_size
    skipped_records: int  # records in skipped blocks
    largest_block: int
    max_block_size: int


@dataclass(frozen=True)
class BlockingReport:
    rules: list[RuleReport] = field(default_factory=list)
    total_pairs: int = 0  # distinct pairs over all rules

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.rules], columns=BLOCKING_REPORT_SCHEMA.names)

    def to_table(self) -> pa.Table:
        return pa.Table.from_pylist([asdict(r) for r in self.rules], schema=BLOCKING_REPORT_SCHEMA)

    def rule(self, name: str) -> RuleReport:
        for r in self.rules:
            if r.rule == name:
                return r
        raise KeyError(name)


@dataclass(frozen=True)
class _RuleStats:
    pairs_before_cap: int
    pairs_after_cap: int
    blocks: int
    skipped_blocks: int
    skipped_records: int
    largest_block: int


def check_blocking_columns(schema: pa.Schema, table_name: str, config: MatchConfig) -> list[str]:
    """Problems with the columns the blocking rules name (empty when all is well)."""
    problems = []
    names = set(schema.names)
    if config.link_type == "link_only" and config.source_column not in names:
        problems.append(f"source_column {config.source_column!r} is not a column of {table_name}")
    for rule in config.blocking.rules:
        for col in rule.columns():
            if col not in names:
                problems.append(f"blocking rule {rule.name!r}: column {col!r} is not in {table_name}")
        for col in rule.explode:
            if col in names and not pa.types.is_list(schema.field(col).type):
                problems.append(f"blocking rule {rule.name!r}: explode column {col!r} is not a list column")
    if "rid" not in names:
        problems.append(f"{table_name} has no rid column (int64 row key 0..n-1)")
    return problems


def generate_candidate_pairs(
    engine: Engine, records_table_name: str, config: MatchConfig, *, materialized: bool = False
) -> tuple[pa.Table, BlockingReport]:
    """Candidate pairs ``rid_l < rid_r`` with the list of rules that produced each pair.

    ``materialized`` says ``records_table_name`` is already an engine table holding the
    columns the rules read (:func:`blocking_columns`); otherwise those are copied first.

    Raises :class:`MatchConfigError` if a rule names an unknown column, has a bad ``where``,
    or would produce more than its ``max_pairs`` (all such rules are named in one message).
    """
    schema = engine.schema(records_table_name)
    problems = check_blocking_columns(schema, records_table_name, config)
    if problems:
        raise MatchConfigError("blocking rules do not fit the records:\n" + "\n".join(f"  - {p}" for p in problems))
    run = next(_counter)
    keyed_names: dict[str, str] = {}
    stats: dict[str, _RuleStats] = {}
    recs = records_table_name if materialized else f"__mdm_blk{run}_recs"
    created: list[str] = [] if materialized else [recs]
    try:
        if not materialized:
            _materialize(engine, records_table_name, blocking_columns(schema, config), recs)
        for i, rule in enumerate(config.blocking.rules):
            keyed = f"__mdm_blk{run}_{i}_keyed"
            created.append(keyed)
            cap = rule.max_block_size or config.blocking.max_block_size
            _create_keyed(engine, recs, schema, rule, config, keyed)
            stats[rule.name] = _block_stats(engine, rule, config, keyed, cap)
            keyed_names[rule.name] = keyed
        if not materialized:
            engine.unregister(recs)
        _refuse_exploding_rules(config, stats)

        all_pairs = f"__mdm_blk{run}_pairs"
        created.append(all_pairs)
        for i, rule in enumerate(config.blocking.rules):
            cap = rule.max_block_size or config.blocking.max_block_size
            _join_rule(engine, rule, i, config, keyed_names[rule.name], cap, all_pairs)
        pairs, produced, new_pairs = _merge_rules(engine, all_pairs, [r.name for r in config.blocking.rules])
    finally:
        for name in created:
            engine.unregister(name)

    reports = []
    for rule in config.blocking.rules:
        s = stats[rule.name]
        reports.append(
            RuleReport(
                rule=rule.name,
                pairs_before_cap=s.pairs_before_cap,
                pairs=produced.get(rule.name, 0),
                new_pairs=new_pairs.get(rule.name, 0),
                blocks=s.blocks,
                skipped_blocks=s.skipped_blocks,
                skipped_records=s.skipped_records,
                largest_block=s.largest_block,
                max_block_size=rule.max_block_size or config.blocking.max_block_size,
            )
        )
        if s.skipped_blocks:
            log.warning(
                "blocking rule %s skipped %d block(s) larger than %d (%d records; largest %d)",
                rule.name, s.skipped_blocks, reports[-1].max_block_size, s.skipped_records, s.largest_block,
            )  # fmt: skip
    report = BlockingReport(rules=reports, total_pairs=pairs.num_rows)
    log.info("blocking: %d candidate pairs from %d rule(s)", pairs.num_rows, len(reports))
    return pairs, report


def _hashed_as_is(schema: pa.Schema, column: str) -> bool:
    """A column whose values are hashed as they are, not as text: dates, times and integers (never empty)."""
    kind = schema.field(column).type
    return bool(pa.types.is_temporal(kind) or pa.types.is_integer(kind))


def _create_keyed(
    engine: Engine, table: str, schema: pa.Schema, rule: BlockingRule, config: MatchConfig, out: str
) -> None:
    d = engine.dialect
    needed = [c for c in rule.columns() if c not in rule.explode]
    linking = config.link_type == "link_only" and config.source_column is not None
    src = [f"{d.quote(config.source_column or '')} AS {_SRC}"] if linking else []
    where = f" WHERE {rule.where}" if rule.where else ""
    both = [f"coalesce(({rule.unless_both}), false) AS {_BOTH}"] if rule.unless_both else []
    selected = [d.quote("rid"), *src, *both, *(d.quote(c) for c in needed + rule.explode)]
    inner = f"SELECT {', '.join(selected)} FROM {d.quote(table)}{where}"
    passthrough = ["rid", *([_SRC] if src else []), *([_BOTH] if both else []), *needed]
    for j, col in enumerate(rule.explode):
        others = [d.quote(c) for c in passthrough + rule.explode[j + 1 :]]
        inner = f"SELECT {', '.join([*others, d.unnest(d.quote(col)) + ' AS ' + d.quote(col)])} FROM ({inner}) AS x{j}"
        passthrough.append(col)
    parsed = rule.parsed_keys()
    typed = [k.func is None and k.column not in rule.explode and _hashed_as_is(schema, k.column) for k in parsed]
    keys = [d.key(k, text=not raw) for k, raw in zip(parsed, typed, strict=True)]
    key_cols = ", ".join(f"{k} AS k{n}" for n, k in enumerate(keys))
    # a text key must be non-empty; a typed one (a date) only present
    not_null = " AND ".join(
        f"k{n} IS NOT NULL" + ("" if raw else f" AND k{n} <> ''") for n, raw in enumerate(typed)
    )
    src_col = (f", {_SRC}" if src else "") + (f", {_BOTH}" if both else "")
    hashed = d.hash_key(_key_list(len(keys)))
    # one key per record (rid is the row key) unless a list was exploded
    distinct = "DISTINCT " if rule.explode else ""
    # with unless_both, nb counts the block's records that hold the condition: the pairs of two such
    # records are never made, and the pair estimate leaves them out
    nb = f", count(*) FILTER (WHERE {_BOTH}) OVER (PARTITION BY h) AS nb" if both else ""
    query = (
        f"CREATE TEMP TABLE {d.quote(out)} AS SELECT *, count(*) OVER (PARTITION BY h) AS n{nb} FROM ("
        f"SELECT {distinct}rid{src_col}, {hashed} AS h FROM (SELECT rid{src_col}, {key_cols} FROM ({inner}) AS e) "
        f"AS kk WHERE {not_null}) AS dk"
    )
    try:
        engine.execute(query)
    except EngineError as e:
        raise MatchConfigError(
            f"blocking rule {rule.name!r} cannot run (check its keys, where and unless_both): {e}"
        ) from e


def _key_list(n: int) -> list[str]:
    return [f"k{i}" for i in range(n)]


def _block_stats(engine: Engine, rule: BlockingRule, config: MatchConfig, keyed: str, cap: int) -> _RuleStats:
    d = engine.dialect
    if config.link_type == "link_only":
        blocks = (
            f"SELECT h, sum(ns) AS n, CAST((sum(ns) * sum(ns) - sum(ns * ns)) / 2 AS BIGINT) AS pairs FROM "
            f"(SELECT h, {_SRC}, count(*) AS ns FROM {d.quote(keyed)} GROUP BY h, {_SRC}) AS s "
            f"GROUP BY h"
        )
    else:
        # every record carries its block size n: a block of n records is n rows adding 1/n each;
        # a block's pairs are sum(n - 1) / 2 over its records, less sum(nb - 1) / 2 over the records
        # holding unless_both (the pairs of two of them are not made)
        one = d.float64("1")
        excluded = (f"coalesce(sum(nb - 1) FILTER (WHERE n <= {cap} AND {_BOTH}), 0)"
                    if rule.unless_both else "0")
        row = engine.sql(
            f"SELECT CAST(round(coalesce(sum({one} / n), 0)) AS BIGINT) AS blocks, "
            f"CAST(coalesce(sum(n - 1), 0) / 2 AS BIGINT) AS before_cap, "
            f"CAST((coalesce(sum(n - 1) FILTER (WHERE n <= {cap}), 0) - {excluded}) / 2 AS BIGINT) AS after_cap, "
            f"CAST(round(coalesce(sum({one} / n) FILTER (WHERE n > {cap}), 0)) AS BIGINT) AS skipped, "
            f"count(*) FILTER (WHERE n > {cap}) AS skipped_records, coalesce(max(n), 0) AS largest "
            f"FROM {d.quote(keyed)}"
        ).to_pylist()[0]
        return _stats(row)
    row = engine.sql(
        f"SELECT count(*) AS blocks, coalesce(sum(pairs), 0) AS before_cap, "
        f"coalesce(sum(CASE WHEN n <= {cap} THEN pairs ELSE 0 END), 0) AS after_cap, "
        f"count(*) FILTER (WHERE n > {cap}) AS skipped, coalesce(sum(CASE WHEN n > {cap} THEN n ELSE 0 END), 0) "
        f"AS skipped_records, coalesce(max(n), 0) AS largest FROM ({blocks}) AS b"
    ).to_pylist()[0]
    return _stats(row)


def _stats(row: dict[str, int]) -> _RuleStats:
    return _RuleStats(
        pairs_before_cap=int(row["before_cap"]),
        pairs_after_cap=int(row["after_cap"]),
        blocks=int(row["blocks"]),
        skipped_blocks=int(row["skipped"]),
        skipped_records=int(row["skipped_records"]),
        largest_block=int(row["largest"]),
    )


def _refuse_exploding_rules(config: MatchConfig, stats: dict[str, _RuleStats]) -> None:
    refused = []
    for rule in config.blocking.rules:
        limit = rule.max_pairs or config.blocking.max_pairs
        s = stats[rule.name]
        if s.pairs_after_cap > limit:
            refused.append(
                f"blocking rule {rule.name!r} would produce {s.pairs_after_cap:,} pairs, more than max_pairs "
                f"{limit:,} (largest block {s.largest_block:,} records); add a more selective key or a where "
                f"condition, lower max_block_size, or raise max_pairs for this rule"
            )
    if refused:
        raise MatchConfigError("refused to block:\n" + "\n".join(f"  - {r}" for r in refused))


def _join_rule(
    engine: Engine,
    rule: BlockingRule,
    index: int,
    config: MatchConfig,
    keyed: str,
    cap: int,
    out: str,
) -> None:
    """Pairs of one rule from its keyed records (each carries its block size ``n``)."""
    d = engine.dialect
    on_pair = "a.h = c.h"
    cross = f" AND a.{_SRC} <> c.{_SRC}" if config.link_type == "link_only" else ""
    if rule.unless_both:
        cross += f" AND NOT (a.{_BOTH} AND c.{_BOTH})"
    # one key tuple per record unless a list was exploded: only then can a pair come twice
    distinct = "DISTINCT " if rule.explode else ""
    select = (
        f"SELECT {distinct}a.rid AS rid_l, c.rid AS rid_r, CAST({index} AS INTEGER) AS rule_idx "
        f"FROM (SELECT * FROM {d.quote(keyed)} WHERE n BETWEEN 2 AND {cap}) AS a "
        f"JOIN (SELECT * FROM {d.quote(keyed)} WHERE n BETWEEN 2 AND {cap}) AS c "
        f"ON {on_pair} AND a.rid < c.rid{cross}"
    )
    try:
        if index == 0:
            engine.execute(f"CREATE TEMP TABLE {d.quote(out)} AS {select}")
        else:
            engine.execute(f"INSERT INTO {d.quote(out)} {select}")
    finally:
        engine.unregister(keyed)


def _merge_rules(engine: Engine, all_pairs: str, names: list[str]) -> tuple[pa.Table, dict[str, int], dict[str, int]]:
    """One row per pair; the rules that produced it travel as a bit mask and become a list at the end."""
    d = engine.dialect
    t = d.quote(all_pairs)
    counts = engine.sql(f"SELECT rule_idx, count(*) AS n FROM {t} GROUP BY rule_idx").to_pylist()
    produced = {names[r["rule_idx"]]: int(r["n"]) for r in counts}
    merged = engine.sql(
        f"SELECT rid_l, rid_r, {d.bit_or_of_shift('rule_idx')} AS mask FROM {t} "
        f"GROUP BY rid_l, rid_r ORDER BY rid_l, rid_r"
    )
    masks = merged.column("mask").to_numpy()
    uniq, inverse = np.unique(masks, return_inverse=True)
    lists = pa.array([[n for b, n in enumerate(names) if (int(m) >> b) & 1] for m in uniq], pa.list_(pa.string()))
    rules = lists.take(pa.array(inverse.astype(np.int64)))
    new_pairs: dict[str, int] = {}
    for m, k in zip(uniq, np.bincount(inverse, minlength=len(uniq)), strict=True):
        first = names[(int(m) & -int(m)).bit_length() - 1]
        new_pairs[first] = new_pairs.get(first, 0) + int(k)
    table = pa.table([merged.column("rid_l"), merged.column("rid_r"), rules], names=CANDIDATE_PAIRS_SCHEMA.names)
    return table.cast(CANDIDATE_PAIRS_SCHEMA), produced, new_pairs


def blocking_columns(schema: pa.Schema, config: MatchConfig) -> list[str]:
    """Columns the rules read: keys, exploded lists, the source column, and names used in ``where``."""
    names = set(schema.names)
    cols = {"rid"} | {c for r in config.blocking.rules for c in r.columns()}
    if config.link_type == "link_only" and config.source_column:
        cols.add(config.source_column)
    for rule in config.blocking.rules:
        for text in (rule.where, rule.unless_both):
            if text:
                cols |= names & set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))
    return [c for c in schema.names if c in cols]


def _materialize(engine: Engine, table: str, columns: list[str], out: str) -> None:
    d = engine.dialect
    engine.execute(
        f"CREATE TEMP TABLE {d.quote(out)} AS SELECT {', '.join(map(d.quote, columns))} FROM {d.quote(table)}"
    )
