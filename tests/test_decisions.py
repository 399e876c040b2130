"""Deterministic links, hard evidence, steward constraints and thresholds."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from matchers.decisions import (
    CODE,
    DECISIONS,
    REVIEW_BETWEEN,
    REVIEW_SPLIT,
    Constraints,
    RecordEvidence,
    decide,
    deterministic_edges,
    hard_conflicts,
    is_accepted,
    pairs_in,
    review_items,
)
from schemas.scoring import HardEvidenceConfig, ScoringConfig

CFG = HardEvidenceConfig()


def _records(**cols: list) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    return pd.DataFrame({"rid": np.arange(n, dtype=np.int64), **cols})


def test_deterministic_links_are_star_edges_per_id_key() -> None:
    recs = _records(id_key=["R:1", "R:2", "R:1", None, "R:1", "R:2"])
    edges = deterministic_edges(recs, CFG)
    got = sorted(zip(edges["rid_l"], edges["rid_r"], strict=True))
    assert got == [(0, 2), (0, 4), (1, 5)]  # 3 records -> 2 edges, not 3 pairs


def test_placeholder_or_invalid_ids_never_link_deterministically() -> None:
    recs = _records(
        id_key=["R:1", "R:1", "R:9", "R:9"],
        id_placeholder=[True, True, False, False],
        id_valid=[True, True, False, True],
    )
    assert deterministic_edges(recs, CFG).empty


def test_placeholder_shared_by_a_thousand_strangers_links_none_of_them() -> None:
    n = 1000
    recs = _records(id_key=["RESIDENT_ID:111111111111111110"] * n, id_placeholder=[False] * n, id_valid=[True] * n)
    assert deterministic_edges(recs, CFG).empty  # more than deterministic_max_group records
    assert len(deterministic_edges(recs, HardEvidenceConfig(deterministic_max_group=2000))) == n - 1
    assert deterministic_edges(recs, HardEvidenceConfig(deterministic_id_key=False)).empty


def _id_records() -> pd.DataFrame:
    d1, d2 = dt.date(1990, 1, 1), dt.date(1990, 1, 2)
    return _records(
        id_valid=[True, True, True, False, True, True, True],
        id_type=[
            "RESIDENT_ID",
            "RESIDENT_ID",
            "RESIDENT_ID",
            "RESIDENT_ID",
            "PASSPORT_CN",
            "HMT_RESIDENCE_PERMIT",
            "RESIDENT_ID",
        ],
        id_number=["A", "B", "A", "C", "P1", "H1", "D"],
        id_gender=["M", "M", "M", "F", None, "F", "M"],
        id_birth_date=[d1, d1, d1, d2, None, d1, d2],
    )


def test_twins_with_different_valid_resident_ids_conflict() -> None:
    ev = RecordEvidence.from_records(_id_records())
    conflict = hard_conflicts(ev, np.array([0, 0]), np.array([1, 2]), CFG)
    assert conflict.tolist() == [True, False]  # twins 0/1 share name, DOB, gender; 0/2 same ID
    off = HardEvidenceConfig(resident_id_conflict=False)
    assert not hard_conflicts(ev, np.array([0]), np.array([1]), off)[0]


def test_an_invalid_id_or_another_document_type_is_no_resident_id_conflict() -> None:
    ev = RecordEvidence.from_records(_id_records())
    cfg = HardEvidenceConfig(gender_conflict=False, birth_date_conflict=False)
    assert hard_conflicts(ev, np.array([0, 0]), np.array([3, 4]), cfg).tolist() == [False, False]


def test_gender_conflict_between_valid_ids() -> None:
    ev = RecordEvidence.from_records(_id_records())
    cfg = HardEvidenceConfig(resident_id_conflict=False, birth_date_conflict=False)
    # 0 (M) vs 5 (F, residence permit): conflict; 0 vs 3 (F but invalid ID): none; 0 vs 4 (no gender): none
    assert hard_conflicts(ev, np.array([0, 0, 0]), np.array([5, 3, 4]), cfg).tolist() == [True, False, False]


def test_birth_date_conflict_between_valid_ids() -> None:
    ev = RecordEvidence.from_records(_id_records())
    cfg = HardEvidenceConfig(resident_id_conflict=False, gender_conflict=False)
    assert hard_conflicts(ev, np.array([0, 0, 0]), np.array([6, 3, 5]), cfg).tolist() == [True, False, False]


def test_hard_evidence_needs_its_columns() -> None:
    ev = RecordEvidence.from_records(_records(name=["a", "b"]))
    assert not hard_conflicts(ev, np.array([0]), np.array([1]), CFG).any()


def test_thresholds_and_precedence() -> None:
    cfg = ScoringConfig(accept_weight=10, review_weight=2)
    w = np.array([-5.0, 3.0, 11.0, -5.0, 20.0, 20.0, -20.0, 20.0])
    det = np.array([0, 0, 0, 1, 1, 0, 0, 0], bool)
    hard = np.array([0, 0, 0, 0, 1, 1, 1, 0], bool)
    must = np.array([0, 0, 0, 0, 0, 0, 1, 1], bool)
    cannot = np.array([0, 0, 0, 0, 0, 0, 0, 1], bool)
    codes = decide(w, cfg, deterministic=det, hard_conflict=hard, must_link=must, cannot_link=cannot)
    got = [DECISIONS[c] for c in codes]
    assert got == [
        "reject",
        "review",
        "auto",
        "deterministic",
        "hard_conflict",
        "hard_conflict",
        "must_link",
        "cannot_link",
    ]
    assert is_accepted(codes).tolist() == [False, False, True, True, False, False, True, False]


def test_threshold_boundaries_are_inclusive() -> None:
    cfg = ScoringConfig(accept_weight=10, review_weight=2)
    codes = decide(np.array([2.0, 10.0, 1.999]), cfg)
    assert codes.tolist() == [CODE["review"], CODE["auto"], CODE["reject"]]


def test_constraints_map_record_keys_to_ordered_rid_pairs() -> None:
    keys = pd.Series(["d:1", "d:2", "c:1", "c:2"])
    c = Constraints(
        must_link=pd.DataFrame({"record_key_l": ["c:1", "x:9"], "record_key_r": ["d:1", "d:2"]}),
        cannot_link=pd.DataFrame({"record_key_l": ["d:2", "d:2"], "record_key_r": ["c:2", "c:2"]}),
    )
    must, cannot = c.rid_pairs(keys)
    assert must.to_dict("list") == {"rid_l": [0], "rid_r": [2]}  # unknown key dropped
    assert cannot.to_dict("list") == {"rid_l": [1], "rid_r": [3]}  # duplicates dropped
    assert pairs_in(np.array([2, 0, 1]), np.array([0, 1, 3]), must, 4).tolist() == [True, False, False]
    empty_must, empty_cannot = Constraints.empty().rid_pairs(keys)
    assert empty_must.empty and empty_cannot.empty


def test_review_items_put_splits_first_then_by_weight() -> None:
    keys = np.array(["k0", "k1", "k2", "k3"], dtype=object)
    reason = np.array([REVIEW_BETWEEN, REVIEW_BETWEEN, REVIEW_SPLIT])
    frame = review_items(
        np.array([0, 1, 2]), np.array([1, 2, 3]), np.array([5.0, 11.0, 30.0]), reason, keys, ScoringConfig()
    )
    assert frame["reason"].tolist() == [REVIEW_SPLIT, REVIEW_BETWEEN, REVIEW_BETWEEN]
    assert frame["priority"].tolist() == [1, 2, 3]
    assert frame.loc[0, "record_key_l"] == "k2"


def test_review_only_pairs_are_never_auto_linked_but_deterministic_still_wins() -> None:
    cfg = ScoringConfig(accept_weight=10, review_weight=2)
    w = np.array([20.0, 20.0, 5.0, 20.0])
    review_only = np.array([True, False, True, True])
    det = np.array([False, False, False, True])
    codes = decide(w, cfg, review_only=review_only, deterministic=det)
    assert [DECISIONS[c] for c in codes] == ["review", "auto", "review", "deterministic"]


def _random_evidence(seed: int, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)

    def pick(values: list, null_share: float = 0.2) -> list:
        out = [values[i] for i in rng.integers(0, len(values), n)]
        return [None if rng.random() < null_share else v for v in out]

    days = [dt.date(1980, 1, 1) + dt.timedelta(days=int(d)) for d in range(5)]
    return _records(
        id_key=pick([f"RESIDENT_ID:{i}" for i in range(40)]),
        id_number=pick([str(110101198001010000 + i) for i in range(40)]),
        id_type=pick(["RESIDENT_ID", "PASSPORT", "HMT_PERMIT"]),
        id_valid=pick([True, False]),
        id_placeholder=pick([True, False, False, False]),
        id_gender=pick(["M", "F"]),
        id_birth_date=pick(days),
    )


def test_arrow_records_give_the_same_links_and_evidence_as_pandas() -> None:
    import pyarrow as pa

    cfg = HardEvidenceConfig(deterministic_max_group=12)
    for seed in range(20):
        frame = _random_evidence(seed)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        edges_pd, edges_pa = deterministic_edges(frame, cfg), deterministic_edges(table, cfg)
        assert edges_pd.equals(edges_pa)
        ev_pd, ev_pa = RecordEvidence.from_records(frame), RecordEvidence.from_records(table)
        rng = np.random.default_rng(seed)
        rid_l, rid_r = rng.integers(0, len(frame), 2000), rng.integers(0, len(frame), 2000)
        assert (hard_conflicts(ev_pd, rid_l, rid_r, cfg) == hard_conflicts(ev_pa, rid_l, rid_r, cfg)).all()
        for field in ("resident_id", "id_gender", "id_birth_date"):
            a, b = getattr(ev_pd, field), getattr(ev_pa, field)
            assert ((a >= 0) == (b >= 0)).all()  # same records carry the evidence
            same_pd = a[rid_l] == a[rid_r]
            same_pa = b[rid_l] == b[rid_r]
            assert (same_pd == same_pa).all()  # and the same pairs agree on it
