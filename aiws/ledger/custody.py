"""Ledger: custody of received instances beyond the happy path — quarantine, refusals, retention
purges, and the signals ``/health`` and ``/metrics`` report (see :mod:`aiws.health`)."""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal

from aiws.errors import AiwsError
from aiws.ledger.rows import QuarantineItem, QuarantineRow

#: A study whose every job and send is finished and that was last touched before ``?``.
PURGEABLE = (
    "SELECT s.study_uid FROM studies s WHERE s.state='complete' AND s.last_received_at < ?"
    " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.study_uid=s.study_uid"
    "                 AND j.state IN ('pending','running'))"
    " AND NOT EXISTS (SELECT 1 FROM sends d JOIN jobs j ON d.job_id=j.id"
    "                 WHERE j.study_uid=s.study_uid AND d.state IN ('pending','sending'))"
)

#: Quarantined instances of a study that no later instance with the same SOP Instance UID replaced.
_UNRESOLVED = (
    "SELECT COUNT(*), MIN(q.reason) FROM quarantine q WHERE q.study_uid=?"
    " AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.sop_instance_uid=q.sop_instance_uid"
    "                AND i.study_uid=q.study_uid)"
)

REFUSED_ACTION = "instance refused"


def quarantined_error(n: int, first_reason: str) -> str:
    """A study's error text for its *n* quarantined instances (words only: it passes the scrubber whole)."""
    return f"quarantined {n} instance{'' if n == 1 else 's'}, first: {first_reason}"


class InstanceRefused(AiwsError):
    """The ledger will not take an instance (nothing was recorded).

    *kind* ``conflict``: its SOP Instance UID is already held under another study or series;
    ``gone``: its spool file vanished before it was recorded (a retention purge moved the study
    aside meanwhile), so it must not be acknowledged.
    """

    def __init__(self, kind: Literal["conflict", "gone"], reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class CustodyMixin:
    """Quarantine, purge and health signals (used by :class:`aiws.ledger.Ledger`)."""

    # Provided by aiws.ledger.Ledger, which mixes this class in (declared here for the type checker only).
    transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    query: Callable[..., list[sqlite3.Row]]
    _audit: Callable[[sqlite3.Connection, str, str, dict[str, Any]], None]

    # -- quarantine ---------------------------------------------------------------------
    @staticmethod
    def _set_error(con: sqlite3.Connection, study_uid: str, error: str, now: float) -> None:
        con.execute(
            "UPDATE studies SET state='error', error=?, completed_at=? WHERE study_uid=?",
            (error[:500], now, study_uid),
        )

    @staticmethod
    def _unresolved(con: sqlite3.Connection, study_uid: str) -> tuple[int, str]:
        n, reason = con.execute(_UNRESOLVED, (study_uid,)).fetchone()
        return int(n), str(reason or "")

    def quarantine_instances(self, study_uid: str, items: Sequence[QuarantineItem], last_seen: float,
                             now: float) -> bool:
        """Take *items* out of the study (into the quarantine table) and put the study in ``error``,
        in one transaction. The study is created when unknown (a file found at start-up). It stays
        ``receiving`` when an instance arrived after *last_seen*: it goes to ``error`` when it completes.

        Returns True when the study is in ``error`` now.
        """
        with self.transaction() as con:
            con.execute(
                "INSERT OR IGNORE INTO studies(study_uid, state, generation, first_received_at, last_received_at)"
                " VALUES(?, 'receiving', 1, ?, ?)",
                (study_uid, now, now),
            )
            for item in items:
                con.execute(
                    "INSERT INTO quarantine(sop_instance_uid, study_uid, series_uid, original_path, path, reason, at)"
                    " VALUES(?,?,?,?,?,?,?)",
                    (item.sop_instance_uid, study_uid, item.series_uid, item.original_path, item.path,
                     item.reason[:500], now),
                )
                con.execute("DELETE FROM instances WHERE sop_instance_uid=? AND path=?",
                            (item.sop_instance_uid, item.original_path))
                self._audit(con, "scheduler", "instance quarantined",
                            {"study_uid": study_uid, "sop_instance_uid": item.sop_instance_uid, "reason": item.reason})
            con.execute(
                "UPDATE studies SET n_instances=(SELECT COUNT(*) FROM instances WHERE study_uid=?) WHERE study_uid=?",
                (study_uid, study_uid),
            )
            study = con.execute("SELECT state, last_received_at FROM studies WHERE study_uid=?",
                                (study_uid,)).fetchone()
            if study["state"] == "receiving" and study["last_received_at"] > last_seen:
                return False
            n, reason = self._unresolved(con, study_uid)
            self._set_error(con, study_uid, quarantined_error(n, reason), now)
        return True

    def fail_study(self, study_uid: str, last_seen: float, error: str, now: float) -> bool:
        """Put a receiving study in ``error`` unless an instance arrived after *last_seen*."""
        with self.transaction() as con:
            cur = con.execute(
                "UPDATE studies SET state='error', error=?, completed_at=? WHERE study_uid=? AND state='receiving'"
                " AND last_received_at<=?",
                (error[:500], now, study_uid, last_seen),
            )
            if cur.rowcount:
                self._audit(con, "scheduler", "study error", {"study_uid": study_uid, "error": error[:500]})
            return cur.rowcount == 1

    def quarantine_of_study(self, study_uid: str) -> list[QuarantineRow]:
        rows = self.query("SELECT * FROM quarantine WHERE study_uid=? ORDER BY id", (study_uid,))
        return [QuarantineRow.of(r) for r in rows]

    def list_quarantine(self, limit: int = 100) -> list[QuarantineRow]:
        return [QuarantineRow.of(r) for r in self.query("SELECT * FROM quarantine ORDER BY id DESC LIMIT ?", (limit,))]

    def quarantine_pending_moves(self) -> dict[str, str]:
        """original spool path → quarantine path, for every quarantined instance with a file to move."""
        return {r[0]: r[1] for r in self.query("SELECT original_path, path FROM quarantine WHERE path!=''")}

    def instance_paths(self) -> dict[str, str]:
        """SOP Instance UID → spool path of every recorded instance."""
        return {r[0]: r[1] for r in self.query("SELECT sop_instance_uid, path FROM instances")}

    # -- refusals ---------------------------------------------------------------------------
    def record_refusal(self, kind: str, detail: dict[str, Any]) -> None:
        """Audit an instance the ledger refused (shown in /api/audit, counted in /metrics)."""
        with self.transaction() as con:
            self._audit(con, "intake", REFUSED_ACTION, {"kind": kind, **detail})

    def refusal_counts(self) -> dict[str, int]:
        rows = self.query(
            "SELECT json_extract(detail, '$.kind'), COUNT(*) FROM audit WHERE action=? GROUP BY 1", (REFUSED_ACTION,)
        )
        return {str(r[0]): int(r[1]) for r in rows}

    # -- retention ----------------------------------------------------------------------
    def purgeable_studies(self, before: float) -> list[str]:
        """Studies older than *before* whose every job and send is finished."""
        return [r[0] for r in self.query(PURGEABLE, (before,))]

    def purge_study(self, study_uid: str, before: float, now: float, move_aside: Callable[[], None]) -> bool:
        """Purge one study in one transaction: re-check that it is still purgeable, call *move_aside*
        (which renames its spool folder away) while the write lock is held, then drop its rows.

        An instance recorded before this transaction re-opened the study, which is then not purged;
        one whose file was written but not yet recorded finds it gone and is refused (never
        acknowledged) — see :class:`InstanceRefused`. Returns False when the study was not purged.
        """
        with self.transaction() as con:
            if con.execute(PURGEABLE + " AND s.study_uid=?", (before, study_uid)).fetchone() is None:
                return False
            move_aside()
            con.execute("DELETE FROM instances WHERE study_uid=?", (study_uid,))
            con.execute(
                "UPDATE studies SET state='purged', purged_at=?, n_instances=0 WHERE study_uid=?", (now, study_uid)
            )
            con.execute(
                "UPDATE results SET path='' WHERE job_id IN (SELECT id FROM jobs WHERE study_uid=?)", (study_uid,)
            )
            self._audit(con, "retention", "study purged", {"study_uid": study_uid})
        return True

    # -- health signals ---------------------------------------------------------------------
    def note_scheduler_error(self, step: str, error_type: str, now: float) -> None:
        """Count a failed scheduler step (its exception type only) for /health and /metrics."""
        with self.transaction() as con:
            con.execute(
                "INSERT INTO meta(key, value) VALUES('scheduler_errors_total', '1') ON CONFLICT(key)"
                " DO UPDATE SET value=CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
            )
            for key, value in (("scheduler_last_error_at", repr(now)),
                               ("scheduler_last_error", f"{step}: {error_type}")):
                con.execute("INSERT INTO meta(key, value) VALUES(?, ?)"
                            " ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))

    def scheduler_errors(self) -> tuple[int, float, str]:
        """(total failed steps, epoch s of the last, what it was)."""
        meta = {r[0]: r[1] for r in self.query("SELECT key, value FROM meta WHERE key LIKE 'scheduler_%'")}
        return (int(meta.get("scheduler_errors_total", 0)), float(meta.get("scheduler_last_error_at", 0.0)),
                meta.get("scheduler_last_error", ""))

    def dead_letter_destinations(self) -> list[str]:
        """Destinations whose latest finished send was dead-lettered (a later success clears it)."""
        rows = self.query(
            "SELECT destination FROM sends s WHERE state='dead' AND NOT EXISTS (SELECT 1 FROM sends t"
            " WHERE t.destination=s.destination AND t.state='done' AND t.updated_at>s.updated_at)"
            " GROUP BY destination ORDER BY destination"
        )
        return [r[0] for r in rows]
