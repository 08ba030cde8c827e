"""SQLite schema of the ledger. Every state change of the service is a row here."""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from aiws.errors import AiwsError
from aiws.ledger.audit import AUDIT_INDEX, AUDIT_TABLE, TRIGGERS, migrate_v3
from aiws.ledger.stats import TABLES as DURATION_TABLES
from aiws.ledger.stats import backfill

SCHEMA_VERSION = 4
# 1 -> 2: studies may be in state 'error' (with its reason in studies.error); quarantine table;
#         see MIGRATIONS below. The CREATE statements are the newest version; an older database
#         is brought up to date by the migrations, one version at a time, in one transaction each.
# 2 -> 3: the audit table is append-only (triggers) and hash-chained (prev_hash, hash); the rows it
#         held are chained in id order (aiws.ledger.audit.migrate_v3); duration histograms
#         (aiws.ledger.stats) filled from the jobs already done.
# 3 -> 4: console accounts (accounts, api_tokens, sessions, login_failures: aiws.api.accounts); patient-free
#         labels of a study for the console (accession, modality, description); the live routing rules
#         (routing_config, like network_config: seeded from the file, changed by the console and the API).

V4 = """
-- console and API accounts (aiws.api.accounts): argon2 password hashes, never a password
CREATE TABLE IF NOT EXISTS accounts(
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK(role IN ('admin', 'radiologist', 'ml-engineer', 'clinician')),
    password_hash TEXT NOT NULL DEFAULT '',
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
-- API tokens: only their SHA-256 is kept, and a token acts with its account's role or a lower one
CREATE TABLE IF NOT EXISTS api_tokens(
    token_sha256 TEXT PRIMARY KEY,
    account TEXT NOT NULL REFERENCES accounts(name),
    role TEXT NOT NULL CHECK(role IN ('admin', 'radiologist', 'ml-engineer', 'clinician')),
    label TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    last_used_at REAL,
    revoked_at REAL
);
CREATE INDEX IF NOT EXISTS ix_api_tokens_account ON api_tokens(account);
-- console sessions: the cookie holds a random id whose SHA-256 is kept here, with the CSRF token
CREATE TABLE IF NOT EXISTS sessions(
    id_sha256 TEXT PRIMARY KEY,
    account TEXT NOT NULL REFERENCES accounts(name),
    csrf TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_sessions_expiry ON sessions(expires_at);
-- failed logins, for rate limiting across the nodes that share a ledger (the client address, never a password)
CREATE TABLE IF NOT EXISTS login_failures(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    peer_ip TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_login_failures ON login_failures(account, at);
CREATE INDEX IF NOT EXISTS ix_login_failures_peer ON login_failures(peer_ip, at);

CREATE TABLE IF NOT EXISTS routing_config(
    id INTEGER PRIMARY KEY CHECK(id = 1),
    doc TEXT NOT NULL,
    file_hash TEXT NOT NULL,
    version INTEGER NOT NULL
);
"""

SCHEMA = ("""
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS instances(
    sop_instance_uid TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    modality TEXT NOT NULL DEFAULT '',
    transfer_syntax TEXT NOT NULL DEFAULT '',
    path TEXT NOT NULL,
    size_bytes INTEGER NOT NULL DEFAULT 0,
    calling_ae TEXT NOT NULL DEFAULT '',
    peer_ip TEXT NOT NULL DEFAULT '',
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_instances_study ON instances(study_uid, series_uid);

CREATE TABLE IF NOT EXISTS studies(
    study_uid TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK(state IN ('receiving', 'complete', 'error', 'purged')),
    generation INTEGER NOT NULL DEFAULT 1,
    first_received_at REAL NOT NULL,
    last_received_at REAL NOT NULL,
    completed_at REAL,
    n_instances INTEGER NOT NULL DEFAULT 0,
    calling_ae TEXT NOT NULL DEFAULT '',
    n_jobs INTEGER NOT NULL DEFAULT 0,
    unrouted INTEGER NOT NULL DEFAULT 0,
    purged_at REAL,
    error TEXT NOT NULL DEFAULT '',
    accession TEXT NOT NULL DEFAULT '',
    modality TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS ix_studies_state ON studies(state, last_received_at);
-- the console's dashboard: newest studies first, a page at a time (created at open: no migration step needed)
CREATE INDEX IF NOT EXISTS ix_studies_received ON studies(last_received_at);

-- instances that could not be read back: moved out of the spool into <data_dir>/quarantine
CREATE TABLE IF NOT EXISTS quarantine(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sop_instance_uid TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    original_path TEXT NOT NULL,
    path TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_quarantine_study ON quarantine(study_uid);

CREATE TABLE IF NOT EXISTS jobs(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    study_uid TEXT NOT NULL,
    generation INTEGER NOT NULL,
    pipeline TEXT NOT NULL,
    series_uids TEXT NOT NULL,
    send_to TEXT NOT NULL,
    state TEXT NOT NULL CHECK(state IN ('pending', 'running', 'done', 'failed', 'superseded')),
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    worker TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    error TEXT NOT NULL DEFAULT '',
    summary TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS ix_jobs_state ON jobs(state, not_before);
CREATE INDEX IF NOT EXISTS ix_jobs_study ON jobs(study_uid, pipeline);

CREATE TABLE IF NOT EXISTS results(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    kind TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    path TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE(job_id, sop_instance_uid)
);

CREATE TABLE IF NOT EXISTS sends(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    destination TEXT NOT NULL,
    state TEXT NOT NULL CHECK(state IN ('pending', 'sending', 'done', 'dead', 'superseded')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    n_files INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    done_at REAL
);
CREATE INDEX IF NOT EXISTS ix_sends_state ON sends(state, next_attempt_at);
-- dead_letter_destinations (/health, /metrics) looks up later done sends per destination; a study's sends by job
CREATE INDEX IF NOT EXISTS ix_sends_destination ON sends(destination, state, updated_at);
CREATE INDEX IF NOT EXISTS ix_sends_job ON sends(job_id);

CREATE TABLE IF NOT EXISTS associations(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    ended_at TEXT NOT NULL,
    calling_ae TEXT NOT NULL,
    called_ae TEXT NOT NULL,
    peer_ip TEXT NOT NULL,
    outcome TEXT NOT NULL,
    received INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT ''
);

-- append-only, hash-chained (see aiws.ledger.audit): ids are assigned 1, 2, 3 ... by the ledger
{audit_table};

{audit_index};
{triggers}

CREATE TABLE IF NOT EXISTS network_config(
    id INTEGER PRIMARY KEY CHECK(id = 1),
    doc TEXT NOT NULL,
    file_hash TEXT NOT NULL,
    version INTEGER NOT NULL
);
""" + V4 + """""").replace("{audit_table}", AUDIT_TABLE).replace("{audit_index}", AUDIT_INDEX).replace(
    "{triggers}", "\n".join(t + ";" for t in TRIGGERS)) + DURATION_TABLES

#: Statements that bring a database from version ``n - 1`` to ``n`` (SQLite cannot change a CHECK
#: constraint in place: the table is rebuilt, as https://sqlite.org/lang_altertable.html describes).
#: A step is an SQL statement, or a function of the connection where SQL alone cannot do it (hashing).
MigrationStep = str | Callable[[sqlite3.Connection], None]
MIGRATIONS: dict[int, tuple[MigrationStep, ...]] = {
    2: (
        """CREATE TABLE studies_v2(
            study_uid TEXT PRIMARY KEY,
            state TEXT NOT NULL CHECK(state IN ('receiving', 'complete', 'error', 'purged')),
            generation INTEGER NOT NULL DEFAULT 1,
            first_received_at REAL NOT NULL,
            last_received_at REAL NOT NULL,
            completed_at REAL,
            n_instances INTEGER NOT NULL DEFAULT 0,
            calling_ae TEXT NOT NULL DEFAULT '',
            n_jobs INTEGER NOT NULL DEFAULT 0,
            unrouted INTEGER NOT NULL DEFAULT 0,
            purged_at REAL,
            error TEXT NOT NULL DEFAULT ''
        )""",
        "INSERT INTO studies_v2(study_uid, state, generation, first_received_at, last_received_at, completed_at,"
        " n_instances, calling_ae, n_jobs, unrouted, purged_at) SELECT study_uid, state, generation,"
        " first_received_at, last_received_at, completed_at, n_instances, calling_ae, n_jobs, unrouted, purged_at"
        " FROM studies",
        "DROP TABLE studies",
        "ALTER TABLE studies_v2 RENAME TO studies",
        "CREATE INDEX IF NOT EXISTS ix_studies_state ON studies(state, last_received_at)",
    ),
    3: (migrate_v3, backfill),
    4: (
        lambda con: _add_study_labels(con),
        *(statement for statement in V4.split(";") if statement.strip()),
    ),
}


def _add_study_labels(con: sqlite3.Connection) -> None:
    """Version 4's label columns, where the table lacks them (the CREATE statements of a newer schema may
    have run on the database before its migrations)."""
    have = {row[1] for row in con.execute("PRAGMA table_info(studies)")}
    for column in ("accession", "modality", "description"):
        if column not in have:
            con.execute(f"ALTER TABLE studies ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")


class SchemaTooNew(AiwsError):
    """The ledger was written by a newer AIWS (its schema version is above :data:`SCHEMA_VERSION`)."""


def stored_version(con: sqlite3.Connection) -> int | None:
    """The schema version a database records, or None for a new (empty) database."""
    if con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone() is None:
        return None
    row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return None if row is None else int(row[0])


def refuse_newer(version: int | None, path: Path) -> None:
    """Raise :class:`SchemaTooNew` when *version* is above what this code knows; it never downgrades, and
    writing to a newer schema could break the rows (or the audit chain) that the newer code relies on."""
    if version is not None and version > SCHEMA_VERSION:
        raise SchemaTooNew(f"ledger {path}: schema version {version} is newer than this AIWS understands "
                           f"({SCHEMA_VERSION}); run the AIWS version that wrote it, or restore a backup")

