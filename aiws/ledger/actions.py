"""Ledger: what an operator does to a study or a job from the console or the API — retry a failed job,
reprocess a study, send a job's results again. Each is one transaction that re-checks the state it needs,
changes it and writes the audit row; a state that does not allow it raises :class:`ActionRefused` (HTTP 409)
with the reason, and nothing changes.

The SQL is portable (``?`` parameters, no SQLite-only functions; ``RETURNING`` as PostgreSQL has it).
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from aiws.errors import Conflict, NotFound


class ActionRefused(Conflict):
    """The study or job is not in a state that allows the action; the message says why (UIDs, ids, states)."""


@dataclass(frozen=True)
class Reprocessed:
    """A study sent back to routing: its new generation and the jobs superseded."""

    study_uid: str
    generation: int
    superseded_jobs: tuple[int, ...]


class ActionsMixin:
    """Operator actions (used by :class:`aiws.ledger.Ledger`)."""

    # Provided by aiws.ledger.Ledger, which mixes this class in (declared here for the type checker only).
    transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _audit: Callable[[sqlite3.Connection, str, str, dict[str, Any]], None]

    def retry_job(self, job_id: int, actor: str, now: float) -> None:
        """A failed job back to pending (attempts from zero, due now); audited as ``job retried``.

        Raises:
            NotFound: no such job.
            ActionRefused: the job is not failed, a newer run of its pipeline exists, or its study was
                re-opened or purged since.
        """
        with self.transaction() as con:
            job = _job(con, job_id)
            if job["state"] != "failed":
                raise ActionRefused(f"job {job_id} is {job['state']}; only a failed job can be retried")
            _refuse_stale(con, job, "retried")
            con.execute(
                "UPDATE jobs SET state='pending', attempts=0, not_before=?, worker='', error='', finished_at=NULL"
                " WHERE id=? AND state='failed'", (now, job_id))
            self._audit(con, actor, "job retried", {"job_id": job_id, "study_uid": job["study_uid"],
                                                    "pipeline": job["pipeline"], "attempts_before": job["attempts"]})

    def reprocess_study(self, study_uid: str, actor: str, now: float) -> Reprocessed:
        """Supersede every current job of the study (pending, failed or done; their queued sends too) and
        re-open it as a new generation, as an instance arriving after completion does: the scheduler
        completes and routes it again with the routes in force at its next round. Audited as
        ``study reprocess``.

        Raises:
            NotFound: no such study.
            ActionRefused: the study is still receiving (it will be routed anyway), purged (its images are
                gone), or one of its jobs is running (reprocess once it has finished).
        """
        with self.transaction() as con:
            study = con.execute("SELECT state, generation FROM studies WHERE study_uid=?", (study_uid,)).fetchone()
            if study is None:
                raise NotFound(f"study {study_uid} not found")
            if study["state"] == "receiving":
                raise ActionRefused(f"study {study_uid} is receiving; it is routed when it has been quiet")
            if study["state"] == "purged":
                raise ActionRefused(f"study {study_uid} was purged (retention); send it again to reprocess it")
            running = con.execute("SELECT id FROM jobs WHERE study_uid=? AND state='running' ORDER BY id",
                                  (study_uid,)).fetchall()
            if running:
                raise ActionRefused(f"study {study_uid}: job {running[0][0]} is running; reprocess the study "
                                    "when it has finished")
            superseded = tuple(r[0] for r in con.execute(
                "SELECT id FROM jobs WHERE study_uid=? AND state IN ('pending', 'failed', 'done') ORDER BY id",
                (study_uid,)).fetchall())
            con.execute("UPDATE jobs SET state='superseded', finished_at=COALESCE(finished_at, ?) WHERE study_uid=?"
                        " AND state IN ('pending', 'failed', 'done')", (now, study_uid))
            con.execute("UPDATE sends SET state='superseded', updated_at=? WHERE state='pending'"
                        " AND job_id IN (SELECT id FROM jobs WHERE study_uid=?)", (now, study_uid))
            generation = int(study["generation"]) + 1
            con.execute("UPDATE studies SET state='receiving', generation=?, completed_at=NULL, error='',"
                        " unrouted=0 WHERE study_uid=?", (generation, study_uid))
            self._audit(con, actor, "study reprocess", {"study_uid": study_uid, "generation": generation,
                                                        "superseded_jobs": list(superseded)})
        return Reprocessed(study_uid, generation, superseded)

    def resend_job(self, job_id: int, actor: str, now: float, destinations: Mapping[str, bool],
                   only: str | None = None) -> list[int]:
        """Queue new sends of a done job's results: to each of its destinations, or to *only*.

        *destinations* are those configured now, each with whether it takes the PDF report. Returns the new
        send ids; audited as ``results resent``.

        Raises:
            NotFound: no such job, or *only* is not a configured destination.
            ActionRefused: the job is not done, has no result files (none written, or purged), has no
                destination to send to, or a send of it to that destination is already queued.
        """
        if only is not None and only not in destinations:
            raise NotFound(f"destination {only!r} is not configured")
        with self.transaction() as con:
            job = _job(con, job_id)
            if job["state"] != "done":
                raise ActionRefused(f"job {job_id} is {job['state']}; only a done job's results can be sent again")
            results = con.execute("SELECT kind, path FROM results WHERE job_id=?", (job_id,)).fetchall()
            if not results or any(not r["path"] for r in results):
                raise ActionRefused(f"job {job_id} has no result files to send"
                                    f"{' (purged by retention)' if results else ''}")
            targets = [only] if only is not None else _send_to(job)
            if not targets:
                raise ActionRefused(f"job {job_id} has no destination; name one")
            unknown = [t for t in targets if t not in destinations]
            if unknown:
                raise ActionRefused(f"job {job_id}: destination {unknown[0]!r} is no longer configured; name one")
            queued = con.execute(
                "SELECT id, destination FROM sends WHERE job_id=? AND state IN ('pending', 'sending') ORDER BY id",
                (job_id,)).fetchall()
            busy = [r for r in queued if r["destination"] in targets]
            if busy:
                raise ActionRefused(f"job {job_id}: send {busy[0]['id']} to {busy[0]['destination']} is already "
                                    "queued")
            ids = []
            for name in targets:
                n_files = sum(1 for r in results if r["kind"] != "pdf" or destinations[name])
                ids.append(int(con.execute(
                    "INSERT INTO sends(job_id, destination, state, n_files, next_attempt_at, created_at, updated_at)"
                    " VALUES(?, ?, 'pending', ?, ?, ?, ?) RETURNING id", (job_id, name, n_files, now, now, now),
                ).fetchone()[0]))
            self._audit(con, actor, "results resent", {"job_id": job_id, "study_uid": job["study_uid"],
                                                       "pipeline": job["pipeline"], "destinations": targets,
                                                       "send_ids": ids})
        return ids


def _job(con: sqlite3.Connection, job_id: int) -> sqlite3.Row:
    job = con.execute("SELECT id, study_uid, generation, pipeline, state, attempts, send_to FROM jobs WHERE id=?",
                      (job_id,)).fetchone()
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job  # type: ignore[no-any-return]


def _send_to(job: sqlite3.Row) -> list[str]:
    return [str(name) for name in json.loads(job["send_to"])]


def _refuse_stale(con: sqlite3.Connection, job: sqlite3.Row, what: str) -> None:
    """Refuse to run again a job its study has moved past: purged, re-opened, or with a newer run."""
    study = con.execute("SELECT state, generation FROM studies WHERE study_uid=?", (job["study_uid"],)).fetchone()
    if study is None or study["state"] == "purged":
        raise ActionRefused(f"job {job['id']}: study {job['study_uid']} was purged (retention); it cannot be {what}")
    newer = con.execute("SELECT id FROM jobs WHERE study_uid=? AND pipeline=? AND generation>? ORDER BY id DESC",
                        (job["study_uid"], job["pipeline"], job["generation"])).fetchone()
    if newer is not None:
        raise ActionRefused(f"job {job['id']}: job {newer[0]} is a newer run of {job['pipeline']} on the study")
    if int(study["generation"]) > int(job["generation"]):
        raise ActionRefused(f"job {job['id']}: study {job['study_uid']} was re-opened since (generation "
                            f"{study['generation']}); it is routed again")
