"""Pages from the steward lookup store of one master version (see :mod:`steward.lookup_build`).

Every page is a handful of primary-key look-ups in a read-only SQLite file, one connection
per request thread; sealed rows are opened in memory only. The answers are the same
objects :mod:`steward.evidence` reads from the master database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from steward import lookup_layout as layout
from steward import projection
from steward.sealing import Sealer
from steward.sqlite import ThreadLocalSQLite
from steward.views import (
    CustomerView,
    PairEvidence,
    follow_merges,
    golden_attributes,
    link_score,
    member,
    pair,
    search_lookups,
    summary,
)

_RECORD_NAMES = ("link_type", "link_weight", *projection.RECORD_TEXT_COLUMNS, projection.FLAGS_COLUMN)


def _in(values: Sequence[object]) -> str:
    return "(" + ", ".join("?" * len(values)) + ")"


class LookupStore:
    """:class:`steward.views.EvidenceSource` over one version's lookup store."""

    def __init__(self, path: Path, sealer: Sealer) -> None:
        self.path = path
        self._sealer = sealer
        self._db = ThreadLocalSQLite(path, read_only=True)
        meta = dict(self._db.conn.execute("SELECT name, value FROM meta").fetchall())
        self.version: str = meta["version"]
        self._golden_columns: list[str] = json.loads(meta["golden_columns"])
        self._link_columns: list[str] = json.loads(meta["link_columns"])

    @classmethod
    def open(cls, version_dir: Path, key: bytes | None) -> LookupStore | None:
        """The lookup store of ``version_dir``, or None when it is missing or stale (other version, layout or key)."""
        sealer = Sealer(key)
        if not layout.lookup_fits(version_dir, sealer):
            return None
        return cls(layout.lookup_path(version_dir), sealer)

    def close(self) -> None:
        self._db.close()

    # -- rows ------------------------------------------------------------------------------------

    def _unseal(self, blob: bytes, aad: str) -> Any:
        return json.loads(self._sealer.open(blob, aad.encode()))

    def _records(self, sql: str, args: list[str]) -> list[tuple[str, str | None, dict[str, Any]]]:
        rows = self._db.conn.execute(sql, args).fetchall()
        return [(k, g, dict(zip(_RECORD_NAMES, self._unseal(p, layout.RECORD_AAD.format(k)), strict=True)))
                for k, g, p in rows]

    def _customer(self, golden_id: str) -> tuple[str | None, str | None, Any]:
        row = self._db.conn.execute(
            "SELECT status, merged_into, payload FROM customers WHERE golden_id = ?", (golden_id,)
        ).fetchone()
        if row is None:
            return None, None, None
        status, merged_into, payload = row
        if payload is None:
            return status, merged_into, None
        return status, merged_into, self._unseal(payload, layout.CUSTOMER_AAD.format(golden_id))

    # -- pages -----------------------------------------------------------------------------------

    def cluster_members(self, golden_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {g: [] for g in golden_ids}
        if not golden_ids:
            return out
        sql = f"SELECT record_key, golden_id, payload FROM records WHERE golden_id IN {_in(golden_ids)} " \
              "ORDER BY golden_id, record_key"
        for key, gid, rec in self._records(sql, golden_ids):
            out.setdefault(str(gid), []).append(member(key, gid, rec["link_type"], rec["link_weight"], rec))
        return out

    def pair_evidence(self, key_l: str, key_r: str) -> PairEvidence:
        found = self._records("SELECT record_key, golden_id, payload FROM records WHERE record_key IN (?, ?)",
                              [key_l, key_r])
        recs = {k: r for k, _, r in found}
        golden = {k: g for k, g, _ in found if g is not None}
        link = None
        for a, b in ((key_l, key_r), (key_r, key_l)):
            row = self._db.conn.execute(
                "SELECT payload FROM links WHERE record_key_l = ? AND record_key_r = ?", (a, b)
            ).fetchone()
            if row is not None:
                link = dict(zip(self._link_columns, self._unseal(row[0], layout.LINK_AAD.format(a, b)), strict=True))
                break
        members = self.cluster_members(sorted({g for g in golden.values() if g}))
        return pair(key_l, key_r, recs.get(key_l, {}), recs.get(key_r, {}), link_score(link), golden, members)

    def resolve(self, golden_id: str) -> str | None:
        """Follow merged_into from a retired golden ID to the current one (cycle-safe)."""
        sql = "SELECT status, merged_into FROM customers WHERE golden_id = ?"
        return follow_merges(golden_id, lambda gid: self._db.conn.execute(sql, (gid,)).fetchone())

    def customer_view(self, golden_id: str) -> CustomerView | None:
        current = self.resolve(golden_id)
        if current is None:
            return None
        _, _, payload = self._customer(current)
        if payload is None:
            return None
        values, systems, events = payload
        return CustomerView(
            golden_id=golden_id,
            current_id=current,
            attributes=golden_attributes(self._golden_columns, values),
            records=self.cluster_members([current]).get(current, []),
            systems=[{"source_system": s, "n_records": n} for s, n in systems],
            events=events,
        )

    def search(self, kind: str, value: str, limit: int = 25) -> list[dict[str, Any]]:
        """Golden customers found by an exact look-up of the normalized value, as result lines (by golden ID)."""
        value = value.strip()
        if not value:
            return []
        if kind == "golden_id":
            hit = self._db.conn.execute("SELECT 1 FROM records WHERE golden_id = ? LIMIT 1", (value,)).fetchone()
            found = [value] if hit else []
        else:
            found = []
            for stage in search_lookups(kind, value):
                tokens = [self._sealer.token(column, v) for column, v in stage]
                found = [g for (g,) in self._db.conn.execute(
                    f"SELECT DISTINCT golden_id FROM search WHERE token IN {_in(tokens)} ORDER BY golden_id LIMIT ?",
                    [*tokens, limit],
                ).fetchall()]
                if found:
                    break
        out = []
        for gid in found:
            _, _, payload = self._customer(gid)
            if payload is not None:
                out.append(summary(gid, self._golden_columns, payload[0]))
        return out
