"""Stable golden IDs: inheritance, merges, splits, retirement, resolution, uniqueness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matchers.golden_ids import (
    GoldenAssignment,
    GoldenIdError,
    assign_golden_ids,
    new_golden_ids,
    resolve_golden_id,
    resolve_golden_ids,
    seeded_id_factory,
)


def clusters(mapping: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame({"record_key": list(mapping), "cluster": list(mapping.values())})


def gid_of(a: GoldenAssignment) -> dict[str, str]:
    return dict(zip(a.xref["record_key"], a.xref["golden_id"], strict=True))


def run(mapping: dict[str, int], prev: GoldenAssignment | None, run_id: str, seed: int = 7) -> GoldenAssignment:
    return assign_golden_ids(
        clusters(mapping),
        None if prev is None else prev.xref,
        None if prev is None else prev.registry,
        run_id,
        seeded_id_factory(seed + len(run_id)),
    )


def types(a: GoldenAssignment) -> list[str]:
    return sorted(a.events["event_type"])


FIRST = {"d:1": 1, "d:2": 1, "c:1": 2, "c:2": 2, "c:3": 2, "l:1": 3}


def test_first_run_issues_one_id_per_cluster_and_created_events() -> None:
    a = run(FIRST, None, "r1")
    ids = gid_of(a)
    assert ids["d:1"] == ids["d:2"] != ids["c:1"]
    assert a.xref["golden_id"].nunique() == 3
    assert types(a) == ["created"] * 3
    assert list(a.registry["issued_seq"]) == [1, 2, 3]
    assert set(a.registry["status"]) == {"active"}
    assert (a.registry["created_run_id"] == "r1").all()


def test_identical_rerun_changes_no_id_and_emits_no_event() -> None:
    a = run(FIRST, None, "r1")
    relabelled = {k: v * 10 + 5 for k, v in FIRST.items()}  # cluster numbers are not stable across runs
    b = run(relabelled, a, "r2")
    assert gid_of(b) == gid_of(a)
    assert b.events.empty
    assert b.registry.equals(a.registry)


def test_delta_adding_a_record_keeps_the_id() -> None:
    a = run(FIRST, None, "r1")
    b = run({**FIRST, "l:9": 2}, a, "r2")
    assert {k: v for k, v in gid_of(b).items() if k != "l:9"} == gid_of(a)
    assert gid_of(b)["l:9"] == gid_of(a)["c:1"]
    assert types(b) == ["record_added"]
    assert b.events.iloc[0]["record_key"] == "l:9"


def test_merge_keeps_the_older_id_and_retires_the_other() -> None:
    a = run(FIRST, None, "r1")
    old = gid_of(a)
    b = run({**FIRST, "c:1": 1, "c:2": 1, "c:3": 1}, a, "r2")  # clusters 1 and 2 become one
    new = gid_of(b)
    older, younger = old["c:1"], old["d:1"]  # new IDs are issued in order of the clusters' smallest key
    seq = a.registry.set_index("golden_id")["issued_seq"]
    assert seq[older] < seq[younger]
    assert {new[k] for k in ("d:1", "d:2", "c:1", "c:2", "c:3")} == {older}
    reg = b.registry.set_index("golden_id")
    assert reg.loc[younger, "status"] == "retired"
    assert reg.loc[younger, "merged_into"] == older
    assert reg.loc[younger, "retired_run_id"] == "r2"
    assert types(b) == ["merged", "retired"]
    merged = b.events[b.events["event_type"] == "merged"].iloc[0]
    assert (merged["golden_id"], merged["related_golden_id"]) == (older, younger)
    assert resolve_golden_id(b.registry, younger) == older


def test_merge_survivor_is_older_even_when_it_holds_fewer_records() -> None:
    a = run({"a:1": 1, "z:1": 2, "z:2": 2, "z:3": 2}, None, "r1")
    old = gid_of(a)
    b = run({"a:1": 1, "z:1": 1, "z:2": 1, "z:3": 1}, a, "r2")
    assert set(gid_of(b).values()) == {old["a:1"]}


def test_split_majority_keeps_the_id_minority_gets_a_new_one() -> None:
    a = run(FIRST, None, "r1")
    old = gid_of(a)
    b = run({**FIRST, "c:3": 9}, a, "r2")  # c:3 leaves its cluster of three
    new = gid_of(b)
    assert new["c:1"] == new["c:2"] == old["c:1"]
    assert new["c:3"] not in set(old.values())
    assert types(b) == ["created", "record_moved", "split"]
    split = b.events[b.events["event_type"] == "split"].iloc[0]
    assert (split["golden_id"], split["related_golden_id"]) == (old["c:1"], new["c:3"])
    moved = b.events[b.events["event_type"] == "record_moved"].iloc[0]
    assert (moved["record_key"], moved["golden_id"], moved["related_golden_id"]) == ("c:3", new["c:3"], old["c:1"])
    assert b.registry["issued_seq"].max() == 4


def test_split_tie_is_broken_by_smallest_record_key_whatever_the_cluster_numbers() -> None:
    a = run({"k:1": 1, "k:2": 1, "k:3": 1, "k:4": 1}, None, "r1")
    gid = gid_of(a)["k:1"]
    for labels in ((1, 2), (2, 1)):
        b = run({"k:3": labels[0], "k:4": labels[0], "k:1": labels[1], "k:2": labels[1]}, a, "r2")
        assert gid_of(b)["k:1"] == gid_of(b)["k:2"] == gid
        assert gid_of(b)["k:3"] != gid


def test_id_without_records_is_retired_and_records_removed_are_reported() -> None:
    a = run(FIRST, None, "r1")
    gone = gid_of(a)["l:1"]
    b = run({k: v for k, v in FIRST.items() if k != "l:1"}, a, "r2")
    reg = b.registry.set_index("golden_id")
    assert reg.loc[gone, "status"] == "retired"
    assert reg.loc[[gone], "merged_into"].isna().all()
    ev = b.events.set_index("event_type")
    assert ev.loc["retired", "reason"] == "no records"
    assert ev.loc["record_removed", "record_key"] == "l:1"
    with pytest.raises(GoldenIdError, match="without a successor"):
        resolve_golden_id(b.registry, gone)
    assert resolve_golden_ids(b.registry, [gone]).isna().all()


def test_retired_ids_are_never_reissued_when_records_come_back() -> None:
    a = run(FIRST, None, "r1")
    gone = gid_of(a)["l:1"]
    b = run({k: v for k, v in FIRST.items() if k != "l:1"}, a, "r2")
    c = run(FIRST, b, "r3")
    assert gid_of(c)["l:1"] != gone
    assert c.registry["golden_id"].is_unique


def test_chain_of_merges_resolves_to_the_current_id() -> None:
    a = run({"a:1": 1, "b:1": 2, "c:1": 3}, None, "r1")
    ids = gid_of(a)
    b = run({"a:1": 1, "b:1": 1, "c:1": 3}, a, "r2")
    c = run({"a:1": 1, "b:1": 1, "c:1": 1}, b, "r3")
    assert resolve_golden_id(c.registry, ids["b:1"]) == ids["a:1"]
    assert resolve_golden_id(c.registry, ids["c:1"]) == ids["a:1"]
    vec = resolve_golden_ids(c.registry, pd.Series([ids["a:1"], ids["b:1"], ids["c:1"], "GUNKNOWN"]))
    assert list(vec[:3]) == [ids["a:1"]] * 3
    assert pd.isna(vec[3])


def test_merge_cycle_is_detected_not_looped() -> None:
    reg = pd.DataFrame(
        {
            "golden_id": ["GA", "GB", "GC"],
            "status": ["retired", "retired", "active"],
            "merged_into": ["GB", "GA", None],
            "created_run_id": "r1",
            "retired_run_id": ["r2", "r2", None],
            "issued_seq": [1, 2, 3],
        }
    )
    with pytest.raises(GoldenIdError, match="cycle"):
        resolve_golden_id(reg, "GA")
    with pytest.raises(GoldenIdError, match="cycle"):
        resolve_golden_ids(reg, ["GC"])
    with pytest.raises(GoldenIdError, match="never issued"):
        resolve_golden_id(reg, "GZ")


def test_previous_xref_pointing_at_a_merged_id_is_resolved_first() -> None:
    a = run({"a:1": 1, "b:1": 2}, None, "r1")
    b = run({"a:1": 1, "b:1": 1}, a, "r2")
    stale = a.xref  # an xref from before the merge, with the current registry
    c = assign_golden_ids(clusters({"a:1": 1, "b:1": 1}), stale, b.registry, "r3", seeded_id_factory(3))
    assert set(gid_of(c).values()) == {gid_of(b)["a:1"]}
    assert c.events.empty


def test_new_ids_are_opaque_and_unique() -> None:
    ids = new_golden_ids(5000)
    assert len(set(ids)) == 5000
    assert all(len(g) == 17 and g.startswith("G") and g[1:].isalnum() and g[1:].isupper() for g in ids)
    assert seeded_id_factory(1)(4) == seeded_id_factory(1)(4)


def test_factory_collisions_with_the_registry_are_replaced() -> None:
    a = run({"a:1": 1}, None, "r1")
    taken = a.xref["golden_id"].iloc[0]
    calls = iter([[taken, taken], ["GFRESH00000000001"]])
    b = assign_golden_ids(clusters({"a:1": 1, "b:1": 2}), a.xref, a.registry, "r2", lambda n: next(calls)[:n])
    assert gid_of(b)["b:1"] == "GFRESH00000000001"


def test_duplicate_record_keys_in_clusters_are_refused() -> None:
    with pytest.raises(GoldenIdError, match="twice"):
        assign_golden_ids(clusters({"a:1": 1}).pipe(lambda d: pd.concat([d, d])), None, None, "r1")


def _chain_end(reg: pd.DataFrame, gid: str) -> str:
    nxt = reg.set_index("golden_id")["merged_into"]
    for _ in range(len(reg) + 1):
        if pd.isna(nxt[gid]):
            return gid
        gid = nxt[gid]
    raise AssertionError("cycle")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    runs=st.lists(st.lists(st.one_of(st.none(), st.integers(0, 5)), min_size=12, max_size=12), min_size=1, max_size=6)
)
def test_ids_stay_unique_and_every_retired_id_resolves(runs: list[list[int | None]]) -> None:
    """Random sequences of cluster assignments (None = record absent this run)."""
    prev: GoldenAssignment | None = None
    ever: set[str] = set()
    for i, labels in enumerate(runs):
        mapping = {f"s:{k:02d}": c for k, c in enumerate(labels) if c is not None}
        if not mapping:
            continue
        a = run(mapping, prev, f"r{i}", seed=i)
        reg = a.registry
        assert reg["golden_id"].is_unique
        assert reg["issued_seq"].is_unique
        assert ever <= set(reg["golden_id"])  # the registry forgets nothing
        ever = set(reg["golden_id"])
        active = set(reg.loc[reg["status"] == "active", "golden_id"])
        assert set(a.xref["golden_id"]) == active  # every active ID has records, every record an active ID
        # one golden ID per cluster, one cluster per golden ID
        joined = clusters(mapping).merge(a.xref, on="record_key")
        assert joined.groupby("cluster")["golden_id"].nunique().eq(1).all()
        assert joined.groupby("golden_id")["cluster"].nunique().eq(1).all()
        merged = reg[reg["merged_into"].notna()]
        resolved = resolve_golden_ids(reg, merged["golden_id"])
        # a merged ID resolves to an active ID, unless its chain ends at an ID whose records all left
        for gid, target in zip(merged["golden_id"], resolved, strict=True):
            if target is None:
                end = _chain_end(reg, gid)
                assert reg.set_index("golden_id").loc[end, "status"] == "retired"
            else:
                assert target in active and _chain_end(reg, gid) == target
        seq = reg.set_index("golden_id")["issued_seq"]
        # survivors of a merge are always older than what they absorbed
        assert (merged["merged_into"].map(seq).to_numpy() < merged["issued_seq"].to_numpy()).all()
        prev = a


def test_assignment_is_deterministic_given_the_factory() -> None:
    rng = np.random.default_rng(5)
    mapping = {f"x:{i}": int(c) for i, c in enumerate(rng.integers(0, 50, 300))}
    a1, a2 = run(mapping, None, "r1"), run(mapping, None, "r1")
    assert a1.xref.equals(a2.xref)
    shuffled = dict(sorted(mapping.items(), key=lambda kv: hash(kv[0]) % 97))
    a3 = run(shuffled, None, "r1")
    assert gid_of(a3) == gid_of(a1)
