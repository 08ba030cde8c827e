"""The scheduler thread: study completion and routing, sends, retention."""
from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Sequence

from pydicom import dcmread
from pydicom.dataset import Dataset

from aiws.config import Config
from aiws.ledger import Ledger
from aiws.routing import Route, route_study
from aiws.sending import SendDispatcher
from pacs_bridge.assembly import StudyAssembler
from pacs_bridge.spool import Spool

LOGGER = logging.getLogger(__name__)

_RETENTION_EVERY_S = 3600.0


class Scheduler:
    """One thread that advances every state machine that is not a worker's."""

    def __init__(self, config: Config, ledger: Ledger, spool: Spool, dispatcher: SendDispatcher,
                 routes: Sequence[Route], interval_s: float = 0.25) -> None:
        self._config = config
        self._ledger = ledger
        self._spool = spool
        self._dispatcher = dispatcher
        self._routes = tuple(routes)
        self._interval = interval_s
        self._assembler = StudyAssembler(ledger, config.study.quiet_seconds, self.complete_study)
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_retention = 0.0

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
        """One round; each step's failure is logged and the others still run."""
        for step in (self._assembler.poll, self._dispatcher.poll, self._retention):
            try:
                step(now)
            except Exception:  # the scheduler must survive any single failure; it is logged with traceback
                LOGGER.exception("scheduler step %s failed", getattr(step, "__name__", step))

    def complete_study(self, study_uid: str, last_seen: float) -> bool:
        """Route a quiet study and record its completion and jobs atomically."""
        headers = self._series_headers(study_uid)
        jobs = route_study(self._routes, headers)
        done = self._ledger.complete_study(study_uid, last_seen, jobs, time.time())
        if done:
            if jobs:
                LOGGER.info("study %s: %d series routed to %s", study_uid, len(headers),
                            ", ".join(f"{j.pipeline}({len(j.series_uids)} series)" for j in jobs))
            else:
                LOGGER.info("study %s: %d series, no route matched (kept, listed as unrouted)",
                            study_uid, len(headers))
        return done

    def _series_headers(self, study_uid: str) -> dict[str, Dataset]:
        first: dict[str, str] = {}
        for inst in self._ledger.instances_of_study(study_uid):
            first.setdefault(inst.series_uid, inst.path)
        return {uid: dcmread(path, stop_before_pixels=True) for uid, path in first.items()}

    def _retention(self, now: float) -> None:
        if now - self._last_retention < _RETENTION_EVERY_S:
            return
        self._last_retention = now
        purge_expired(self._config, self._ledger, self._spool, now)


def purge_expired(config: Config, ledger: Ledger, spool: Spool, now: float) -> list[str]:
    """Delete received data and results older than the retention period, never before
    their jobs and sends are finished. Returns the purged study UIDs."""
    before = now - config.storage.retention_days * 86400.0
    purged = []
    outbox = config.storage.data_dir / "outbox"
    for uid in ledger.purgeable_studies(before):
        spool.remove_study(uid)
        for job_id in ledger.job_ids_of_study(uid):
            shutil.rmtree(outbox / str(job_id), ignore_errors=True)
        ledger.mark_purged(uid, now)
        purged.append(uid)
    if purged:
        LOGGER.info("retention: purged %d studies older than %.0f days", len(purged), config.storage.retention_days)
    return purged
