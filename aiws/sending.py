"""Sending results to destinations: retries with exponential backoff, then dead-letter."""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiws.config import SenderConfig
from aiws.ledger import Ledger, SendRow
from aiws.netconfig import NetworkStore
from pacs_bridge.errors import SendError
from pacs_bridge.scrub import describe_error, patient_values
from pacs_bridge.sender import send_files
from pacs_bridge.settings import SenderSettings

LOGGER = logging.getLogger(__name__)


def backoff_seconds(attempts: int, policy: SenderConfig) -> float:
    """Delay before try number ``attempts + 1``: base × 2^(attempts − 1), capped."""
    return float(min(policy.backoff_seconds * 2 ** max(attempts - 1, 0), policy.backoff_max_seconds))


class SendDispatcher:
    """Claims due sends from the ledger and runs them on a small thread pool."""

    def __init__(self, ledger: Ledger, network: NetworkStore, policy: SenderConfig,
                 settings: SenderSettings, concurrency: int = 4) -> None:
        self._ledger = ledger
        self._network = network
        self._policy = policy
        self._settings = settings
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="aiws-send")
        self._slots = threading.Semaphore(concurrency)

    def poll(self, now: float) -> int:
        """Start every due send there is a free slot for; return how many were started."""
        started = 0
        while self._slots.acquire(blocking=False):
            try:
                send = self._ledger.claim_send(now)
            except BaseException:  # the slot goes back, or four ledger errors would stop sending for good
                self._slots.release()
                raise
            if send is None:
                self._slots.release()
                break
            self._pool.submit(self._run, send)
            started += 1
        return started

    def _run(self, send: SendRow) -> None:
        try:
            self._attempt(send)
        finally:
            self._slots.release()

    def _attempt(self, send: SendRow) -> None:
        """One try; a failure is stored and logged as :func:`pacs_bridge.scrub.describe_error`."""
        paths: list[Path] = []
        try:
            dest = self._network.destinations().get(send.destination)
            if dest is None:
                raise SendError(f"destination {send.destination!r} is not configured")
            wants_pdf = bool(self._network.destination_options(send.destination).get("pdf_report", False))
            paths = [Path(r.path) for r in self._ledger.results_of_job(send.job_id)
                     if r.path and (r.kind != "pdf" or wants_pdf)]
            if paths:
                settings = dataclasses.replace(self._settings, ae_title=self._network.policy().ae_title)
                send_files(dest, paths, settings)
        except Exception as exc:
            error = describe_error(exc, patient_values(paths[:1]))
            now = time.time()
            if send.attempts >= self._policy.max_tries:
                LOGGER.error("send %d to %s dead-lettered after %d tries: %s",
                             send.id, send.destination, send.attempts, error)
                self._ledger.send_failed(send.id, error, None, now)
            else:
                delay = backoff_seconds(send.attempts, self._policy)
                LOGGER.warning("send %d to %s failed (try %d/%d), retry in %.0f s: %s",
                               send.id, send.destination, send.attempts, self._policy.max_tries, delay, error)
                self._ledger.send_failed(send.id, error, now + delay, now)
            return
        self._ledger.send_done(send.id, time.time())
        LOGGER.info("send %d: job %d results delivered to %s", send.id, send.job_id, send.destination)

    def stop(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
