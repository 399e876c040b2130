"""The hash-chained audit trail: who did what, when, to which target (state_dir/audit.log).

One JSON line per entry: ``seq, ts, actor, action, target, details, mac, prev_hash, hash``.
``hash`` is SHA-256 over the canonical JSON of the entry without ``hash`` (so it covers
``prev_hash``), or HMAC-SHA256 under ``MDM_AUDIT_KEY`` when that is set: then nobody
without the key can rewrite the chain. A head file (``audit.head``: last seq and hash)
is updated with every entry, so cutting entries off the end is detected too.

Writers take an exclusive ``fcntl`` lock on ``audit.lock``: the web app's threads and CLI
processes append to one log safely. Details pass through :func:`mdm.logs.redact`, a
safety net: callers must not put raw ID numbers, phones or e-mails there in the first place.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdm.errors import MdmError
from mdm.logs import redact

log = logging.getLogger(__name__)

__all__ = ["ACTIONS", "AUDIT_FILE", "AuditLog", "AuditVerification"]

AUDIT_FILE = "audit.log"
HEAD_FILE = "audit.head"
LOCK_FILE = "audit.lock"
ENV_AUDIT_KEY = "MDM_AUDIT_KEY"
GENESIS = "0" * 64
ACTIONS = frozenset(
    {
        "run",
        "publish",
        "rollback",
        "steward_decision",
        "sign_in",
        "sign_in_failed",
        "view_unmasked",
        "search",
        "export",
        "query",
        "backup",
        "restore",
        "key_rotation",
    }
)


@dataclass(frozen=True)
class AuditVerification:
    """Result of :meth:`AuditLog.verify`: ``ok``, the number of good entries, the first problem."""

    ok: bool
    entries: int
    bad_line: int | None = None
    problem: str | None = None

    def summary(self) -> str:
        if self.ok:
            return f"OK: {self.entries} audit entries, chain intact"
        where = f"line {self.bad_line}: " if self.bad_line is not None else ""
        return f"audit log damaged after {self.entries} good entries: {where}{self.problem}"


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _scrub(value: Any) -> Any:
    """Redact every string in a JSON-like value (keys too)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_scrub(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


def _audit_key() -> bytes | None:
    value = os.environ.get(ENV_AUDIT_KEY, "")
    return value.encode("utf-8") if value else None


def _digest(body: dict[str, Any], mac: str, key: bytes | None) -> str | None:
    data = _canonical(body)
    if mac == "hmac-sha256":
        return None if key is None else hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


class AuditLog:
    """Append-only, hash-chained audit log at ``path`` (head and lock files beside it)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(HEAD_FILE)
        self.lock_path = self.path.with_name(LOCK_FILE)

    @classmethod
    def for_state(cls, state_dir: Path) -> AuditLog:
        """The audit log of a state folder (``state_dir/audit.log``)."""
        return cls(Path(state_dir) / AUDIT_FILE)

    # ----------------------------------------------------------------- writing

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _read_head(self) -> tuple[int, str] | None:
        try:
            data = json.loads(self.head_path.read_text(encoding="utf-8"))
            return int(data["seq"]), str(data["hash"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            log.warning("audit head file %s is unreadable; chaining from the last log line", self.head_path)
            return None

    def _last_entry(self) -> tuple[int, str] | None:
        try:
            with self.path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                if size == 0:
                    return None
                block = min(size, 65536)
                while True:
                    f.seek(size - block)
                    tail = f.read(block).rstrip(b"\n")
                    if b"\n" in tail or block == size:
                        break
                    block = min(size, block * 4)
            last = json.loads(tail.rsplit(b"\n", 1)[-1])
            return int(last["seq"]), str(last["hash"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return None

    def _write_head(self, seq: int, digest: str) -> None:
        tmp = self.head_path.with_name(f".{HEAD_FILE}.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.write(json.dumps({"seq": seq, "hash": digest}))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.head_path)

    def append(self, actor: str, action: str, target: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
        """Append one entry and return it (with its seq and hash)."""
        if action not in ACTIONS:
            log.warning("audit action %r is not one of the known actions", action)
        key = _audit_key()
        mac = "hmac-sha256" if key is not None else "sha256"
        with self._locked():
            head = self._read_head()
            last = self._last_entry()
            if head is not None and last is not None and head != last:
                log.warning("audit log tail does not match its head file; `mdm audit verify` will report it")
            prev = head or last or (0, GENESIS)
            body: dict[str, Any] = {
                "seq": prev[0] + 1,
                "ts": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
                "actor": redact(str(actor)),
                "action": str(action),
                "target": redact(str(target)),
                "details": _scrub(details or {}),
                "mac": mac,
                "prev_hash": prev[1],
            }
            digest = _digest(body, mac, key)
            assert digest is not None
            entry = {**body, "hash": digest}
            line = json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n"
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            self._write_head(entry["seq"], digest)
        return entry

    # ----------------------------------------------------------------- reading

    def entries(self) -> list[dict[str, Any]]:
        """Every entry, oldest first (lines that are not JSON raise MdmError)."""
        if not self.path.is_file():
            return []
        out = []
        with self.path.open("r", encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    out.append(json.loads(line))
                except ValueError as e:
                    raise MdmError(f"{self.path} line {number} is not JSON; run `mdm audit verify`") from e
        return out

    def tail(self, n: int) -> list[dict[str, Any]]:
        """The last ``n`` entries."""
        return self.entries()[-n:] if n > 0 else []

    def verify(self) -> AuditVerification:
        """Check the whole chain and the head: any edited, deleted, reordered, inserted or cut-off entry fails."""
        key = _audit_key()
        prev_hash, count, seen_hmac = GENESIS, 0, False
        lines = self.path.read_bytes().split(b"\n") if self.path.is_file() else []
        if lines and lines[-1] == b"":
            lines.pop()
        for number, raw in enumerate(lines, start=1):
            problem = self._check_line(raw, number, prev_hash, key, seen_hmac)
            if problem is not None:
                return AuditVerification(False, count, number, problem)
            entry = json.loads(raw)
            seen_hmac = seen_hmac or entry["mac"] == "hmac-sha256"
            prev_hash, count = entry["hash"], number
        with self._locked():
            head = self._read_head()
        if head is None:
            if count:
                return AuditVerification(False, count, None, f"the head file {HEAD_FILE} is missing")
            return AuditVerification(True, 0)
        if head != (count, prev_hash):
            return AuditVerification(
                False,
                count,
                None,
                f"the head file names entry {head[0]} but the log ends at entry {count}: "
                "entries were removed from the end or the log was replaced",
            )
        return AuditVerification(True, count)

    @staticmethod
    def _check_line(raw: bytes, number: int, prev_hash: str, key: bytes | None, seen_hmac: bool) -> str | None:
        try:
            entry = json.loads(raw)
        except ValueError:
            return "not a JSON entry"
        if not isinstance(entry, dict) or "hash" not in entry:
            return "not an audit entry"
        if entry.get("seq") != number:
            return f"sequence number {entry.get('seq')!r} where {number} was expected (entry deleted, moved or added)"
        if entry.get("prev_hash") != prev_hash:
            return "does not chain to the entry before it (entry deleted, moved or added)"
        mac = entry.get("mac")
        if mac not in ("sha256", "hmac-sha256"):
            return f"unknown hash type {mac!r}"
        if mac == "sha256" and seen_hmac:
            return "plain hash after keyed entries (downgrade)"
        if mac == "hmac-sha256" and key is None:
            return f"entry is keyed; set {ENV_AUDIT_KEY} to verify it"
        body = {k: v for k, v in entry.items() if k != "hash"}
        expected = _digest(body, mac, key)
        if expected is None or not hmac.compare_digest(expected, str(entry["hash"])):
            return "content does not match its hash (entry edited)"
        return None
