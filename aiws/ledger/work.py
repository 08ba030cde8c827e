"""Ledger: jobs, their results, and the sends of those results."""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from aiws.ledger.audit import add_counter
from aiws.ledger.rows import JobRow, NewResult, ResultRow, SendRow
from aiws.ledger.stats import observe_job


class WorkMixin:
    """Job and send state machines (used by :class:`aiws.ledger.Ledger`).

    Jobs: pending → running → done | pending (retry) | failed; pending → superseded.
    Sends: pending → sending → done | pending (retry, with backoff) | dead.
    """

    # Provided by aiws.ledger.Ledger, which mixes this class in (declared here for the type checker only).
    transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    query: Callable[..., list[sqlite3.Row]]
    _audit: Callable[[sqlite3.Connection, str, str, dict[str, Any]], None]
    _hold_claim: Callable[[str, int], None]
    _release_claim: Callable[[str, int], bool]
    _unheld: Callable[[str, str], str]

    # -- jobs -----------------------------------------------------------------------
    def claim_job(self, worker: str, now: float) -> JobRow | None:
        """Take the oldest due pending job with one atomic update."""
        with self.transaction() as con:
            row = con.execute(
                "UPDATE jobs SET state='running', worker=?, started_at=?, attempts=attempts+1"
                " WHERE id=(SELECT id FROM jobs WHERE state='pending' AND not_before<=?"
                f"{self._unheld('job', 'jobs.id')} ORDER BY id LIMIT 1) RETURNING *",
                (worker, now, now),
            ).fetchone()
            if row is not None:
                self._hold_claim("job", int(row["id"]))
        return JobRow.of(row) if row else None

    def finish_job(
        self, job_id: int, results: Sequence[NewResult], summary: dict[str, Any],
        sends: Sequence[tuple[str, int]], now: float,
    ) -> bool:
        """Record results and queue their sends, atomically.

        *sends* is ``[(destination, n_files)]``. When a newer generation of the
        same study and pipeline exists, the results are kept but not sent
        (the newer job sends the same UIDs with newer content). Returns False then, and when this process
        lost its claim of the job (PostgreSQL: another node may be running it again).
        """
        with self.transaction() as con:
            if not self._release_claim("job", job_id):
                return False
            job = con.execute("SELECT study_uid, pipeline, generation, started_at FROM jobs WHERE id=?",
                              (job_id,)).fetchone()
            newer = con.execute(
                "SELECT 1 FROM jobs WHERE study_uid=? AND pipeline=? AND generation>? AND state!='superseded'",
                (job["study_uid"], job["pipeline"], job["generation"]),
            ).fetchone()
            for res in results:
                con.execute(
                    "INSERT OR REPLACE INTO results(job_id, kind, sop_instance_uid, series_uid, sop_class_uid,"
                    " path, created_at) VALUES(?,?,?,?,?,?,?)",
                    (job_id, res.kind, res.sop_instance_uid, res.series_uid, res.sop_class_uid, res.path, now),
                )
            state = "superseded" if newer else "done"
            con.execute(
                "UPDATE jobs SET state=?, finished_at=?, error='', summary=? WHERE id=?",
                (state, now, json.dumps(summary, sort_keys=True, default=str), job_id),
            )
            self._audit(con, "worker", "job done" if not newer else "job superseded", {
                "job_id": job_id, "study_uid": job["study_uid"], "pipeline": job["pipeline"],
                "results": len(results)})
            if newer:
                return False
            observe_job(con, job["pipeline"], summary,
                        now - job["started_at"] if job["started_at"] is not None else None)
            for destination, n_files in sends:
                con.execute(
                    "INSERT INTO sends(job_id, destination, state, n_files, created_at, updated_at)"
                    " VALUES(?, ?, 'pending', ?, ?, ?)",
                    (job_id, destination, n_files, now, now),
                )
        return True

    def fail_job(self, job_id: int, error: str, retry_at: float | None, now: float) -> None:
        """Back to pending (due at *retry_at*), or failed for good when *retry_at* is None."""
        with self.transaction() as con:
            if not self._release_claim("job", job_id):
                return
            if retry_at is None:
                con.execute(
                    "UPDATE jobs SET state='failed', finished_at=?, error=? WHERE id=?", (now, error[:2000], job_id)
                )
                row = con.execute("SELECT study_uid, pipeline FROM jobs WHERE id=?", (job_id,)).fetchone()
                self._audit(con, "worker", "job failed", {"job_id": job_id, "study_uid": row["study_uid"],
                                                         "pipeline": row["pipeline"], "error": error[:500]})
            else:
                con.execute(
                    "UPDATE jobs SET state='pending', not_before=?, error=?, worker='' WHERE id=?",
                    (retry_at, error[:2000], job_id),
                )

    def requeue_running_jobs(self, worker: str | None = None, max_attempts: int | None = None) -> int:
        """Jobs whose worker died (or every running job at start-up) become pending again.

        A job that has already been attempted *max_attempts* times fails instead
        (a pipeline that kills its worker every time must not loop forever).
        """
        where, params = f"state='running'{self._unheld('job', 'jobs.id')}", []
        if worker is not None:
            where += " AND worker=?"
            params.append(worker)
        with self.transaction() as con:
            if max_attempts is not None:
                con.execute(
                    f"UPDATE jobs SET state='failed', finished_at=?, error=? WHERE {where} AND attempts>=?",
                    (time.time(), f"worker died during each of {max_attempts} attempts", *params, max_attempts),
                )
            cur = con.execute(f"UPDATE jobs SET state='pending', worker='' WHERE {where}", tuple(params))
            return cur.rowcount

    def get_job(self, job_id: int) -> JobRow | None:
        rows = self.query("SELECT * FROM jobs WHERE id=?", (job_id,))
        return JobRow.of(rows[0]) if rows else None

    def list_jobs(self, state: str | None = None, study_uid: str | None = None, limit: int = 100) -> list[JobRow]:
        sql, params = "SELECT * FROM jobs WHERE 1=1", []
        if state:
            sql += " AND state=?"
            params.append(state)
        if study_uid:
            sql += " AND study_uid=?"
            params.append(study_uid)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [JobRow.of(r) for r in self.query(sql, tuple(params))]

    def results_of_job(self, job_id: int) -> list[ResultRow]:
        return [ResultRow.of(r) for r in self.query("SELECT * FROM results WHERE job_id=? ORDER BY id", (job_id,))]

    def results_of_study(self, study_uid: str) -> list[ResultRow]:
        rows = self.query(
            "SELECT r.* FROM results r JOIN jobs j ON r.job_id=j.id WHERE j.study_uid=? ORDER BY r.id", (study_uid,)
        )
        return [ResultRow.of(r) for r in rows]

    def job_ids_of_study(self, study_uid: str) -> list[int]:
        return [r[0] for r in self.query("SELECT id FROM jobs WHERE study_uid=?", (study_uid,))]

    # -- sends -----------------------------------------------------------------------
    def claim_send(self, now: float) -> SendRow | None:
        with self.transaction() as con:
            row = con.execute(
                "UPDATE sends SET state='sending', attempts=attempts+1, updated_at=?"
                " WHERE id=(SELECT id FROM sends WHERE state='pending' AND next_attempt_at<=?"
                f"{self._unheld('send', 'sends.id')} ORDER BY next_attempt_at, id LIMIT 1) RETURNING *",
                (now, now),
            ).fetchone()
            if row is not None:
                self._hold_claim("send", int(row["id"]))
        return SendRow.of(row) if row else None

    def send_done(self, send_id: int, now: float) -> None:
        with self.transaction() as con:
            if not self._release_claim("send", send_id):
                return
            row = con.execute(
                "UPDATE sends SET state='done', done_at=?, updated_at=?, last_error='' WHERE id=?"
                " RETURNING job_id, destination, n_files, attempts",
                (now, now, send_id),
            ).fetchone()
            if row is not None:
                job = con.execute("SELECT study_uid, pipeline FROM jobs WHERE id=?", (row["job_id"],)).fetchone()
                self._audit(con, "sender", "results sent", {
                    "send_id": send_id, "job_id": row["job_id"], "destination": row["destination"],
                    "files": row["n_files"], "attempts": row["attempts"],
                    "study_uid": job["study_uid"] if job else "", "pipeline": job["pipeline"] if job else ""})

    def send_failed(self, send_id: int, error: str, next_attempt_at: float | None, now: float) -> None:
        """Retry at *next_attempt_at*, or dead-letter when it is None."""
        with self.transaction() as con:
            if not self._release_claim("send", send_id):
                return
            dest = con.execute("SELECT destination FROM sends WHERE id=?", (send_id,)).fetchone()
            add_counter(con, f"send_failures_total:{dest[0] if dest else ''}", 1)
            if next_attempt_at is None:
                con.execute(
                    "UPDATE sends SET state='dead', last_error=?, updated_at=? WHERE id=?",
                    (error[:2000], now, send_id),
                )
                self._audit(con, "sender", "send dead-lettered", {"send_id": send_id, "error": error[:500]})
            else:
                con.execute(
                    "UPDATE sends SET state='pending', next_attempt_at=?, last_error=?, updated_at=? WHERE id=?",
                    (next_attempt_at, error[:2000], now, send_id),
                )

    def retry_send(self, send_id: int, actor: str, now: float) -> bool:
        """Put a dead-lettered send back in the queue (admin action)."""
        with self.transaction() as con:
            cur = con.execute(
                "UPDATE sends SET state='pending', attempts=0, next_attempt_at=?, updated_at=?"
                " WHERE id=? AND state='dead'",
                (now, now, send_id),
            )
            if cur.rowcount:
                self._audit(con, actor, "send requeued", {"send_id": send_id})
            return cur.rowcount == 1

    def requeue_sending(self) -> int:
        """At start-up: sends that were in flight when the process died are retried (PostgreSQL: also while
        running, the sends of any node that died; a live node's are left alone)."""
        with self.transaction() as con:
            return con.execute(
                f"UPDATE sends SET state='pending' WHERE state='sending'{self._unheld('send', 'sends.id')}").rowcount

    def get_send(self, send_id: int) -> SendRow | None:
        rows = self.query("SELECT * FROM sends WHERE id=?", (send_id,))
        return SendRow.of(rows[0]) if rows else None

    def list_sends(self, state: str | None = None, job_id: int | None = None, limit: int = 100) -> list[SendRow]:
        sql, params = "SELECT * FROM sends WHERE 1=1", []
        if state:
            sql += " AND state=?"
            params.append(state)
        if job_id is not None:
            sql += " AND job_id=?"
            params.append(job_id)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [SendRow.of(r) for r in self.query(sql, tuple(params))]
