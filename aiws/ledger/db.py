"""Ledger connection handling, instances and studies. Jobs and sends: :mod:`aiws.ledger.work`."""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from aiws.ledger.actions import ActionsMixin
from aiws.ledger.audit import AuditMixin, add_counter, config_changes
from aiws.ledger.custody import CustodyMixin, InstanceRefused, quarantined_error
from aiws.ledger.pg import PgBackend, PgConnection, unheld
from aiws.ledger.rows import InstanceRow, NewJob, StudyLabels, StudyRow, joined_modalities
from aiws.ledger.schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION, refuse_newer, stored_version
from aiws.ledger.stats import Histogram, histograms
from aiws.ledger.work import WorkMixin

if TYPE_CHECKING:
    from aiws.config import Config

LOGGER = logging.getLogger(__name__)


class Ledger(AuditMixin, CustodyMixin, WorkMixin, ActionsMixin):
    """Thread-safe (one connection per thread) and multi-process safe (SQLite WAL, immediate transactions).

    Durability: instance files are fsynced in the spool before they are
    recorded here, and :func:`aiws.intake.recover_spool` re-registers any spooled
    file the ledger lacks, so ``synchronous=NORMAL`` is enough (a kill -9
    loses no committed row; a power cut loses at most rows the spool restores).
    """

    def __init__(self, path: Path, url: str | None = None) -> None:
        """SQLite at *path*; or, with *url* (``postgresql://…``), the PostgreSQL ledger several nodes may share
        (:mod:`aiws.ledger.pg`: migrated by alembic here, *path* only names it in messages)."""
        self.path = path
        self._local = threading.local()
        self._pg = PgBackend(url) if url else None
        if self._pg is not None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        con = self._conn()
        refuse_newer(stored_version(con), path)  # before the CREATE statements touch a newer database
        con.executescript(SCHEMA)
        con.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        self._migrate()

    def _migrate(self) -> None:
        """Bring an older database up to :data:`SCHEMA_VERSION`, one version per transaction (another
        process opening the same file at the same time finds the version already raised and skips)."""
        while True:
            with self.transaction() as con:
                version = int(con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
                refuse_newer(version, self.path)
                if version == SCHEMA_VERSION:
                    return
                for step in MIGRATIONS[version + 1]:
                    if isinstance(step, str):
                        con.execute(step)
                    else:
                        step(con)
                con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version + 1),))
            LOGGER.info("ledger %s: schema migrated from version %d to %d", self.path, version, version + 1)

    @classmethod
    def of_config(cls, config: Config) -> Ledger:
        """The ledger *config* names: ``[ledger] url`` (PostgreSQL), else SQLite at ``<data_dir>/aiws.db``."""
        return cls(config.storage.data_dir / "aiws.db", config.ledger.url)

    # -- connections ------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if self._pg is not None:
            if con is None or cast(PgConnection, con).broken:  # a lost connection is opened again
                con = self._local.con = cast(sqlite3.Connection, self._pg.connect())  # the sqlite3 subset used
            return con
        if con is None:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=True)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA busy_timeout=30000")
            self._local.con = con
        return con

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: the write lock is taken at BEGIN, so read-then-write is atomic."""
        con = self._conn()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self._conn().execute(sql, params).fetchall()

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
        if self._pg is not None:
            self._pg.claims.close()

    # -- claims of jobs and sends by several nodes (PostgreSQL; on SQLite the write lock is enough) ---------
    @property
    def shared(self) -> bool:
        """True on PostgreSQL, where other nodes may share the ledger (their claims are swept when they die)."""
        return self._pg is not None

    def _hold_claim(self, kind: str, row_id: int) -> None:
        """Inside the claiming transaction: this process holds the claim until it is released or dies."""
        if self._pg is not None and not self._pg.claims.hold(kind, row_id):
            raise sqlite3.OperationalError(f"{kind} {row_id}: claimed by another session")

    def _release_claim(self, kind: str, row_id: int) -> bool:
        """Give a claim up; False when this process no longer holds it (another node may have taken the work
        again since): the caller then changes nothing."""
        if self._pg is None or self._pg.claims.release(kind, row_id):
            return True
        LOGGER.warning("%s %d: claim lost (the ledger connection was lost), outcome not recorded here", kind, row_id)
        return False

    def _unheld(self, kind: str, id_column: str) -> str:
        """SQL condition: the row's claim is not held by a live process (always true on SQLite)."""
        return unheld(kind, id_column) if self._pg is not None else ""

    # -- instances and studies -----------------------------------------------------
    def record_instance(self, row: InstanceRow, require_file: bool = False, labels: StudyLabels | None = None) -> bool:
        """Record a spooled instance and open (or re-open) its study. False for a duplicate (same
        SOP Instance UID, study and series).

        The study's labels (:class:`StudyLabels`, the console's only) are taken from its first instance that
        has them; its modality label gathers the instances' modalities.

        With *require_file*, the spool file must still exist when the row is written (checked under
        the write lock, which a retention purge holds while it moves a study's folder aside).

        Raises:
            InstanceRefused: the SOP Instance UID is held under another study or series
                (``conflict``), or the file is gone (``gone``); nothing is recorded.
        """
        with self.transaction() as con:
            cur = con.execute(
                "INSERT OR IGNORE INTO instances VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                (row.sop_instance_uid, row.study_uid, row.series_uid, row.sop_class_uid, row.modality,
                 row.transfer_syntax, row.path, row.size_bytes, row.calling_ae, row.peer_ip, row.received_at),
            )
            if cur.rowcount == 0:
                held = con.execute("SELECT study_uid, series_uid FROM instances WHERE sop_instance_uid=?",
                                   (row.sop_instance_uid,)).fetchone()
                if (held["study_uid"], held["series_uid"]) != (row.study_uid, row.series_uid):
                    raise InstanceRefused(
                        "conflict", f"SOP instance {row.sop_instance_uid} is already held under study "
                        f"{held['study_uid']} series {held['series_uid']}")
                return False
            if require_file and not os.path.exists(row.path):
                raise InstanceRefused(
                    "gone", f"study {row.study_uid} was purged while instance {row.sop_instance_uid} arrived")
            add_counter(con, "instances_received_total", 1)  # /metrics: kept when a purge drops the rows
            add_counter(con, "received_bytes_total", row.size_bytes)
            labels = labels or StudyLabels()
            study = con.execute("SELECT state, accession, modality, description FROM studies WHERE study_uid=?",
                                (row.study_uid,)).fetchone()
            if study is None:
                con.execute(
                    "INSERT INTO studies(study_uid, state, generation, first_received_at, last_received_at,"
                    " n_instances, calling_ae, accession, modality, description)"
                    " VALUES(?, 'receiving', 1, ?, ?, 1, ?, ?, ?, ?)",
                    (row.study_uid, row.received_at, row.received_at, row.calling_ae, labels.accession,
                     joined_modalities("", row.modality), labels.description),
                )
            else:
                reopen = study["state"] != "receiving"
                con.execute(
                    "UPDATE studies SET state='receiving', last_received_at=MAX(last_received_at, ?),"
                    " n_instances=n_instances+1, generation=generation+?, purged_at=NULL,"
                    " accession=?, modality=?, description=? WHERE study_uid=?",
                    (row.received_at, 1 if reopen else 0, study["accession"] or labels.accession,
                     joined_modalities(study["modality"], row.modality), study["description"] or labels.description,
                     row.study_uid),
                )
                if reopen:
                    LOGGER.info("study %s re-opened by instance %s", row.study_uid, row.sop_instance_uid)
        return True

    def known_instance_uids(self) -> set[str]:
        return {r[0] for r in self.query("SELECT sop_instance_uid FROM instances")}

    def instances_of_study(self, study_uid: str) -> list[InstanceRow]:
        rows = self.query(
            "SELECT * FROM instances WHERE study_uid=? ORDER BY series_uid, received_at", (study_uid,)
        )
        return [InstanceRow.of(r) for r in rows]

    def studies_quiet_since(self, before: float) -> list[tuple[str, float]]:
        rows = self.query(
            "SELECT study_uid, last_received_at FROM studies WHERE state='receiving' AND last_received_at<=?"
            " ORDER BY last_received_at",
            (before,),
        )
        return [(r[0], r[1]) for r in rows]

    def complete_study(self, study_uid: str, last_seen: float, jobs: list[NewJob], now: float) -> bool:
        """Mark a study complete and create its jobs in one transaction.

        Returns False (and changes nothing) when an instance arrived after
        *last_seen*. Older unfinished jobs of the same pipeline are superseded.
        """
        with self.transaction() as con:
            study = con.execute(
                "SELECT state, generation, last_received_at FROM studies WHERE study_uid=?", (study_uid,)
            ).fetchone()
            if study is None or study["state"] != "receiving" or study["last_received_at"] > last_seen:
                return False
            n_bad, reason = self._unresolved(con, study_uid)
            if n_bad:  # an instance of it is quarantined and was not sent again
                self._set_error(con, study_uid, quarantined_error(n_bad, reason), now)
                return True
            for job in jobs:
                con.execute(
                    "UPDATE jobs SET state='superseded', finished_at=? WHERE study_uid=? AND pipeline=?"
                    " AND state='pending'",
                    (now, study_uid, job.pipeline),
                )
                cur = con.execute(
                    "INSERT INTO jobs(study_uid, generation, pipeline, series_uids, send_to, state, created_at)"
                    " VALUES(?,?,?,?,?, 'pending', ?)",
                    (study_uid, study["generation"], job.pipeline, json.dumps(list(job.series_uids)),
                     json.dumps(list(job.send_to)), now),
                )
                self._audit(con, "scheduler", "job created", {"job_id": cur.lastrowid, "study_uid": study_uid,
                                                             "pipeline": job.pipeline, "send_to": list(job.send_to)})
            con.execute(
                "UPDATE studies SET state='complete', completed_at=?, n_jobs=n_jobs+?, unrouted=? WHERE study_uid=?",
                (now, len(jobs), 1 if not jobs else 0, study_uid),
            )
        return True

    def get_study(self, study_uid: str) -> StudyRow | None:
        rows = self.query("SELECT * FROM studies WHERE study_uid=?", (study_uid,))
        return StudyRow.of(rows[0]) if rows else None

    def list_studies(self, state: str | None = None, limit: int = 100, offset: int = 0) -> list[StudyRow]:
        if state:
            rows = self.query(
                "SELECT * FROM studies WHERE state=? ORDER BY last_received_at DESC LIMIT ? OFFSET ?",
                (state, limit, offset),
            )
        else:
            rows = self.query(
                "SELECT * FROM studies ORDER BY last_received_at DESC LIMIT ? OFFSET ?", (limit, offset)
            )
        return [StudyRow.of(r) for r in rows]

    # -- associations, audit, network configuration -----------------------------------
    def record_association(self, rec: dict[str, Any]) -> None:
        with self.transaction() as con:
            con.execute(
                "INSERT INTO associations(started_at, ended_at, calling_ae, called_ae, peer_ip, outcome,"
                " received, duplicates, failed, reason) VALUES(?,?,?,?,?,?,?,?,?,?)",
                (rec["started_at"], rec["ended_at"], rec["calling_ae"], rec["called_ae"], rec["peer_ip"],
                 rec["outcome"], rec["received"], rec["duplicates"], rec["failed"], rec["reason"]),
            )
            self._audit(con, "scp", "association", {k: rec[k] for k in (
                "calling_ae", "called_ae", "peer_ip", "outcome", "received", "duplicates", "failed", "reason")})

    def list_associations(self, limit: int = 100) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query("SELECT * FROM associations ORDER BY id DESC LIMIT ?", (limit,))]

    def network_doc(self) -> tuple[dict[str, Any], str, int] | None:
        """(document, hash of the file it was seeded from, version) or None before the first seed."""
        rows = self.query("SELECT doc, file_hash, version FROM network_config WHERE id=1")
        if not rows:
            return None
        return json.loads(rows[0]["doc"]), rows[0]["file_hash"], int(rows[0]["version"])

    def network_version(self) -> int:
        rows = self.query("SELECT version FROM network_config WHERE id=1")
        return int(rows[0][0]) if rows else 0

    def save_network(self, doc: dict[str, Any], file_hash: str, actor: str, action: str,
                     detail: dict[str, Any]) -> int:
        """Store the live network configuration; audit who changed what, with each changed key's old and
        new value (``detail["changes"]``). Returns the new version."""
        with self.transaction() as con:
            row = con.execute("SELECT version, doc FROM network_config WHERE id=1").fetchone()
            version = (int(row[0]) if row else 0) + 1
            detail = {**detail, "changes": config_changes(json.loads(row[1]) if row else {}, doc)}
            con.execute(
                "INSERT INTO network_config(id, doc, file_hash, version) VALUES(1, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET doc=excluded.doc, file_hash=excluded.file_hash,"
                " version=excluded.version",
                (json.dumps(doc, sort_keys=True), file_hash, version),
            )
            self._audit(con, actor, action, detail)
        return version

    def routing_doc(self) -> tuple[dict[str, Any], str, int] | None:
        """The live routing rules ``{"routes": [...]}``, the hash of the file they were seeded from, and the
        version; None before the first seed (:mod:`aiws.routestore`)."""
        rows = self.query("SELECT doc, file_hash, version FROM routing_config WHERE id=1")
        if not rows:
            return None
        return json.loads(rows[0]["doc"]), rows[0]["file_hash"], int(rows[0]["version"])

    def routing_version(self) -> int:
        rows = self.query("SELECT version FROM routing_config WHERE id=1")
        return int(rows[0][0]) if rows else 0

    def save_routing(self, doc: dict[str, Any], file_hash: str, actor: str, action: str, detail: dict[str, Any],
                     expected_version: int | None = None) -> int | None:
        """Store the live routing rules and audit the change (``detail["changes"]``: each changed key's old
        and new value, routes keyed by their index). With *expected_version*, nothing is written and None
        is returned unless the stored version is that one (optimistic concurrency). Returns the new version."""
        with self.transaction() as con:
            row = con.execute("SELECT version, doc FROM routing_config WHERE id=1").fetchone()
            version = int(row[0]) if row else 0
            if expected_version is not None and expected_version != version:
                return None
            old = json.loads(row[1]) if row else {}
            detail = {**detail, "version": version + 1,
                      "changes": config_changes(_routes_by_index(old), _routes_by_index(doc))}
            con.execute(
                "INSERT INTO routing_config(id, doc, file_hash, version) VALUES(1, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET doc=excluded.doc, file_hash=excluded.file_hash,"
                " version=excluded.version",
                (json.dumps(doc, sort_keys=True), file_hash, version + 1),
            )
            self._audit(con, actor, action, detail)
        return version + 1

    def histograms(self, metric: str) -> list[Histogram]:
        """Duration histograms (``job_duration`` or ``inference``), see :mod:`aiws.ledger.stats`."""
        return histograms(self._conn(), metric)

    def counts(self) -> dict[str, dict[str, int]]:
        """Row counts by state, for /metrics and ``aiws status``."""
        out: dict[str, dict[str, int]] = {}
        for table in ("studies", "jobs", "sends"):
            out[table] = {r[0]: r[1] for r in self.query(f"SELECT state, COUNT(*) FROM {table} GROUP BY state")}
        out["instances"] = {"total": int(self.query("SELECT COUNT(*) FROM instances")[0][0])}
        return out


def _routes_by_index(doc: dict[str, Any]) -> dict[str, Any]:
    """``{"routes": {"0": {...}, "1": {...}}}``: a route's changes are named by its index."""
    return {**doc, "routes": {str(i): r for i, r in enumerate(doc.get("routes", []))}}
