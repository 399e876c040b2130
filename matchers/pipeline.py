"""The matcher's entry point: records in, scored pairs, clusters and a review queue out.

``match()`` reads like the list of its steps: blocking, extra pairs (deterministic ID
links and steward constraints), comparisons, u from random pairs, EM, scoring,
decisions, clustering with repair. The SQL-heavy steps run in the :class:`Engine`; the
rest is vectorized numpy over arrays indexed by ``rid``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from matchers import decisions as dec
from matchers.blocking import blocking_columns, generate_candidate_pairs
from matchers.clustering import connected_components, repair_clusters
from matchers.comparisons import compare_pairs, comparison_level_labels, materialize_records, walk_levels
from matchers.engine import DuckDBEngine, Engine
from matchers.scoring import FSModel, Scores, bayes_factors, sample_random_pairs, score_pairs, train_model
from mdm.arrays import sorted_unique
from mdm.errors import MatchConfigError, MdmError
from schemas.matching import CustomLevel, MatchConfig

log = logging.getLogger(__name__)

_RECORDS = "__mdm_match_records"
_COMPARED = "__mdm_match_compared_records"
_EVIDENCE_COLUMNS = ("id_key", "id_placeholder", "id_valid", "id_type", "id_number", "id_gender", "id_birth_date")


class MatchInputError(MdmError):
    """The records handed to the matcher lack a required column or have a bad row key."""


@dataclass
class MatchResult:
    """Everything one match run produced (docs/ARCHITECTURE.md §4)."""

    pairs: pa.Table
    clusters: pd.DataFrame
    review: pd.DataFrame
    blocking_report: pd.DataFrame
    model: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Timer:
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # this process's CPU (all threads)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)
            self.cpu_seconds[name] = round(time.process_time() - cpu, 3)
            log.info("match step %s: %.2f s (CPU %.2f s)", name, self.seconds[name], self.cpu_seconds[name])


def prepare_records(records: pd.DataFrame | pa.Table) -> pa.Table:
    """Arrow table sorted by a dense ``rid`` 0..n-1 (derived when absent) with a ``record_key``."""
    table = records if isinstance(records, pa.Table) else pa.Table.from_pandas(records, preserve_index=False)
    if "record_key" not in table.column_names:
        if {"source_system", "source_record_id"} <= set(table.column_names):
            key = pc.binary_join_element_wise(
                pc.cast(table["source_system"], pa.string()), pc.cast(table["source_record_id"], pa.string()), ":"
            )
            table = table.append_column("record_key", key)
        else:
            raise MatchInputError("records need a record_key column (or source_system and source_record_id)")
    if "rid" not in table.column_names:
        return table.append_column("rid", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    rid = table["rid"].to_numpy()
    if len(rid) and (rid == np.arange(len(rid))).all():  # already in row order (the flow's frames are)
        return table.set_column(table.column_names.index("rid"), "rid", pa.array(rid, pa.int64()))
    if len(rid) and (np.sort(rid) != np.arange(len(rid))).any():
        raise MatchInputError("records.rid must be a dense row key 0..n-1 without repeats; drop it to derive one")
    table = table.set_column(table.column_names.index("rid"), "rid", pa.array(rid, pa.int64()))
    return table.sort_by("rid")


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def used_columns(names: Sequence[str], config: MatchConfig) -> list[str]:
    """The columns of ``names`` the matcher reads: keys, evidence, blocking and comparison columns.

    Words of ``where``, ``missing_when`` and custom-level SQL that name a column count as
    used, so converting only these columns never drops one a rule refers to.
    """
    used = {"rid", "record_key", "source_system", "source_record_id", *_EVIDENCE_COLUMNS}
    if config.source_column:
        used.add(config.source_column)
    texts: list[str] = []
    for rule in config.blocking.rules:
        used.update(rule.columns())
        texts += [rule.where or "", rule.unless_both or ""]
    for comp in config.comparisons:
        used.update(comp.columns())
        texts.append(comp.missing_when or "")
        texts += [lv.sql for top in comp.levels for lv in walk_levels(top) if isinstance(lv, CustomLevel)]
    for text in texts:
        used.update(_IDENTIFIER.findall(text))
    return [c for c in names if c in used]


def _record_keys(records: pd.DataFrame | pa.Table, table: pa.Table) -> pa.Array:
    """``record_key`` per rid as one Arrow string array, taken from the caller's frame when it has them.

    The keys stay in Arrow (10M keys as Python strings hold about 0.8 GB for the rest of the run).
    """
    if isinstance(records, pd.DataFrame) and "record_key" in records.columns:
        keys = np.empty(table.num_rows, dtype=object)
        rid = records["rid"].to_numpy(np.int64) if "rid" in records.columns else np.arange(len(records))
        keys[rid] = records["record_key"].to_numpy(object)
        return pa.array(keys, pa.string(), from_pandas=True)
    column = table["record_key"]
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _extra_pairs(candidates: pa.Table, extra: list[tuple[str, pd.DataFrame]], n: int) -> pa.Table:
    """Candidate pairs plus deterministic and steward pairs that blocking did not produce."""
    seen = np.sort(dec.pair_key(candidates["rid_l"].to_numpy(), candidates["rid_r"].to_numpy(), n))
    parts = [candidates.select(["rid_l", "rid_r", "rules"])]
    for rule, frame in extra:
        if frame.empty:
            continue
        keys = sorted_unique(dec.pair_key(frame["rid_l"].to_numpy(), frame["rid_r"].to_numpy(), n))
        keys = keys[~_sorted_contains(seen, keys)]
        if len(keys):
            seen = np.sort(np.concatenate([seen, keys]))
            rules = pa.array([[rule]] * len(keys), pa.list_(pa.string()))
            parts.append(pa.table({"rid_l": keys // n, "rid_r": keys % n, "rules": rules}, schema=parts[0].schema))
    return pa.concat_tables(parts)


def _sorted_contains(sorted_values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``np.isin(keys, sorted_values)`` by binary search (several times faster on millions of pairs)."""
    if not len(sorted_values):
        return np.zeros(len(keys), bool)
    at = np.minimum(np.searchsorted(sorted_values, keys), len(sorted_values) - 1)
    return sorted_values[at] == keys


def _gammas(table: pa.Table, config: MatchConfig) -> dict[str, np.ndarray]:
    return {
        c.name: table[f"gamma_{c.name}"].to_numpy(zero_copy_only=False).astype(np.int8, copy=False)
        for c in config.comparisons
    }


def _total_pairs(n: int, sources: np.ndarray | None) -> float:
    if sources is None:
        return n * (n - 1) / 2.0
    counts = pd.Series(sources).value_counts().to_numpy(np.float64)
    return float((n * n - (counts * counts).sum()) / 2.0)


def _train(
    engine: Engine, compared: pa.Table, labels: np.ndarray, n: int, sources: np.ndarray | None, config: MatchConfig
) -> FSModel:
    cfg = config.scoring.u_estimation
    rl, rr = sample_random_pairs(n, cfg.sample_pairs, cfg.seed, sources)
    random_pairs = pa.table({"rid_l": rl, "rid_r": rr})
    random_compared = compare_pairs(
        engine, _COMPARED, random_pairs, config, term_frequencies=False, ordered=False, materialized=True
    )
    return train_model(
        _gammas(compared, config),
        _gammas(random_compared, config),
        {c.name: len(c.levels) + 1 for c in config.comparisons},
        config.scoring,
        labels=labels,
        total_pairs=_total_pairs(n, sources),
        level_labels=comparison_level_labels(config),
        tf_comparisons=[c.name for c in config.comparisons if c.tf_column],
    )


def _band_counts(weight: np.ndarray, edges: tuple[float, ...]) -> dict[str, int]:
    bins = np.concatenate([[-np.inf], np.asarray(edges, np.float64), [np.inf]])
    counts, _ = np.histogram(weight, bins=bins)
    return {f"[{lo:g}, {hi:g})": int(c) for lo, hi, c in zip(bins[:-1], bins[1:], counts, strict=True)}


def _links_by_rule(rules: pa.ChunkedArray, accepted: np.ndarray) -> dict[str, int]:
    flat = pc.list_flatten(rules.filter(pa.array(accepted)))
    return {str(v["values"]): int(v["counts"]) for v in pc.value_counts(flat).to_pylist()} if len(flat) else {}


def _check_scoring_names(config: MatchConfig) -> None:
    names = [c.name for c in config.comparisons]
    unknown = [n for n in config.scoring.review_when_disagree if n not in names]
    if unknown:
        raise MatchConfigError(
            f"scoring.review_when_disagree names unknown comparison(s) {unknown}; use some of {names}"
        )


def _full_disagreement(gammas: dict[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray | None:
    """True where any of the named comparisons sits on its 'else' level (gamma 0)."""
    if not names:
        return None
    return np.logical_or.reduce([gammas[n] == 0 for n in names])


def match(
    records: pd.DataFrame | pa.Table,
    config: MatchConfig,
    constraints: dec.Constraints | None = None,
    engine: Engine | None = None,
    *,
    keep_rejected: bool = True,
) -> MatchResult:
    """Link the records: scored pairs with decisions, clusters (every record), review queue, model.

    ``keep_rejected=False``: ``pairs`` holds only the pairs decided other than ``reject`` (what
    the master publishes as match links). The rejected pairs are dropped as soon as they are
    decided, before clustering: at 10M records they are about 70% of the compared pairs, and
    the nightly run keeps the pairs until publish. Statistics still count every compared pair.
    """
    _check_scoring_names(config)
    timer = _Timer()
    scoring = config.scoring
    with timer.step("prepare"):
        if isinstance(records, pd.DataFrame):  # convert only what the matcher reads (raw columns stay behind)
            columns = used_columns(list(records.columns), config)
            table = prepare_records(pa.Table.from_pandas(records, columns=columns, preserve_index=False))
        else:  # the same for a table: only the used columns go on
            table = prepare_records(records.select(used_columns(records.column_names, config)))
    n = table.num_rows
    side = table.select([c for c in ("rid", *_EVIDENCE_COLUMNS) if c in table.column_names])
    record_keys = _record_keys(records, table)
    sources = None
    if config.link_type == "link_only" and config.source_column:
        sources = pd.factorize(table[config.source_column].to_pandas())[0]
    own_engine = engine is None
    eng = engine if engine is not None else DuckDBEngine()
    eng.register(_RECORDS, table)
    try:
        with timer.step("materialize"):  # one engine table with every column blocking and comparisons read
            columns = blocking_columns(eng.schema(_RECORDS), config)
            materialize_records(eng, _RECORDS, config, _COMPARED, extra_columns=columns)
            eng.unregister(_RECORDS)
        with timer.step("blocking"):
            candidates, report = generate_candidate_pairs(eng, _COMPARED, config, materialized=True)
        with timer.step("extra_pairs"):
            codes = dec.id_key_codes(side, scoring.hard_evidence)
            det_edges = dec.star_edges(codes)
            must, cannot = (constraints or dec.Constraints()).rid_pairs(record_keys)
            extra = [("id_key_link", det_edges), ("must_link", must), ("cannot_link", cannot)]
            pairs = _extra_pairs(candidates, extra, max(n, 1))
        with timer.step("comparisons"):
            compared = compare_pairs(eng, _COMPARED, pairs, config, materialized=True)
        rid_l = compared["rid_l"].to_numpy()
        rid_r = compared["rid_r"].to_numpy()
        deterministic = (codes[rid_l] >= 0) & (codes[rid_l] == codes[rid_r])
        with timer.step("training"):
            model = _train(eng, compared, deterministic, n, sources, config)
    finally:
        eng.unregister(_COMPARED)
        eng.unregister(_RECORDS)
        if own_engine:
            eng.close()

    with timer.step("scoring"):
        gammas = _gammas(compared, config)
        tfs = {
            c.name: compared[f"tf_{c.name}"].to_numpy(zero_copy_only=False).astype(np.float64)
            for c in config.comparisons
            if f"tf_{c.name}" in compared.column_names
        }
        scores = score_pairs(model, gammas, tfs, scoring.term_frequency, with_bf=False)
        del tfs
    with timer.step("decisions"):
        evidence = dec.RecordEvidence.from_records(side)
        hard = dec.hard_conflicts(evidence, rid_l, rid_r, scoring.hard_evidence)
        must_mask = dec.pairs_in(rid_l, rid_r, must, n)
        cannot_mask = dec.pairs_in(rid_l, rid_r, cannot, n)
        decision = dec.decide(
            scores.match_weight,
            scoring,
            deterministic=deterministic if scoring.hard_evidence.deterministic_id_key else None,
            hard_conflict=hard,
            must_link=must_mask,
            cannot_link=cannot_mask,
            review_only=_full_disagreement(gammas, scoring.review_when_disagree),
        )
        del hard, must_mask, cannot_mask, deterministic
    n_compared = compared.num_rows
    compared = compared.select(["rid_l", "rid_r", "rules", *(f"gamma_{c.name}" for c in config.comparisons)])
    by_score_band = _band_counts(scores.match_weight, scoring.score_bands)
    n_rejected = 0
    if not keep_rejected:  # every later step reads only the pairs with another decision
        kept = np.flatnonzero(decision != dec.CODE["reject"])
        n_rejected = len(decision) - len(kept)
        compared = compared.take(pa.array(kept))
        rid_l, rid_r, decision = rid_l[kept], rid_r[kept], decision[kept]
        gammas = {k: v[kept] for k, v in gammas.items()}
        scores = Scores(
            bf={},
            tf_adjustment=scores.tf_adjustment[kept],
            match_weight=scores.match_weight[kept],
            match_probability=scores.match_probability[kept],
        )
        del kept
    scores.bf.update(bayes_factors(model, gammas))
    del gammas
    with timer.step("clustering"):
        labels, split = _cluster(n, rid_l, rid_r, scores.match_weight, decision, cannot, evidence, config)
        split_reason = np.zeros(len(decision), bool)
        split_reason[split] = True
        decision[split] = dec.CODE["review"]

    review_mask = decision == dec.CODE["review"]
    reason = np.where(split_reason[review_mask], dec.REVIEW_SPLIT, dec.REVIEW_BETWEEN)
    review = dec.review_items(
        rid_l[review_mask], rid_r[review_mask], scores.match_weight[review_mask], reason, record_keys, scoring
    )
    out_pairs = _pairs_table(compared, config, scores, decision)
    del compared, scores
    clusters = pd.DataFrame(
        {
            "rid": np.arange(n, dtype=np.int64),
            "record_key": pd.arrays.ArrowExtensionArray(record_keys),
            "cluster": labels,
        }
    )
    accepted = dec.is_accepted(decision)
    cluster_sizes = np.bincount(labels, minlength=1) if n else np.zeros(1, np.int64)
    by_decision = {d: int((decision == dec.CODE[d]).sum()) for d in dec.DECISIONS}
    by_decision["reject"] += n_rejected
    stats: dict[str, Any] = {
        "records": n,
        "candidate_pairs": candidates.num_rows,
        "pairs_compared": n_compared,
        "pairs_kept": out_pairs.num_rows,
        "extra_pairs": pairs.num_rows - candidates.num_rows,
        "links_by_rule": _links_by_rule(out_pairs["rules"], accepted),
        "by_decision": by_decision,
        "by_score_band": by_score_band,
        "review_items": {r: int((review["reason"] == r).sum()) for r in (dec.REVIEW_BETWEEN, dec.REVIEW_SPLIT)},
        "clusters": int((cluster_sizes > 0).sum()),
        "largest_cluster": int(cluster_sizes.max()),
        "singletons": int((cluster_sizes == 1).sum()),
        "links_cut_by_repair": len(split),
        "timings": timer.seconds,
        "cpu_timings": timer.cpu_seconds,
    }
    log.info(
        "match: %d records, %d pairs compared, %d accepted links, %d clusters, %d review items",
        n, n_compared, int(accepted.sum()), stats["clusters"], len(review),
    )  # fmt: skip
    return MatchResult(
        pairs=out_pairs,
        clusters=clusters,
        review=review,
        blocking_report=report.to_frame(),
        model=model.to_dict(),
        stats=stats,
    )


def _cluster(
    n: int,
    rid_l: np.ndarray,
    rid_r: np.ndarray,
    weight: np.ndarray,
    decision: np.ndarray,
    cannot: pd.DataFrame,
    evidence: dec.RecordEvidence,
    config: MatchConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster labels per rid and the indices (into the pairs) of the links repair cut."""
    accepted = np.flatnonzero(dec.is_accepted(decision))
    el, er = rid_l[accepted], rid_r[accepted]
    repair = config.scoring.repair
    if not repair.enabled:
        return connected_components(n, el, er), np.empty(0, np.int64)
    forced = decision[accepted] == dec.CODE["must_link"]
    strength = weight[accepted].copy()
    strength[decision[accepted] == dec.CODE["deterministic"]] = np.finfo(np.float64).max
    strength[forced] = np.inf
    conflict_l, conflict_r = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    if repair.split_on_cannot_link:
        conflict_l.append(cannot["rid_l"].to_numpy(np.int64))
        conflict_r.append(cannot["rid_r"].to_numpy(np.int64))
    if repair.split_on_hard_conflict:
        hard = decision == dec.CODE["hard_conflict"]
        conflict_l.append(rid_l[hard])
        conflict_r.append(rid_r[hard])
    result = repair_clusters(
        n,
        el,
        er,
        strength,
        np.concatenate(conflict_l),
        np.concatenate(conflict_r),
        evidence.resident_id if repair.split_on_resident_id else None,
        forced=forced,
    )
    return result.labels, accepted[result.split_edges]


def _pairs_table(compared: pa.Table, config: MatchConfig, scores: Scores, decision: np.ndarray) -> pa.Table:
    columns: dict[str, Any] = {
        "rid_l": compared["rid_l"],
        "rid_r": compared["rid_r"],
        "rules": compared["rules"],
    }
    for c in config.comparisons:
        columns[f"gamma_{c.name}"] = compared[f"gamma_{c.name}"]
    for c in config.comparisons:
        columns[f"bf_{c.name}"] = pa.array(scores.bf[c.name], pa.float64())
    columns["tf_adjustment"] = pa.array(scores.tf_adjustment, pa.float64())
    columns["match_weight"] = pa.array(scores.match_weight, pa.float64())
    columns["match_probability"] = pa.array(scores.match_probability, pa.float64())
    columns["decision"] = pa.DictionaryArray.from_arrays(pa.array(decision, pa.int8()), pa.array(dec.DECISIONS))
    return pa.table(columns)
