"""User accounts, sessions and sign-in throttling for the steward web app.

Passwords are hashed with Argon2id (argon2-cffi). Sessions are server-side: the browser
holds a random token, the database holds only its SHA-256, the user, the CSRF token and
the expiry. Repeated failed sign-ins for one user name or one client address are
throttled.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from mdm.errors import SecurityError
from steward.sqlite import ThreadLocalSQLite

Role = Literal["steward", "analyst", "admin"]
ROLES: tuple[str, ...] = ("steward", "analyst", "admin")
DB_NAME = "users.sqlite"
MIN_PASSWORD_LENGTH = 10

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users(username),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sign_in_failures (
    key TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sign_in_failures_key ON sign_in_failures(key, at);
"""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    username: str
    role: str

    @property
    def can_review(self) -> bool:
        return self.role in ("steward", "admin")


@dataclass(frozen=True)
class Session:
    token: str
    user: User
    csrf_token: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures: int = 5
    window_seconds: int = 300


class UserStore:
    """Accounts and sessions in ``<state>/users.sqlite``."""

    def __init__(self, path: Path, hasher: PasswordHasher | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = ThreadLocalSQLite(path)
        self._conn.executescript(_SCHEMA)
        self._hasher = hasher or PasswordHasher()

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._db.conn

    @classmethod
    def open(cls, state_dir: Path, hasher: PasswordHasher | None = None) -> UserStore:
        return cls(Path(state_dir) / DB_NAME, hasher)

    def close(self) -> None:
        self._db.close()

    # -- accounts ----------------------------------------------------------------------------

    def add(self, username: str, password: str, role: str) -> User:
        _check_username(username)
        if role not in ROLES:
            raise SecurityError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        _check_password(password)
        try:
            self._conn.execute(
                "INSERT INTO users (username, password_hash, role, created_at) VALUES (?,?,?,?)",
                (username, self._hasher.hash(password), role, _now().isoformat()),
            )
        except sqlite3.IntegrityError as e:
            raise SecurityError(f"user {username!r} exists already; use `mdm users passwd` to change it") from e
        return User(username, role)

    def set_password(self, username: str, password: str) -> None:
        _check_password(password)
        cur = self._conn.execute(
            "UPDATE users SET password_hash=? WHERE username=?", (self._hasher.hash(password), username)
        )
        if cur.rowcount == 0:
            raise SecurityError(f"no user {username!r}; add it with `mdm users add`")
        self._conn.execute("DELETE FROM sessions WHERE username=?", (username,))

    def set_role(self, username: str, role: str) -> None:
        if role not in ROLES:
            raise SecurityError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        if self._conn.execute("UPDATE users SET role=? WHERE username=?", (role, username)).rowcount == 0:
            raise SecurityError(f"no user {username!r}; add it with `mdm users add`")

    def set_disabled(self, username: str, disabled: bool) -> None:
        cur = self._conn.execute("UPDATE users SET disabled=? WHERE username=?", (int(disabled), username))
        if cur.rowcount == 0:
            raise SecurityError(f"no user {username!r}; add it with `mdm users add`")
        if disabled:
            self._conn.execute("DELETE FROM sessions WHERE username=?", (username,))

    def all_users(self) -> list[dict[str, object]]:
        rows = self._conn.execute("SELECT username, role, disabled, created_at FROM users ORDER BY username")
        return [dict(r) for r in rows.fetchall()]

    # -- sign-in -----------------------------------------------------------------------------

    def throttled(self, keys: list[str], policy: ThrottlePolicy) -> bool:
        since = (_now() - dt.timedelta(seconds=policy.window_seconds)).isoformat()
        for key in keys:
            n = self._conn.execute(
                "SELECT COUNT(*) FROM sign_in_failures WHERE key=? AND at > ?", (key, since)
            ).fetchone()[0]
            if n >= policy.max_failures:
                return True
        return False

    def authenticate(self, username: str, password: str, client: str, policy: ThrottlePolicy) -> User:
        """Check a password; failures count against the user name and the client address."""
        keys = [f"user:{username}", f"client:{client}"]
        if self.throttled(keys, policy):
            raise SecurityError("too many failed sign-ins; wait a few minutes and try again")
        row = self._conn.execute(
            "SELECT username, password_hash, role, disabled FROM users WHERE username=?", (username,)
        ).fetchone()
        ok = False
        if row is not None and not row["disabled"]:
            try:
                ok = self._hasher.verify(row["password_hash"], password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                ok = False
        else:
            # Spend the same time on unknown users so timing does not reveal which names exist.
            self._hasher.hash(password)
        if not ok:
            now = _now().isoformat()
            self._conn.executemany("INSERT INTO sign_in_failures (key, at) VALUES (?,?)", [(k, now) for k in keys])
            raise SecurityError("wrong user name or password")
        if self._hasher.check_needs_rehash(row["password_hash"]):
            self._conn.execute(
                "UPDATE users SET password_hash=? WHERE username=?", (self._hasher.hash(password), username)
            )
        self._conn.execute("DELETE FROM sign_in_failures WHERE key=?", (f"user:{username}",))
        return User(row["username"], row["role"])

    # -- sessions ----------------------------------------------------------------------------

    def new_session(self, user: User, ttl_seconds: int) -> Session:
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = _now()
        expires = now + dt.timedelta(seconds=ttl_seconds)
        self._conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now.isoformat(),))
        self._conn.execute(
            "INSERT INTO sessions (token_hash, username, csrf_token, created_at, expires_at) VALUES (?,?,?,?,?)",
            (_hash_token(token), user.username, csrf, now.isoformat(), expires.isoformat()),
        )
        return Session(token, user, csrf, expires)

    def session(self, token: str | None) -> Session | None:
        if not token:
            return None
        row = self._conn.execute(
            """SELECT s.username, s.csrf_token, s.expires_at, u.role, u.disabled FROM sessions s
               JOIN users u ON u.username = s.username WHERE s.token_hash=?""",
            (_hash_token(token),),
        ).fetchone()
        if row is None or row["disabled"] or row["expires_at"] <= _now().isoformat():
            return None
        return Session(token, User(row["username"], row["role"]), row["csrf_token"],
                       dt.datetime.fromisoformat(row["expires_at"]))

    def end_session(self, token: str) -> None:
        self._conn.execute("DELETE FROM sessions WHERE token_hash=?", (_hash_token(token),))


def _check_username(username: str) -> None:
    if not username or len(username) > 64 or not all(c.isalnum() or c in "._-" for c in username):
        raise SecurityError("a user name is 1-64 letters, digits, '.', '_' or '-'")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise SecurityError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
