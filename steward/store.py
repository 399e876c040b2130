"""The stewards' review queue and their decisions (SQLite in the state folder).

* Review items come from each published master's ``review_queue``; an item is claimed by
  one steward at a time under a lease that expires.
* Decisions are append-only (triggers refuse UPDATE and DELETE); a later decision on the
  same pair supersedes an earlier one and both stay in the history.
* The latest decision per record pair becomes a constraint every later run honours:
  match → must-link, not a match → cannot-link, skip → none. Unmerge and merge are
  stored as the pair decisions they imply.

SQLite (WAL) is used rather than DuckDB because the web app and the nightly run are
separate processes that both need the file at the same time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from mdm.errors import ReviewError
from steward.sqlite import ThreadLocalSQLite

log = logging.getLogger(__name__)

DB_NAME = "steward.sqlite"
Verdict = Literal["match", "no_match", "skip"]
VERDICTS: tuple[str, ...] = ("match", "no_match", "skip")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS review_items (
    item_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,                 -- between_thresholds | cluster_split
    record_key_l TEXT NOT NULL,
    record_key_r TEXT NOT NULL,
    golden_id_l TEXT,
    golden_id_r TEXT,
    match_weight REAL,
    priority REAL NOT NULL DEFAULT 0,
    n_records INTEGER,
    n_systems INTEGER,
    status TEXT NOT NULL DEFAULT 'open', -- open | decided | resolved
    first_run_id TEXT,
    last_run_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS review_items_status ON review_items(status, priority DESC);
CREATE INDEX IF NOT EXISTS review_items_queue ON review_items(status, priority DESC, item_id);
CREATE INDEX IF NOT EXISTS review_items_kind ON review_items(status, kind);
CREATE TABLE IF NOT EXISTS claims (
    item_id TEXT PRIMARY KEY REFERENCES review_items(item_id),
    steward TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    decision_id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT,
    action TEXT NOT NULL,               -- match | no_match | skip (unmerge / merge expand to these)
    origin TEXT NOT NULL,               -- review | unmerge | merge | import
    record_key_l TEXT NOT NULL,
    record_key_r TEXT NOT NULL,
    steward TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    reason TEXT,
    batch_id TEXT
);
CREATE INDEX IF NOT EXISTS decisions_pair ON decisions(record_key_l, record_key_r, decision_id);
CREATE INDEX IF NOT EXISTS decisions_skips ON decisions(steward, action, item_id);
CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
"""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _iso(t: dt.datetime) -> str:
    return t.isoformat()


def ordered(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def item_id_for(kind: str, key_l: str, key_r: str) -> str:
    """Stable item id of a record pair (order-insensitive), the same on every run."""
    lo, hi = ordered(key_l, key_r)
    return hashlib.sha256(f"{kind}|{lo}|{hi}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Claim:
    item_id: str
    steward: str
    expires_at: dt.datetime


class DecisionStore:
    """Review items, claims and append-only decisions in ``<state>/steward.sqlite``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = ThreadLocalSQLite(path, foreign_keys=True)
        # Writers of this process queue on this lock rather than in SQLite's busy handler, which sleeps in
        # growing steps (up to 100 ms) while another connection writes.
        self._write_lock = threading.Lock()
        self._conn.executescript(_SCHEMA)

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._db.conn

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, state_dir: Path) -> DecisionStore:
        return cls(Path(state_dir) / DB_NAME)

    @classmethod
    def open_existing(cls, state_dir: Path) -> DecisionStore | None:
        path = Path(state_dir) / DB_NAME
        return cls(path) if path.exists() else None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> DecisionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: one writer at a time, so two stewards never win the same claim."""
        with self._write_lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- the queue -----------------------------------------------------------------------------

    def sync_queue(self, review_queue: pd.DataFrame, xref: pd.DataFrame | None, run_id: str) -> dict[str, int]:
        """Load a run's review queue: new pairs open, known ones refreshed, vanished open ones resolved.

        ``review_queue`` needs record_key_l, record_key_r, match_weight, reason and may carry
        priority; ``xref`` (record_key, golden_id, source_system) gives each side's current
        golden customer and the size of the decision (records and systems it affects).
        """
        now = _iso(_now())
        q = review_queue.copy()
        if len(q) == 0:
            q = pd.DataFrame(columns=["record_key_l", "record_key_r", "match_weight", "reason"])
        q["kind"] = q.get("reason", pd.Series("between_thresholds", index=q.index)).fillna("between_thresholds")
        if xref is not None and len(q):
            gid = xref.set_index("record_key")["golden_id"]
            q["golden_id_l"] = q["record_key_l"].map(gid)
            q["golden_id_r"] = q["record_key_r"].map(gid)
            sizes = xref.groupby("golden_id").agg(n=("record_key", "size"), s=("source_system", "nunique"))
            n_l = q["golden_id_l"].map(sizes["n"]).fillna(1)
            n_r = q["golden_id_r"].map(sizes["n"]).fillna(1)
            same = q["golden_id_l"] == q["golden_id_r"]
            q["n_records"] = (n_l + n_r.where(~same, 0)).astype(int)
            q["n_systems"] = q["golden_id_l"].map(sizes["s"]).fillna(1).astype(int)
        else:
            q["golden_id_l"] = q["golden_id_r"] = None
            q["n_records"] = 2
            q["n_systems"] = 1
        if "priority" not in q.columns:
            # Decisions that touch more records and systems come first; closer calls before clear ones.
            q["priority"] = q["n_records"] * 10 + q["n_systems"]
        ids = [item_id_for(k, a, b) for k, a, b in zip(q["kind"], q["record_key_l"], q["record_key_r"], strict=True)]
        q["item_id"] = ids
        rows = [
            (
                r.item_id, r.kind, *ordered(str(r.record_key_l), str(r.record_key_r)), r.golden_id_l, r.golden_id_r,
                _float(r.match_weight), float(r.priority), int(r.n_records), int(r.n_systems),  # type: ignore[arg-type]
                run_id, run_id, now, now,
            )
            for r in q.itertuples(index=False)
        ]
        with self._tx() as c:
            before = {row[0] for row in c.execute("SELECT item_id FROM review_items WHERE status='open'")}
            c.executemany(
                """INSERT INTO review_items (item_id, kind, record_key_l, record_key_r, golden_id_l, golden_id_r,
                       match_weight, priority, n_records, n_systems, first_run_id, last_run_id, created_at, updated_at)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                   ON CONFLICT(item_id) DO UPDATE SET golden_id_l=excluded.golden_id_l,
                       golden_id_r=excluded.golden_id_r, match_weight=excluded.match_weight,
                       priority=excluded.priority, n_records=excluded.n_records, n_systems=excluded.n_systems,
                       last_run_id=excluded.last_run_id, updated_at=excluded.updated_at""",
                rows,
            )
            vanished = before - set(ids)
            c.executemany(
                "UPDATE review_items SET status='resolved', updated_at=? WHERE item_id=? AND status='open'",
                [(now, i) for i in vanished],
            )
        added = len(set(ids) - before)
        log.info(
            "review queue synced for run %s: %d items, %d new, %d resolved", run_id, len(ids), added, len(vanished)
        )
        return {"items": len(ids), "new": added, "resolved": len(vanished)}

    def items(self, status: str | None = "open", kind: str | None = None, limit: int = 100, offset: int = 0,
              min_weight: float | None = None, max_weight: float | None = None) -> pd.DataFrame:
        rows = self.item_rows(status, kind, limit, offset, min_weight, max_weight)
        return pd.DataFrame(rows, columns=list(rows[0]) if rows else _ITEM_COLUMNS)

    def item_rows(self, status: str | None = "open", kind: str | None = None, limit: int = 100, offset: int = 0,
                  min_weight: float | None = None, max_weight: float | None = None) -> list[dict[str, Any]]:
        """Review items by priority with their current claim (``claimed_by``, ``claim_expires``), as dicts."""
        where: list[str] = ["1=1"]
        args: list[Any] = []
        if status:
            where.append("i.status = ?")
            args.append(status)
        if kind:
            where.append("i.kind = ?")
            args.append(kind)
        if min_weight is not None:
            where.append("i.match_weight >= ?")
            args.append(min_weight)
        if max_weight is not None:
            where.append("i.match_weight <= ?")
            args.append(max_weight)
        sql = f"""SELECT i.*, c.steward AS claimed_by, c.expires_at AS claim_expires
                  FROM review_items i LEFT JOIN claims c ON c.item_id = i.item_id AND c.expires_at > ?
                  WHERE {' AND '.join(where)} ORDER BY i.priority DESC, i.item_id LIMIT ? OFFSET ?"""
        return [dict(r) for r in self._conn.execute(sql, [_iso(_now()), *args, limit, offset]).fetchall()]

    def counts(self) -> dict[str, int]:
        rows = self._conn.execute("SELECT status, kind, COUNT(*) n FROM review_items GROUP BY status, kind").fetchall()
        out: dict[str, int] = {}
        for r in rows:
            out[f"{r['status']}"] = out.get(r["status"], 0) + r["n"]
            out[f"{r['status']}:{r['kind']}"] = r["n"]
        return out

    def item(self, item_id: str) -> dict[str, Any]:
        row = self._conn.execute("SELECT * FROM review_items WHERE item_id = ?", (item_id,)).fetchone()
        if row is None:
            raise ReviewError(f"no review item {item_id!r}; list open items with `mdm review list`")
        return dict(row)

    # -- claims ----------------------------------------------------------------------------------

    def claim(self, item_id: str, steward: str, lease_seconds: int = 900, open_only: bool = False,
              renew_after: int | None = None) -> Claim:
        """Claim an item for one steward; refused while another steward's lease runs.

        ``open_only`` also refuses an item decided meanwhile (the queue's "next item" uses it).
        ``renew_after``: a running claim of this steward taken or renewed less than this many
        seconds ago is kept as it is, without a write (opening the item "next item" has just
        claimed renews nothing).
        """
        now = _now()
        if renew_after is not None and not open_only:
            held = self._conn.execute(
                "SELECT steward, claimed_at, expires_at FROM claims WHERE item_id=?", (item_id,)
            ).fetchone()
            if (held is not None and held["steward"] == steward and held["expires_at"] > _iso(now)
                    and held["claimed_at"] > _iso(now - dt.timedelta(seconds=renew_after))):
                return Claim(item_id, steward, dt.datetime.fromisoformat(held["expires_at"]))
        expires = now + dt.timedelta(seconds=lease_seconds)
        with self._tx() as c:
            item = c.execute("SELECT status FROM review_items WHERE item_id=?", (item_id,)).fetchone()
            if item is None:
                raise ReviewError(f"no review item {item_id!r}; list open items with `mdm review list`")
            if open_only and item["status"] != "open":
                raise ReviewError(f"item {item_id} was decided meanwhile; pick another item")
            held = c.execute("SELECT steward, expires_at FROM claims WHERE item_id=?", (item_id,)).fetchone()
            if held is not None and held["steward"] != steward and held["expires_at"] > _iso(now):
                raise ReviewError(
                    f"item {item_id} is claimed by {held['steward']} until {held['expires_at']}; pick another item"
                )
            c.execute(
                """INSERT INTO claims (item_id, steward, claimed_at, expires_at) VALUES (?,?,?,?)
                   ON CONFLICT(item_id) DO UPDATE SET steward=excluded.steward, claimed_at=excluded.claimed_at,
                   expires_at=excluded.expires_at""",
                (item_id, steward, _iso(now), _iso(expires)),
            )
        return Claim(item_id, steward, expires)

    def next_item(self, steward: str, lease_seconds: int = 900, kind: str | None = None) -> dict[str, Any] | None:
        """The highest-priority open item nobody else holds, claimed for ``steward``."""
        now = _iso(_now())
        args: list[Any] = [now, steward, steward]
        extra = ""
        if kind:
            extra = "AND i.kind = ?"
            args.append(kind)
        # Items this steward skipped stay open for others (and in the list) but are not served again.
        rows = self._conn.execute(
            f"""SELECT i.item_id FROM review_items i LEFT JOIN claims c ON c.item_id = i.item_id
                WHERE i.status='open' AND (c.item_id IS NULL OR c.expires_at <= ? OR c.steward = ?)
                  AND i.item_id NOT IN (SELECT item_id FROM decisions
                                        WHERE steward = ? AND action = 'skip' AND item_id IS NOT NULL) {extra}
                ORDER BY i.priority DESC, i.item_id LIMIT 20""",
            args,
        ).fetchall()
        for r in rows:
            try:
                self.claim(r["item_id"], steward, lease_seconds, open_only=True)
            except ReviewError:
                continue  # someone took it between the read and the claim
            return self.item(r["item_id"])
        return None

    def release(self, item_id: str, steward: str) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM claims WHERE item_id=? AND steward=?", (item_id, steward))

    # -- decisions ---------------------------------------------------------------------------------

    def decide(self, item_id: str, steward: str, verdict: str, reason: str | None = None,
               require_claim: bool = True, origin: str = "review") -> int:
        """Record a steward's verdict on a review item (append-only); returns the decision id."""
        if verdict not in VERDICTS:
            raise ReviewError(f"unknown decision {verdict!r}; use one of {', '.join(VERDICTS)}")
        now = _iso(_now())
        with self._tx() as c:
            item = c.execute("SELECT * FROM review_items WHERE item_id=?", (item_id,)).fetchone()
            if item is None:
                raise ReviewError(f"no review item {item_id!r}; list open items with `mdm review list`")
            if require_claim:
                held = c.execute("SELECT steward, expires_at FROM claims WHERE item_id=?", (item_id,)).fetchone()
                if held is None or held["steward"] != steward or held["expires_at"] <= now:
                    raise ReviewError(f"claim item {item_id} before deciding it (its lease may have expired)")
            cur = c.execute(
                """INSERT INTO decisions (item_id, action, origin, record_key_l, record_key_r, steward, decided_at,
                   reason) VALUES (?,?,?,?,?,?,?,?)""",
                (item_id, verdict, origin, item["record_key_l"], item["record_key_r"], steward, now, reason),
            )
            if verdict != "skip":
                c.execute("UPDATE review_items SET status='decided', updated_at=? WHERE item_id=?", (now, item_id))
            c.execute("DELETE FROM claims WHERE item_id=?", (item_id,))
        return int(cur.lastrowid or 0)

    def decide_pairs(self, pairs: Iterable[tuple[str, str]], verdict: str, steward: str, origin: str,
                     reason: str | None = None) -> str:
        """Record one verdict on many record pairs at once (unmerge, merge, import); returns the batch id."""
        if verdict not in VERDICTS:
            raise ReviewError(f"unknown decision {verdict!r}; use one of {', '.join(VERDICTS)}")
        now = _iso(_now())
        batch = hashlib.sha256(f"{origin}|{steward}|{now}|{id(pairs)}".encode()).hexdigest()[:12]
        rows = [(None, verdict, origin, *ordered(a, b), steward, now, reason, batch) for a, b in pairs if a != b]
        if not rows:
            raise ReviewError("nothing to decide: the pair list is empty")
        with self._tx() as c:
            c.executemany(
                """INSERT INTO decisions (item_id, action, origin, record_key_l, record_key_r, steward, decided_at,
                   reason, batch_id) VALUES (?,?,?,?,?,?,?,?,?)""",
                rows,
            )
            # Open items on exactly these pairs are settled by the decision too.
            c.executemany(
                "UPDATE review_items SET status='decided', updated_at=? WHERE record_key_l=? AND record_key_r=?"
                " AND status='open'",
                [(now, r[3], r[4]) for r in rows] if verdict != "skip" else [],
            )
        return batch

    def unmerge(self, record_key: str, other_keys: Iterable[str], steward: str, reason: str | None = None) -> str:
        """Split one record out of its golden customer: cannot-link it with every other record of that customer."""
        others = [k for k in other_keys if k != record_key]
        if not others:
            raise ReviewError("the record is alone in its golden customer: there is nothing to split it from")
        return self.decide_pairs(((record_key, o) for o in others), "no_match", steward, "unmerge", reason)

    def merge(self, keys_a: list[str], keys_b: list[str], steward: str, reason: str | None = None) -> str:
        """Merge two golden customers: one must-link between them joins their clusters at the next run."""
        if not keys_a or not keys_b:
            raise ReviewError("both golden customers need at least one record to merge")
        if set(keys_a) & set(keys_b):
            raise ReviewError("these records already belong to the same golden customer")
        return self.decide_pairs([(min(keys_a), min(keys_b))], "match", steward, "merge", reason)

    def history(self, record_key_l: str | None = None, record_key_r: str | None = None) -> pd.DataFrame:
        return pd.DataFrame(self.history_rows(record_key_l, record_key_r))

    def history_rows(self, record_key_l: str | None = None, record_key_r: str | None = None) -> list[dict[str, Any]]:
        """Decisions on one record pair (either order), or all decisions, oldest first, as dicts."""
        if record_key_l and record_key_r:
            lo, hi = ordered(record_key_l, record_key_r)
            rows = self._conn.execute(
                "SELECT * FROM decisions WHERE record_key_l=? AND record_key_r=? ORDER BY decision_id", (lo, hi)
            ).fetchall()
        else:
            rows = self._conn.execute("SELECT * FROM decisions ORDER BY decision_id").fetchall()
        return [dict(r) for r in rows]

    def constraints(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(must_link, cannot_link): the latest non-skip decision per record pair, as record-key pairs."""
        rows = self._conn.execute(
            """SELECT record_key_l, record_key_r, action FROM (
                   SELECT record_key_l, record_key_r, action,
                          ROW_NUMBER() OVER (PARTITION BY record_key_l, record_key_r ORDER BY decision_id DESC) rn
                   FROM decisions WHERE action != 'skip') WHERE rn = 1"""
        ).fetchall()
        frame = pd.DataFrame([dict(r) for r in rows], columns=["record_key_l", "record_key_r", "action"])
        must = frame.loc[frame["action"] == "match", ["record_key_l", "record_key_r"]].reset_index(drop=True)
        cannot = frame.loc[frame["action"] == "no_match", ["record_key_l", "record_key_r"]].reset_index(drop=True)
        return must, cannot


def _float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


_ITEM_COLUMNS = [
    "item_id", "kind", "record_key_l", "record_key_r", "golden_id_l", "golden_id_r", "match_weight",
    "priority", "n_records", "n_systems", "status", "first_run_id", "last_run_id", "created_at", "updated_at",
    "claimed_by", "claim_expires",
]
