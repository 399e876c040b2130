"""Decision semantics of the stewards' store: claims, append-only decisions, superseding, constraints."""

from __future__ import annotations

import sqlite3
import threading

import pandas as pd
import pytest

from mdm.errors import ReviewError
from steward.store import DecisionStore, item_id_for


def _queue(*pairs: tuple[str, str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"record_key_l": a, "record_key_r": b, "match_weight": w, "reason": "between_thresholds"} for a, b, w in pairs]
    )


def _xref() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "record_key": ["deposit:1", "card:1", "loan:1", "deposit:2", "card:2"],
            "golden_id": ["G1", "G2", "G2", "G3", "G4"],
            "source_system": ["deposit", "card", "loan", "deposit", "card"],
        }
    )


@pytest.fixture()
def store(tmp_path):
    s = DecisionStore.open(tmp_path)
    s.sync_queue(_queue(("deposit:1", "card:1", 6.0), ("deposit:2", "card:2", 8.0)), _xref(), "R1")
    yield s
    s.close()


def test_queue_is_prioritized_by_records_affected(store):
    items = store.items()
    assert list(items["record_key_l"]) == ["card:1", "card:2"]  # 3 records affected before 2
    assert items.iloc[0]["n_records"] == 3


def test_two_stewards_never_hold_the_same_item(store):
    first = store.next_item("alice")
    second = store.next_item("bob")
    assert first is not None and second is not None
    assert first["item_id"] != second["item_id"]
    with pytest.raises(ReviewError, match="claimed by alice"):
        store.claim(first["item_id"], "bob")
    assert store.next_item("carol") is None


def test_concurrent_claims_have_one_winner(tmp_path):
    s = DecisionStore.open(tmp_path)
    s.sync_queue(_queue(("a:1", "b:1", 5.0)), None, "R1")
    item = s.items().iloc[0]["item_id"]
    wins: list[str] = []

    def grab(name: str) -> None:
        own = DecisionStore.open(tmp_path)
        try:
            own.claim(item, name)
            wins.append(name)
        except ReviewError:
            pass
        finally:
            own.close()

    threads = [threading.Thread(target=grab, args=(f"s{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1


def test_expired_lease_can_be_taken_over(store):
    item = store.next_item("alice", lease_seconds=-1)
    assert item is not None
    claim = store.claim(item["item_id"], "bob")
    assert claim.steward == "bob"


def test_decision_needs_a_live_claim(store):
    item = store.items().iloc[0]["item_id"]
    with pytest.raises(ReviewError, match="claim item"):
        store.decide(item, "alice", "match")


def test_later_decision_supersedes_and_history_keeps_both(store):
    item = store.next_item("alice")
    store.decide(item["item_id"], "alice", "match", reason="same person, new phone")
    must, cannot = store.constraints()
    assert len(must) == 1 and len(cannot) == 0
    store.claim(item["item_id"], "bob")
    store.decide(item["item_id"], "bob", "no_match", reason="twins")
    must, cannot = store.constraints()
    assert len(must) == 0 and len(cannot) == 1
    hist = store.history(item["record_key_l"], item["record_key_r"])
    assert list(hist["action"]) == ["match", "no_match"]
    assert list(hist["steward"]) == ["alice", "bob"]


def test_skip_leaves_item_open_and_adds_no_constraint(store):
    item = store.next_item("alice")
    store.decide(item["item_id"], "alice", "skip")
    assert store.item(item["item_id"])["status"] == "open"
    must, cannot = store.constraints()
    assert must.empty and cannot.empty


def test_decisions_are_append_only(store, tmp_path):
    item = store.next_item("alice")
    store.decide(item["item_id"], "alice", "match")
    raw = sqlite3.connect(tmp_path / "steward.sqlite")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("UPDATE decisions SET action='no_match'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("DELETE FROM decisions")
    raw.close()


def test_unmerge_cannot_links_record_with_the_rest(store):
    store.unmerge("card:1", ["card:1", "loan:1", "deposit:9"], "alice", reason="different person")
    _, cannot = store.constraints()
    pairs = {tuple(p) for p in cannot.to_numpy()}
    assert pairs == {("card:1", "loan:1"), ("card:1", "deposit:9")}


def test_merge_adds_one_must_link(store):
    store.merge(["deposit:1"], ["card:1", "loan:1"], "alice")
    must, _ = store.constraints()
    assert {tuple(p) for p in must.to_numpy()} == {("card:1", "deposit:1")}
    with pytest.raises(ReviewError, match="same golden customer"):
        store.merge(["a:1"], ["a:1"], "alice")


def test_vanished_items_are_resolved_and_known_items_keep_their_id(store):
    before = set(store.items()["item_id"])
    store.sync_queue(_queue(("card:2", "deposit:2", 7.0)), _xref(), "R2")  # sides swapped: same item
    open_items = store.items()
    assert set(open_items["item_id"]) == {item_id_for("between_thresholds", "deposit:2", "card:2")}
    assert len(before - set(open_items["item_id"])) == 1
    assert store.counts()["resolved"] == 1


def test_unknown_verdict_is_refused(store):
    item = store.next_item("alice")
    with pytest.raises(ReviewError, match="unknown decision"):
        store.decide(item["item_id"], "alice", "maybe")


def test_skipped_items_are_not_served_again_to_the_same_steward(store):
    first = store.next_item("alice")
    store.decide(first["item_id"], "alice", "skip")
    second = store.next_item("alice")
    assert second is not None and second["item_id"] != first["item_id"]
    assert store.next_item("bob")["item_id"] == first["item_id"]


def test_one_store_shared_by_request_threads(store):
    """The web app shares one store across its request threads: concurrent claims never collide."""
    store.sync_queue(_queue(*[(f"a:{i}", f"b:{i}", 5.0) for i in range(30)]), None, "R2")
    errors: list[BaseException] = []
    got: list[str] = []

    def work(name: str) -> None:
        try:
            for _ in range(5):
                item = store.next_item(name)
                if item is not None:
                    got.append(item["item_id"])
                    store.decide(item["item_id"], name, "match")
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(f"s{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(got) == len(set(got)) > 0


def test_opening_a_freshly_claimed_item_writes_nothing(store):
    item = store.next_item("alice")
    before = store._conn.execute("SELECT claimed_at, expires_at FROM claims").fetchall()
    changes = store._conn.total_changes
    claim = store.claim(item["item_id"], "alice", renew_after=60)
    assert claim.steward == "alice" and store._conn.total_changes == changes
    assert store._conn.execute("SELECT claimed_at, expires_at FROM claims").fetchall() == before
    with pytest.raises(ReviewError, match="claimed by alice"):
        store.claim(item["item_id"], "bob", renew_after=60)  # another steward is still refused


def test_an_older_claim_is_renewed_when_opened(store):
    item = store.next_item("alice", lease_seconds=900)
    store._conn.execute("UPDATE claims SET claimed_at = '2000-01-01T00:00:00+00:00'")
    claim = store.claim(item["item_id"], "alice", renew_after=60)
    (claimed_at,) = store._conn.execute("SELECT claimed_at FROM claims").fetchone()
    assert claimed_at > "2000-01-01T00:00:00+00:00" and claim.expires_at.year > 2000


def test_item_rows_and_history_rows_match_the_frames(store):
    item = store.next_item("alice")
    store.decide(item["item_id"], "alice", "match", "same person")
    assert store.item_rows(status=None) == store.items(status=None).to_dict("records")
    rows = store.history_rows(item["record_key_r"], item["record_key_l"])  # either order
    assert [r["action"] for r in rows] == ["match"] and rows[0]["reason"] == "same person"
    assert store.item_rows(status="nothing") == [] and list(store.items(status="nothing").columns)[:2] == [
        "item_id", "kind"]
