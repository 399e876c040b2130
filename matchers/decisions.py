"""Decisions per pair: deterministic ID links, hard evidence, steward constraints, thresholds.

Everything here is vectorized over numpy arrays indexed by ``rid`` (dense 0..n-1):
record attributes are factorized once to integer codes, and a pair's rule is a few
array look-ups. Hard-evidence rules apply only when the records carry their columns
(``id_key``, ``id_valid``, ``id_type``, ``id_number``, ``id_gender``, ``id_birth_date``).

Precedence, strongest first: ``cannot_link`` > ``must_link`` > ``hard_conflict`` >
``deterministic`` > ``auto`` > ``review`` > ``reject``. Steward decisions beat
everything; hard evidence beats an ID key shared by mistake and any score.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from schemas.enums import IdType
from schemas.scoring import HardEvidenceConfig, ScoringConfig

log = logging.getLogger(__name__)

DECISIONS: tuple[str, ...] = (
    "reject",
    "review",
    "auto",
    "deterministic",
    "hard_conflict",
    "must_link",
    "cannot_link",
)
"""Decision labels; a decision array holds int8 codes into this tuple."""

CODE = {name: np.int8(i) for i, name in enumerate(DECISIONS)}
ACCEPTED: tuple[str, ...] = ("auto", "deterministic", "must_link")
ACCEPTED_CODES = np.array([CODE[d] for d in ACCEPTED], np.int8)

REVIEW_BETWEEN = "between_thresholds"
REVIEW_SPLIT = "cluster_split"


def _empty_key_pairs() -> pd.DataFrame:
    return pd.DataFrame({"record_key_l": pd.Series(dtype=object), "record_key_r": pd.Series(dtype=object)})


@dataclass(frozen=True)
class Constraints:
    """Steward decisions that override the model in every run.

    Both frames hold ``record_key_l`` and ``record_key_r`` (order does not matter).
    """

    must_link: pd.DataFrame = field(default_factory=_empty_key_pairs)
    cannot_link: pd.DataFrame = field(default_factory=_empty_key_pairs)

    @classmethod
    def empty(cls) -> Constraints:
        """No steward decisions."""
        return cls()

    def rid_pairs(self, record_keys: pa.Array | pa.ChunkedArray | pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(must, cannot) as ``rid_l < rid_r`` frames; pairs naming unknown records are dropped.

        ``record_keys``: the key of each rid. Only the keys the constraints name are looked up
        (in Arrow): no per-record index is built, and none at all without constraints.
        """
        return (
            _to_rids(self.must_link, record_keys, "must_link"),
            _to_rids(self.cannot_link, record_keys, "cannot_link"),
        )


def _key_array(record_keys: pa.Array | pa.ChunkedArray | pd.Series) -> pa.Array | pa.ChunkedArray:
    if isinstance(record_keys, pd.Series):
        return pa.array(record_keys.to_numpy(dtype=object), pa.string(), from_pandas=True)
    return record_keys


def _positions(named: pd.Series, record_keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The rid of each named key (first occurrence), -1 where no record has it."""
    found = pc.index_in(pa.array(named.to_numpy(dtype=object), record_keys.type, from_pandas=True), record_keys)
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _to_rids(frame: pd.DataFrame, record_keys: pa.Array | pa.ChunkedArray | pd.Series, what: str) -> pd.DataFrame:
    if frame is None or len(frame) == 0:
        return pd.DataFrame({"rid_l": np.empty(0, np.int64), "rid_r": np.empty(0, np.int64)})
    keys = _key_array(record_keys)
    a = _positions(frame["record_key_l"], keys)
    b = _positions(frame["record_key_r"], keys)
    ok = (a >= 0) & (b >= 0) & (a != b)
    if (~ok).any():
        log.warning("%s: %d pair(s) name unknown records (or the same record twice) and are ignored", what, (~ok).sum())
    a, b = a[ok], b[ok]
    out = pd.DataFrame({"rid_l": np.minimum(a, b), "rid_r": np.maximum(a, b)})
    return out.drop_duplicates(ignore_index=True)


def pair_key(rid_l: np.ndarray, rid_r: np.ndarray, n_records: int) -> np.ndarray:
    """One int64 per unordered pair (for vectorized membership tests)."""
    lo = np.minimum(rid_l, rid_r).astype(np.int64)
    hi = np.maximum(rid_l, rid_r).astype(np.int64)
    return lo * np.int64(n_records) + hi


def pairs_in(rid_l: np.ndarray, rid_r: np.ndarray, other: pd.DataFrame, n_records: int) -> np.ndarray:
    """Boolean mask: which pairs are in ``other`` (rid_l, rid_r)."""
    if len(other) == 0:
        return np.zeros(len(rid_l), bool)
    keys = pair_key(other["rid_l"].to_numpy(), other["rid_r"].to_numpy(), n_records)
    return np.isin(pair_key(rid_l, rid_r, n_records), keys)


# ---------------------------------------------------------------------------------------------- record columns

Records: TypeAlias = pd.DataFrame | pa.Table
"""Records indexed by position = rid: a pandas frame or an Arrow table (the matcher passes Arrow)."""


def _has(records: Records, column: str) -> bool:
    return column in (records.columns if isinstance(records, pd.DataFrame) else records.column_names)


def _codes(records: Records, column: str) -> np.ndarray:
    """Integer code per record of the column's value (equal values, equal codes); -1 where null."""
    if isinstance(records, pd.DataFrame):
        return pd.factorize(records[column])[0].astype(np.int64)
    indices = pc.dictionary_encode(records[column]).combine_chunks().indices
    return pc.fill_null(pc.cast(indices, pa.int64()), -1).to_numpy(zero_copy_only=False).copy()


def _flag(records: Records, column: str) -> np.ndarray:
    """A boolean column as numpy, null as False."""
    if isinstance(records, pd.DataFrame):
        return records[column].astype("boolean").fillna(False).to_numpy(bool)
    return pc.fill_null(records[column], False).to_numpy(zero_copy_only=False).astype(bool)


def _is_value(records: Records, column: str, value: str) -> np.ndarray:
    if isinstance(records, pd.DataFrame):
        return records[column].to_numpy(object) == value
    col = records[column]
    return pc.fill_null(pc.equal(col, pa.scalar(value, col.type)), False).to_numpy(zero_copy_only=False).astype(bool)


# ---------------------------------------------------------------------------------------------- deterministic


def id_key_codes(records: Records, cfg: HardEvidenceConfig) -> np.ndarray:
    """Per rid: an integer code of the record's deterministic ``id_key``, or -1.

    Only valid, non-placeholder keys count, and a key held by more than
    ``cfg.deterministic_max_group`` records counts for none of them (a key that many
    records share is junk, not a person). Two records with the same code link.
    """
    n = len(records)
    if not cfg.deterministic_id_key or not _has(records, "id_key"):
        return np.full(n, -1, np.int64)
    codes = _codes(records, "id_key")
    keep = codes >= 0
    if _has(records, "id_placeholder"):
        keep &= ~_flag(records, "id_placeholder")
    if _has(records, "id_valid"):
        keep &= _flag(records, "id_valid")
    codes[~keep] = -1
    sizes = np.bincount(codes[codes >= 0]) if (codes >= 0).any() else np.zeros(0, np.int64)
    too_big = np.flatnonzero(sizes > cfg.deterministic_max_group)
    if len(too_big):
        log.warning(
            "deterministic links: %d id_key group(s) hold more than %d records and are not linked",
            len(too_big),
            cfg.deterministic_max_group,
        )
        codes[np.isin(codes, too_big)] = -1
    return codes


def deterministic_edges(records: Records, cfg: HardEvidenceConfig) -> pd.DataFrame:
    """Star edges (hub = lowest rid) joining records with the same :func:`id_key_codes` code.

    ``records`` is indexed by position = rid. Returns ``rid_l < rid_r`` frames: k records
    sharing a key give k - 1 edges, never k(k-1)/2 pairs.
    """
    return star_edges(id_key_codes(records, cfg))


def star_edges(codes: np.ndarray) -> pd.DataFrame:
    """Star edges (hub = lowest rid) joining the rids that share a code >= 0 (index = rid)."""
    rid = np.arange(len(codes), dtype=np.int64)
    has = codes >= 0
    if not has.any():
        return pd.DataFrame({"rid_l": np.empty(0, np.int64), "rid_r": np.empty(0, np.int64)})
    hub = np.full(codes.max() + 1, len(codes), np.int64)
    np.minimum.at(hub, codes[has], rid[has])
    spoke = has & (hub[np.maximum(codes, 0)] != rid)
    return pd.DataFrame({"rid_l": hub[codes[spoke]], "rid_r": rid[spoke]})


# ---------------------------------------------------------------------------------------------- hard evidence


@dataclass(frozen=True)
class RecordEvidence:
    """Per-record integer codes (index = rid) that hard-evidence rules compare; -1 = absent."""

    resident_id: np.ndarray
    id_gender: np.ndarray
    id_birth_date: np.ndarray

    @classmethod
    def from_records(cls, records: Records) -> RecordEvidence:
        n = len(records)
        absent = np.full(n, -1, np.int64)
        if not _has(records, "id_valid"):
            return cls(absent, absent, absent)
        valid = _flag(records, "id_valid")
        if _has(records, "id_placeholder"):
            valid &= ~_flag(records, "id_placeholder")

        def codes(column: str, mask: np.ndarray) -> np.ndarray:
            if not _has(records, column):
                return absent
            c = _codes(records, column)
            return np.where(mask & (c >= 0), c, -1)

        if _has(records, "id_type"):
            resident = valid & _is_value(records, "id_type", IdType.RESIDENT_ID.value)
        else:
            resident = np.zeros(n, bool)
        return cls(
            resident_id=codes("id_number", resident),
            id_gender=codes("id_gender", valid),
            id_birth_date=codes("id_birth_date", valid),
        )


def _differ(codes: np.ndarray, rid_l: np.ndarray, rid_r: np.ndarray) -> np.ndarray:
    a, b = codes[rid_l], codes[rid_r]
    return (a >= 0) & (b >= 0) & (a != b)


def hard_conflicts(
    evidence: RecordEvidence, rid_l: np.ndarray, rid_r: np.ndarray, cfg: HardEvidenceConfig
) -> np.ndarray:
    """True where hard evidence says the two records are different people."""
    out = np.zeros(len(rid_l), bool)
    if cfg.resident_id_conflict:
        out |= _differ(evidence.resident_id, rid_l, rid_r)
    if cfg.gender_conflict:
        out |= _differ(evidence.id_gender, rid_l, rid_r)
    if cfg.birth_date_conflict:
        out |= _differ(evidence.id_birth_date, rid_l, rid_r)
    return out


# ---------------------------------------------------------------------------------------------- decisions


def decide(
    match_weight: np.ndarray,
    config: ScoringConfig,
    *,
    deterministic: np.ndarray | None = None,
    hard_conflict: np.ndarray | None = None,
    must_link: np.ndarray | None = None,
    cannot_link: np.ndarray | None = None,
    review_only: np.ndarray | None = None,
) -> np.ndarray:
    """int8 decision codes (into :data:`DECISIONS`), applied weakest first so the strongest wins.

    ``review_only`` marks pairs the model may not link on its own (e.g. names disagree
    entirely): above the accept threshold they go to review instead.
    """
    out = np.full(len(match_weight), CODE["reject"], np.int8)
    out[match_weight >= config.review_weight] = CODE["review"]
    auto = match_weight >= config.accept_weight
    if review_only is not None:
        out[auto & review_only] = CODE["review"]
        auto &= ~review_only
    out[auto] = CODE["auto"]
    for mask, name in (
        (deterministic, "deterministic"),
        (hard_conflict, "hard_conflict"),
        (must_link, "must_link"),
        (cannot_link, "cannot_link"),
    ):
        if mask is not None:
            out[mask] = CODE[name]
    return out


def is_accepted(codes: np.ndarray) -> np.ndarray:
    return np.isin(codes, ACCEPTED_CODES)


def decision_labels(codes: np.ndarray) -> pd.Categorical[str]:
    return pd.Categorical.from_codes(codes.astype(np.int64), categories=pd.Index(list(DECISIONS)))


def _keys_at(record_keys: np.ndarray | pa.Array | pa.ChunkedArray, rid: np.ndarray) -> np.ndarray:
    """The keys of the given rids as Python strings (review items are few; the keys stay Arrow)."""
    if isinstance(record_keys, np.ndarray):
        return record_keys[rid]
    taken = record_keys.take(pa.array(np.asarray(rid, dtype=np.int64)))
    return np.asarray(taken.to_pylist(), dtype=object)


def review_items(
    rid_l: np.ndarray,
    rid_r: np.ndarray,
    match_weight: np.ndarray,
    reason: np.ndarray,
    record_keys: np.ndarray | pa.Array | pa.ChunkedArray,
    config: ScoringConfig,
) -> pd.DataFrame:
    """The steward's queue: one row per pair, most urgent first.

    ``priority`` 1 = a cluster was split (a conflict the model could not settle),
    2 = between thresholds in the upper half, 3 = between thresholds in the lower half.
    """
    mid = (config.accept_weight + config.review_weight) / 2.0
    priority = np.where(reason == REVIEW_SPLIT, 1, np.where(match_weight >= mid, 2, 3)).astype(np.int8)
    frame = pd.DataFrame(
        {
            "rid_l": rid_l.astype(np.int64),
            "rid_r": rid_r.astype(np.int64),
            "record_key_l": _keys_at(record_keys, rid_l),
            "record_key_r": _keys_at(record_keys, rid_r),
            "match_weight": match_weight.astype(np.float64),
            "reason": reason.astype(object),
            "priority": priority,
        }
    )
    return frame.sort_values(["priority", "match_weight"], ascending=[True, False], ignore_index=True)
