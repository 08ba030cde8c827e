"""Ledger: the audit trail, append-only and hash-chained.

Each row stores ``hash`` = SHA-256 of its canonical content (id, time, actor, action, detail as
stored, and ``prev_hash``), and ``prev_hash`` = the previous row's hash (:data:`GENESIS` for the
first). Triggers refuse UPDATE and DELETE through SQLite; the chain is what detects someone who
edits the file anyway: :meth:`AuditMixin.verify_audit` recomputes every hash and names the first
row that does not match (edited), a gap in the ids (deleted), or a row the next one does not
follow (inserted). The head of the chain (last id and hash) is also kept in ``meta``, so cutting
rows off the end is noticed. Someone who rewrites the whole chain from an edited row onwards is
noticed only against a copy kept elsewhere: the syslog export (:mod:`aiws.audit`).

Audit details hold UIDs, AE titles, counts, configuration values and scrubbed error text, never
patient data (names, IDs, birth dates).
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: ``prev_hash`` of the first row.
GENESIS = "0" * 64
#: meta key holding ``"<id> <hash>"`` of the newest row.
HEAD_KEY = "audit_head"

TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END",
)


def row_hash(row_id: int, at: float, actor: str, action: str, detail: str, prev_hash: str) -> str:
    """SHA-256 (hex) of a row's canonical content: a compact JSON array, *detail* as stored."""
    canonical = json.dumps([row_id, at, actor, action, detail, prev_hash], ensure_ascii=False,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def config_changes(old: Any, new: Any, key: str = "") -> list[dict[str, Any]]:
    """Each changed leaf of two JSON-like documents as ``{"key", "old", "new"}`` (dotted keys; a list
    of tables by its ``name`` or ``ae_title``, else by position). A key absent on one side is None."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[dict[str, Any]] = []
        for k in sorted(set(old) | set(new), key=str):
            out += config_changes(old.get(k), new.get(k), f"{key}.{k}" if key else str(k))
        return out
    if isinstance(old, list) and isinstance(new, list) and _keyed(old + new):
        return config_changes({_item_key(d): d for d in old}, {_item_key(d): d for d in new}, key)
    return [] if old == new else [{"key": key, "old": old, "new": new}]


def _keyed(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(d, dict) and ("name" in d or "ae_title" in d) for d in items)


def _item_key(d: dict[str, Any]) -> str:
    if "name" in d:
        return str(d["name"])
    host = d.get("host")
    return f"{d['ae_title']}@{host}" if host else str(d["ae_title"])


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: float
    actor: str
    action: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, r: sqlite3.Row) -> AuditRow:
        return cls(int(r["id"]), float(r["at"]), r["actor"], r["action"], json.loads(r["detail"]),
                   r["prev_hash"], r["hash"])


@dataclass(frozen=True)
class ChainReport:
    """Result of :meth:`AuditMixin.verify_audit`: ``bad_id`` is the first bad row (None: intact)."""

    n_rows: int
    bad_id: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.bad_id is None


def _append(con: sqlite3.Connection, actor: str, action: str, detail: dict[str, Any], at: float) -> int:
    # The chain goes on from the head recorded in meta, not from the last row found: rows cut off the end
    # stay a visible gap (and a row inserted after the head does not become part of the chain).
    last = con.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    head = con.execute("SELECT value FROM meta WHERE key=?", (HEAD_KEY,)).fetchone()
    if head is not None:
        head_id, prev = head[0].split(" ", 1)
        row_id = max(int(head_id), int(last[0]) if last else 0) + 1
    else:
        row_id, prev = (int(last[0]) + 1, last[1]) if last else (1, GENESIS)
    text = json.dumps(detail, sort_keys=True, default=str)
    digest = row_hash(row_id, at, actor, action, text, prev)
    con.execute("INSERT INTO audit(id, at, actor, action, detail, prev_hash, hash) VALUES(?,?,?,?,?,?,?)",
                (row_id, at, actor, action, text, prev, digest))
    con.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (HEAD_KEY, f"{row_id} {digest}"))
    return row_id


def add_counter(con: sqlite3.Connection, key: str, amount: int) -> None:
    """Add to a monotonic counter kept in ``meta`` (what /metrics reports as ``…_total``)."""
    con.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key)"
                " DO UPDATE SET value=CAST(CAST(value AS INTEGER) + ? AS TEXT)", (key, str(amount), amount))


def migrate_v3(con: sqlite3.Connection) -> None:
    """Version 2 -> 3: rebuild the audit table with ``prev_hash`` and ``hash``, chaining the rows it
    held in id order (their ids renumbered from 1), then the append-only triggers."""
    con.execute("ALTER TABLE audit RENAME TO audit_v2")
    con.execute(AUDIT_TABLE)
    for r in con.execute("SELECT at, actor, action, detail FROM audit_v2 ORDER BY id").fetchall():
        detail = json.loads(r[3]) if r[3] else {}
        _append(con, r[1], r[2], detail if isinstance(detail, dict) else {"detail": detail}, float(r[0]))
    con.execute("DROP TABLE audit_v2")
    con.execute(AUDIT_INDEX)
    for trigger in TRIGGERS:
        con.execute(trigger)


AUDIT_TABLE = """CREATE TABLE IF NOT EXISTS audit(
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
)"""
AUDIT_INDEX = "CREATE INDEX IF NOT EXISTS ix_audit_action ON audit(action)"


class AuditMixin:
    """Appending, reading and verifying the audit trail (used by :class:`aiws.ledger.Ledger`)."""

    def transaction(self) -> Any:  # provided by Ledger
        raise TypeError("AuditMixin is used through aiws.ledger.Ledger")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:  # provided by Ledger
        raise TypeError("AuditMixin is used through aiws.ledger.Ledger")

    @staticmethod
    def _audit(con: sqlite3.Connection, actor: str, action: str, detail: dict[str, Any]) -> None:
        """Append one row inside the caller's (IMMEDIATE) transaction: the write lock orders the chain."""
        _append(con, actor, action, detail, time.time())

    def audit(self, actor: str, action: str, detail: dict[str, Any]) -> int:
        """Append one row in its own transaction; returns its id."""
        with self.transaction() as con:
            return _append(con, actor, action, detail, time.time())

    def list_audit(self, limit: int = 100, action_prefix: str = "") -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT * FROM audit WHERE action LIKE ? ORDER BY id DESC LIMIT ?", (action_prefix + "%", limit)
        )
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]

    def meta_value(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key=?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta_value(self, key: str, value: str) -> None:
        with self.transaction() as con:
            con.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                        (key, value))

    def audit_after(self, after_id: int, limit: int = 500) -> list[AuditRow]:
        """Rows with id > *after_id*, oldest first."""
        rows = self.query("SELECT * FROM audit WHERE id>? ORDER BY id LIMIT ?", (after_id, limit))
        return [AuditRow.of(r) for r in rows]

    def _raw_audit(self) -> Iterator[sqlite3.Row]:
        last = 0
        while True:
            rows = self.query("SELECT * FROM audit WHERE id>? ORDER BY id LIMIT 5000", (last,))
            if not rows:
                return
            yield from rows
            last = int(rows[-1]["id"])

    def verify_audit(self) -> ChainReport:
        """Recompute the chain; the first row that is edited, missing, inserted or cut off is named."""
        expected_id, prev, n = 1, GENESIS, 0
        for r in self._raw_audit():
            n += 1
            row_id = int(r["id"])
            if row_id != expected_id:
                what = "missing (deleted)" if row_id > expected_id else "out of sequence"
                return ChainReport(n, expected_id, f"row {expected_id} is {what}; the next row found is {row_id}")
            if r["prev_hash"] != prev:
                return ChainReport(n, row_id, f"row {row_id} does not follow row {row_id - 1} (prev_hash differs: "
                                              "a row was inserted, deleted or edited before it)")
            digest = row_hash(row_id, float(r["at"]), r["actor"], r["action"], r["detail"], r["prev_hash"])
            if digest != r["hash"]:
                return ChainReport(n, row_id, f"row {row_id}: content does not match its hash (edited)")
            expected_id, prev = row_id + 1, digest
        head = self.query("SELECT value FROM meta WHERE key=?", (HEAD_KEY,))
        if not head:
            return ChainReport(n) if n == 0 else ChainReport(n, 1, "the chain head is missing from meta")
        text_id, head_hash = head[0][0].split(" ", 1)
        head_id = int(text_id)
        if head_id >= expected_id:
            return ChainReport(n, expected_id, f"rows {expected_id}..{head_id} are missing (cut off the end; "
                                               f"the chain head records row {head_id})")
        if head_id < expected_id - 1:
            return ChainReport(n, head_id + 1, f"row {head_id + 1} was not appended by the ledger (inserted "
                                               f"after the chain head, row {head_id})")
        if head_hash != prev:
            return ChainReport(n, head_id, f"row {head_id}: differs from the recorded chain head")
        return ChainReport(n)
