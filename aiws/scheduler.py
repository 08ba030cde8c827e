"""The scheduler thread: study completion and routing, sends, retention."""
from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pydicom.dataset import Dataset

from aiws.config import Config
from aiws.headerstore import drop_headers, save_headers
from aiws.ledger import Ledger, QuarantineItem
from aiws.quarantine import item_for, quarantine, quarantine_root, read_back
from aiws.routing import Route, route_study
from aiws.sending import SendDispatcher
from imaging.series import InstanceHeader, read_instance
from pacs_bridge.assembly import StudyAssembler
from pacs_bridge.spool import Spool, fsync_dir
from pacs_bridge.uids import is_valid_uid, validate_uid

LOGGER = logging.getLogger(__name__)

_RETENTION_EVERY_S = 3600.0
PURGING_DIR = "purging"  # under the spool root: a study's folder is renamed here, then deleted


class Scheduler:
    """One thread that advances every state machine that is not a worker's."""

    def __init__(self, config: Config, ledger: Ledger, spool: Spool, dispatcher: SendDispatcher,
                 routes: Sequence[Route] | Callable[[], Sequence[Route]], interval_s: float = 0.25) -> None:
        """*routes*: fixed routes, or a callable asked at each study (the live rules,
        :meth:`aiws.routestore.RouteStore.routes`: a change applies to the next study without restart)."""
        self._config = config
        self._ledger = ledger
        self._spool = spool
        self._dispatcher = dispatcher
        fixed = () if callable(routes) else tuple(routes)
        self._routes: Callable[[], Sequence[Route]] = routes if callable(routes) else (lambda: fixed)
        self._interval = interval_s
        self._assembler = StudyAssembler(ledger, config.study.quiet_seconds, self.complete_study)
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_retention = 0.0
        self._last_sweep = 0.0
        self._failing: dict[str, str] = {}  # step → exception type of its current run of failures

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="aiws-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._halt.wait(self._interval):
            self.tick(time.time())

    def tick(self, now: float) -> None:
        """One round; each step's failure is logged, counted in the ledger (``/health``), and the
        others still run. A step that keeps failing the same way logs its traceback once."""
        steps: tuple[tuple[str, Callable[[float], object]], ...] = (
            ("assembly", self._assembler.poll), ("sending", self._dispatcher.poll), ("retention", self._retention),
            ("claims", self._sweep_claims))
        for name, step in steps:
            try:
                step(now)
            except Exception as exc:  # the scheduler must survive any single failure; logged and counted
                self._step_failed(name, exc, now)
            else:
                self._failing.pop(name, None)

    def _sweep_claims(self, now: float) -> None:
        """PostgreSQL ledger shared by several nodes: the jobs and sends of a node that died go back to the
        queue (a live node's claims are left alone: :mod:`aiws.ledger.pg`)."""
        if not self._ledger.shared or now - self._last_sweep < self._config.ledger.sweep_seconds:
            return
        self._last_sweep = now
        jobs = self._ledger.requeue_running_jobs(max_attempts=self._config.workers.max_job_tries)
        sends = self._ledger.requeue_sending()
        if jobs or sends:
            LOGGER.warning("claims of a node or worker that died re-queued: %d jobs, %d sends", jobs, sends)

    def _step_failed(self, name: str, exc: Exception, now: float) -> None:
        kind = type(exc).__name__
        if self._failing.get(name) != kind:
            LOGGER.exception("scheduler step %s failed (%s)", name, kind)
        else:
            LOGGER.debug("scheduler step %s failed again (%s)", name, kind)
        self._failing[name] = kind
        try:
            self._ledger.note_scheduler_error(name, kind, now)
        except sqlite3.Error as err:
            LOGGER.error("scheduler step %s: failure not recorded in the ledger (%s)", name, type(err).__name__)

    def complete_study(self, study_uid: str, last_seen: float) -> bool:
        """Complete one quiet study on its own: a study that cannot be completed goes to ``error``
        (its unreadable instances to the quarantine) and the others go on."""
        try:
            return self._complete(study_uid, last_seen)
        except Exception as exc:  # one study must not stop the rest; the error names the type, no value
            LOGGER.error("study %s: completion failed (%s); study set to error", study_uid, type(exc).__name__,
                         exc_info=LOGGER.isEnabledFor(logging.DEBUG))
            return self._ledger.fail_study(study_uid, last_seen, f"completion failed: {type(exc).__name__}",
                                           time.time())

    def _complete(self, study_uid: str, last_seen: float) -> bool:
        """Read every instance back, quarantine what cannot be read, route the study and record its
        completion and jobs atomically."""
        instances, bad = self._read_back(study_uid)
        if bad:  # the study goes to 'error' now, or when it is quiet again if an instance just arrived
            in_error = quarantine(self._ledger, study_uid, bad, last_seen, time.time())
            LOGGER.error("study %s: %d instance(s) cannot be read back, quarantined%s", study_uid, len(bad),
                         "; study set to error" if in_error else "")
            return in_error
        headers: dict[str, Dataset] = {}
        for series_uid, inst in instances:
            headers.setdefault(series_uid, inst.dataset)
        jobs = route_study(self._routes(), headers)
        if jobs:  # handed on to the jobs' workers: the study is not read again (kept before the jobs exist)
            save_headers(self._config.storage.data_dir, study_uid, [inst for _, inst in instances])
        done = self._ledger.complete_study(study_uid, last_seen, jobs, time.time())
        study = self._ledger.get_study(study_uid) if done else None
        if study is not None and study.state == "error":
            LOGGER.error("study %s: %s", study_uid, study.error)
        elif done:
            if jobs:
                LOGGER.info("study %s: %d series routed to %s", study_uid, len(headers),
                            ", ".join(f"{j.pipeline}({len(j.series_uids)} series)" for j in jobs))
            else:
                LOGGER.info("study %s: %d series, no route matched (kept, listed as unrouted)",
                            study_uid, len(headers))
        return done

    def _read_back(self, study_uid: str) -> tuple[list[tuple[str, InstanceHeader]], list[QuarantineItem]]:
        """Every instance's series and header (read once: routed here, then handed on to the jobs), and the
        instances that cannot be read back."""
        headers: list[tuple[str, InstanceHeader]] = []
        bad: list[QuarantineItem] = []
        root = quarantine_root(self._spool.root)
        for inst in self._ledger.instances_of_study(study_uid):
            header, reason = read_back(Path(inst.path), read_instance)
            if header is None:
                bad.append(item_for(root, study_uid, inst.series_uid, inst.sop_instance_uid, Path(inst.path), reason))
            else:
                headers.append((inst.series_uid, header))
        return headers, bad

    def _retention(self, now: float) -> None:
        if now - self._last_retention < _RETENTION_EVERY_S:
            return
        self._last_retention = now
        purge_expired(self._config, self._ledger, self._spool, now)


def purge_expired(config: Config, ledger: Ledger, spool: Spool, now: float) -> list[str]:
    """Delete received data and results older than the retention period, never before
    their jobs and sends are finished. Returns the purged study UIDs.

    Each study is purged by :meth:`aiws.ledger.Ledger.purge_study`: one transaction re-checks it and
    renames its spool folder aside; the folder is deleted after the commit. An instance acknowledged
    meanwhile either re-opened the study first (not purged) or was written into a fresh folder.
    """
    before = now - config.storage.retention_days * 86400.0
    aside_root = spool.root / PURGING_DIR
    settle_purges(ledger, spool)
    purged = []
    outbox = config.storage.data_dir / "outbox"
    for uid in ledger.purgeable_studies(before):
        aside = aside_root / validate_uid(uid, "StudyInstanceUID")
        if not ledger.purge_study(uid, before, now, _mover(spool.instances_dir / uid, aside)):
            continue
        if aside.exists():
            shutil.rmtree(aside)
        for job_id in ledger.job_ids_of_study(uid):
            shutil.rmtree(outbox / str(job_id), ignore_errors=True)
        drop_headers(config.storage.data_dir, uid)
        purged.append(uid)
    if purged:
        LOGGER.info("retention: purged %d studies older than %.0f days", len(purged), config.storage.retention_days)
    return purged


def _mover(folder: Path, aside: Path) -> Callable[[], None]:
    def move_aside() -> None:
        if folder.exists():
            aside.parent.mkdir(exist_ok=True)
            os.rename(folder, aside)
            fsync_dir(folder.parent)
    return move_aside


def settle_purges(ledger: Ledger, spool: Spool) -> None:
    """Folders a crash left aside: deleted when their study's purge committed, put back otherwise."""
    aside_root = spool.root / PURGING_DIR
    if not aside_root.is_dir():
        return
    for aside in aside_root.iterdir():
        if not is_valid_uid(aside.name):
            continue
        study = ledger.get_study(aside.name)
        if study is not None and study.state != "purged":
            _restore(aside, spool.instances_dir / aside.name)
            LOGGER.warning("retention: study %s put back from an interrupted purge", aside.name)
        shutil.rmtree(aside)


def _restore(aside: Path, folder: Path) -> None:
    for f in aside.glob("*/*.dcm"):
        dest = folder / f.parent.name / f.name
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, dest)
            fsync_dir(dest.parent)
