"""Console and API accounts: argon2 password hashes, API tokens, sessions and failed-login counting.

Everything lives in the ledger (tables ``accounts``, ``api_tokens``, ``sessions``, ``login_failures`` of
schema 4), so several nodes that share a ledger share accounts, sessions and the login rate limit. Only
digests are stored: the argon2 hash of a password, the SHA-256 of an API token and of a session id. The
SQL is portable (``?`` parameters, no SQLite-only statements): the same code runs on PostgreSQL.

Every change is written to the audit (actor, action, account name, role; never a password or a token).
"""
from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from aiws.api.auth import ADMIN_TOKEN_NAME, Principal, Role
from aiws.errors import AiwsError, Conflict, NotFound
from aiws.ledger import Ledger

#: Account names: lower-case letters, digits, ``.``, ``_``, ``-``; a letter first (they appear in the audit).
_NAME_RE = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024
TOKEN_PREFIX = "aiws_"
_HASHER = PasswordHasher()  # argon2id with the library's current (RFC 9106 low-memory) parameters


class AccountError(AiwsError):
    """An account request that cannot be done (bad name, short password, unknown role); the message says why."""


@dataclass(frozen=True)
class Account:
    name: str
    role: Role
    disabled: bool
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class TokenInfo:
    """An API token as listed (never the token itself): the first 12 hex digits of its SHA-256 identify it."""

    token_id: str
    account: str
    role: Role
    label: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    if not _NAME_RE.match(name) or name == ADMIN_TOKEN_NAME:
        raise AccountError(f"account name {name!r}: 1-64 of a-z 0-9 . _ -, starting with a letter"
                           f" (and not {ADMIN_TOKEN_NAME!r})")
    return name


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash verified when the account does not exist, so a login takes as long either way (made at first use:
    argon2id takes a large fraction of a second here, not to be spent at import)."""
    return _HASHER.hash(secrets.token_urlsafe(16))


def check_password(password: str) -> str:
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise AccountError(f"password: {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")
    return password


def parse_role(value: str | Role) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise AccountError(f"role {value!r}: one of {', '.join(r.value for r in Role)}") from None


def _account(row: Any) -> Account:
    return Account(row["name"], Role(row["role"]), bool(row["disabled"]), row["created_at"], row["updated_at"])


def get_account(ledger: Ledger, name: str) -> Account | None:
    rows = ledger.query("SELECT name, role, disabled, created_at, updated_at FROM accounts WHERE name=?", (name,))
    return _account(rows[0]) if rows else None


def list_accounts(ledger: Ledger) -> list[Account]:
    rows = ledger.query("SELECT name, role, disabled, created_at, updated_at FROM accounts ORDER BY name")
    return [_account(r) for r in rows]


def create_account(ledger: Ledger, name: str, role: Role | str, password: str, actor: str = "cli") -> Account:
    """Create an account with an argon2id hash of *password*.

    Raises:
        AccountError: a bad name, role or password. Conflict: the name is taken.
    """
    check_name(name)
    role = parse_role(role)
    digest = _HASHER.hash(check_password(password))
    now = time.time()
    with ledger.transaction() as con:
        if con.execute("SELECT 1 FROM accounts WHERE name=?", (name,)).fetchone() is not None:
            raise Conflict(f"account {name!r} already exists")
        con.execute("INSERT INTO accounts(name, role, password_hash, disabled, created_at, updated_at) "
                    "VALUES(?, ?, ?, 0, ?, ?)", (name, role.value, digest, now, now))
        ledger._audit(con, actor, "account created", {"account": name, "role": role.value})
    return Account(name, role, False, now, now)


def _require(con: Any, name: str) -> Any:
    row = con.execute("SELECT name, role, disabled FROM accounts WHERE name=?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"account {name!r} does not exist")
    return row


def set_role(ledger: Ledger, name: str, role: Role | str, actor: str) -> None:
    """Change an account's role; its tokens above the new role are revoked (a token never outranks its account)."""
    role = parse_role(role)
    now = time.time()
    with ledger.transaction() as con:
        old = _require(con, name)["role"]
        con.execute("UPDATE accounts SET role=?, updated_at=? WHERE name=?", (role.value, now, name))
        if role is not Role.ADMIN:
            con.execute("UPDATE api_tokens SET revoked_at=? WHERE account=? AND revoked_at IS NULL AND role<>?",
                        (now, name, role.value))
        ledger._audit(con, actor, "account role changed", {"account": name, "old": old, "new": role.value})


def set_disabled(ledger: Ledger, name: str, disabled: bool, actor: str) -> None:
    """Disable (sessions end, tokens stop working) or enable an account."""
    now = time.time()
    with ledger.transaction() as con:
        _require(con, name)
        con.execute("UPDATE accounts SET disabled=?, updated_at=? WHERE name=?", (int(disabled), now, name))
        if disabled:
            con.execute("DELETE FROM sessions WHERE account=?", (name,))
        ledger._audit(con, actor, "account disabled" if disabled else "account enabled", {"account": name})


def set_password(ledger: Ledger, name: str, password: str, actor: str) -> None:
    """Set a new password; the account's sessions end."""
    digest = _HASHER.hash(check_password(password))
    with ledger.transaction() as con:
        _require(con, name)
        con.execute("UPDATE accounts SET password_hash=?, updated_at=? WHERE name=?", (digest, time.time(), name))
        con.execute("DELETE FROM sessions WHERE account=?", (name,))
        ledger._audit(con, actor, "account password changed", {"account": name})


def verify_password(ledger: Ledger, name: str, password: str) -> Account | None:
    """The enabled account whose password this is, or None. A hash made with older argon2 parameters is
    replaced by one with the current parameters. Takes one argon2 verification whether the name exists or not."""
    rows = ledger.query("SELECT name, role, disabled, created_at, updated_at, password_hash FROM accounts "
                        "WHERE name=?", (name,))
    stored = rows[0]["password_hash"] if rows and rows[0]["password_hash"] else _dummy_hash()
    try:
        _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if not rows or rows[0]["disabled"]:
        return None
    if _HASHER.check_needs_rehash(stored):
        with ledger.transaction() as con:
            con.execute("UPDATE accounts SET password_hash=? WHERE name=? AND password_hash=?",
                        (_HASHER.hash(password), name, stored))
    return _account(rows[0])


# -- API tokens ------------------------------------------------------------------------------------------------
def issue_token(ledger: Ledger, account: str, role: Role | str | None = None, label: str = "",
                actor: str = "cli") -> str:
    """A new API token for *account*, acting with *role* (default: the account's role; never above it).
    Returns the token; only its SHA-256 is kept, so it is shown once.

    Raises:
        NotFound: no such account. AccountError: a role above the account's, or a disabled account.
    """
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with ledger.transaction() as con:
        row = _require(con, account)
        own = Role(row["role"])
        wanted = own if role is None else parse_role(role)
        if row["disabled"]:
            raise AccountError(f"account {account!r} is disabled")
        if wanted is not own and own is not Role.ADMIN:
            raise AccountError(f"account {account!r} is {own.value}: a token cannot act as {wanted.value}")
        digest = sha256_hex(token)
        con.execute("INSERT INTO api_tokens(token_sha256, account, role, label, created_at) VALUES(?, ?, ?, ?, ?)",
                    (digest, account, wanted.value, label[:200], time.time()))
        ledger._audit(con, actor, "token issued", {"account": account, "role": wanted.value, "label": label[:200],
                                                   "token_id": digest[:12]})
    return token


def list_tokens(ledger: Ledger, account: str | None = None) -> list[TokenInfo]:
    sql = "SELECT token_sha256, account, role, label, created_at, last_used_at, revoked_at FROM api_tokens"
    rows = ledger.query(sql + " WHERE account=? ORDER BY created_at DESC", (account,)) if account is not None \
        else ledger.query(sql + " ORDER BY created_at DESC")
    return [TokenInfo(r["token_sha256"][:12], r["account"], Role(r["role"]), r["label"], r["created_at"],
                      r["last_used_at"], r["revoked_at"]) for r in rows]


def revoke_token(ledger: Ledger, token_id: str, actor: str, account: str | None = None) -> None:
    """Revoke the token whose SHA-256 starts with *token_id* (12 hex digits), of *account* when given.

    Raises:
        NotFound: no such (unrevoked) token.
    """
    if not re.fullmatch(r"[0-9a-f]{12}", token_id):
        raise NotFound(f"token {token_id!r} does not exist")
    with ledger.transaction() as con:
        rows = con.execute("SELECT token_sha256, account FROM api_tokens WHERE token_sha256 LIKE ? "
                           "AND revoked_at IS NULL", (token_id + "%",)).fetchall()
        rows = [r for r in rows if account is None or r["account"] == account]
        if len(rows) != 1:
            raise NotFound(f"token {token_id} does not exist or is revoked")
        con.execute("UPDATE api_tokens SET revoked_at=? WHERE token_sha256=?", (time.time(), rows[0]["token_sha256"]))
        ledger._audit(con, actor, "token revoked", {"account": rows[0]["account"], "token_id": token_id})


def principal_of_token(ledger: Ledger, token: str, now: float | None = None) -> Principal | None:
    """The principal an API token acts as, or None (unknown, revoked, or its account disabled). Records the
    last use at most once a minute."""
    now = time.time() if now is None else now
    digest = sha256_hex(token)
    rows = ledger.query("SELECT t.account, t.role, t.last_used_at FROM api_tokens t JOIN accounts a ON a.name = "
                        "t.account WHERE t.token_sha256=? AND t.revoked_at IS NULL AND a.disabled=0", (digest,))
    if not rows:
        return None
    if rows[0]["last_used_at"] is None or now - rows[0]["last_used_at"] > 60:
        with ledger.transaction() as con:
            con.execute("UPDATE api_tokens SET last_used_at=? WHERE token_sha256=?", (now, digest))
    return Principal(rows[0]["account"], Role(rows[0]["role"]), "token")


# -- sessions --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Session:
    """A console session: *session_id* goes into the cookie (only its SHA-256 is stored), *csrf* into forms."""

    session_id: str
    csrf: str
    expires_at: float


def open_session(ledger: Ledger, account: Account, lifetime_seconds: float, peer: str) -> Session:
    """Start a session after a successful login (audited as ``login``); expired sessions are dropped."""
    now = time.time()
    session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + lifetime_seconds)
    with ledger.transaction() as con:
        con.execute("DELETE FROM sessions WHERE expires_at<?", (now,))
        con.execute("INSERT INTO sessions(id_sha256, account, csrf, created_at, expires_at) VALUES(?, ?, ?, ?, ?)",
                    (sha256_hex(session.session_id), account.name, session.csrf, now, session.expires_at))
        ledger._audit(con, f"user:{account.name}", "login", {"account": account.name, "peer": peer})
    return session


def session_principal(ledger: Ledger, session_id: str, now: float | None = None) -> tuple[Principal, str] | None:
    """The principal and CSRF token of a live session, or None (unknown, expired, or its account disabled)."""
    now = time.time() if now is None else now
    rows = ledger.query("SELECT s.account, s.csrf, a.role FROM sessions s JOIN accounts a ON a.name = s.account "
                        "WHERE s.id_sha256=? AND s.expires_at>? AND a.disabled=0", (sha256_hex(session_id), now))
    if not rows:
        return None
    return Principal(rows[0]["account"], Role(rows[0]["role"]), "session"), str(rows[0]["csrf"])


def close_session(ledger: Ledger, session_id: str) -> str | None:
    """End a session (audited as ``logout``); returns its account name, None for an unknown session."""
    digest = sha256_hex(session_id)
    with ledger.transaction() as con:
        row = con.execute("SELECT account FROM sessions WHERE id_sha256=?", (digest,)).fetchone()
        if row is None:
            return None
        con.execute("DELETE FROM sessions WHERE id_sha256=?", (digest,))
        ledger._audit(con, f"user:{row['account']}", "logout", {"account": row["account"]})
    return str(row["account"])


# -- failed logins ---------------------------------------------------------------------------------------------
def login_blocked_for(ledger: Ledger, name: str, peer: str, max_failures: int, window_seconds: float,
                      now: float | None = None) -> float:
    """Seconds until a login for *name* or from *peer* may be tried again (0: now). Counted over the ledger,
    so every node sharing it applies the same limit."""
    now = time.time() if now is None else now
    since = now - window_seconds
    waits = []
    for column, value in (("account", name), ("peer_ip", peer)):
        rows = ledger.query(f"SELECT at FROM login_failures WHERE {column}=? AND at>? ORDER BY at DESC",
                            (value, since))
        if len(rows) >= max_failures:
            waits.append(float(rows[max_failures - 1]["at"]) + window_seconds - now)
    return max([0.0, *waits])


def record_login_failure(ledger: Ledger, name: str, peer: str, window_seconds: float) -> None:
    """Count a failed login and audit it (the account name only when it exists; never the password)."""
    now = time.time()
    with ledger.transaction() as con:
        exists = con.execute("SELECT 1 FROM accounts WHERE name=?", (name,)).fetchone() is not None
        con.execute("INSERT INTO login_failures(account, peer_ip, at) VALUES(?, ?, ?)",
                    (name if exists else "", peer, now))
        con.execute("DELETE FROM login_failures WHERE at<?", (now - max(window_seconds, 86400.0),))
        detail = {"account": name, "peer": peer} if exists else {"account": None, "peer": peer}
        ledger._audit(con, f"user:{name}" if exists else "anonymous", "login failed", detail)
