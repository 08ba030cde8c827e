"""Worker processes: pipelines run here, never in the listener's process.

The ledger is the only shared state: a worker takes a job with one atomic
update; the supervisor re-queues the jobs of a worker that died and starts a
new one.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event as MpEvent

from aiws.config import Config
from aiws.jobs import JobRunner
from aiws.ledger import Ledger
from aiws.logsetup import setup_logging
from aiws.netconfig import NetworkStore
from imaging.backend import ArrayBackend

LOGGER = logging.getLogger(__name__)


def worker_main(config: Config, name: str, stop: MpEvent, log_level: int) -> None:
    """Entry point of a worker process: claim, run, repeat until *stop* is set."""
    setup_logging(log_level, f"%(asctime)s %(levelname)s [{name}] %(name)s: %(message)s")
    ledger = Ledger(config.storage.data_dir / "aiws.db")
    runner = JobRunner(config, ledger, NetworkStore(ledger), ArrayBackend.select(config.imaging.array_backend))
    LOGGER.info("worker %s (pid %d) ready", name, os.getpid())
    while not stop.is_set():
        job = ledger.claim_job(name, time.time())
        if job is None:
            stop.wait(0.3)
            continue
        LOGGER.info("job %d: %s on study %s (attempt %d)", job.id, job.pipeline, job.study_uid, job.attempts)
        runner.run(job)
    ledger.close()


class WorkerPool:
    """Starts ``count`` worker processes and replaces any that die."""

    def __init__(self, config: Config, on_worker_died: Callable[[str], None]) -> None:
        self._config = config
        self._on_died = on_worker_died
        self._ctx = mp.get_context("spawn")
        self._stop = self._ctx.Event()
        self._procs: dict[str, SpawnProcess] = {}
        self._supervisor: threading.Thread | None = None
        self._halt = threading.Event()
        self._serial = 0

    def _spawn(self) -> None:
        self._serial += 1
        name = f"worker-{os.getpid()}-{self._serial}"
        proc = self._ctx.Process(
            target=worker_main,
            args=(self._config, name, self._stop, logging.getLogger().getEffectiveLevel()),
            name=name,
            daemon=True,
        )
        proc.start()
        self._procs[name] = proc

    def start(self) -> None:
        for _ in range(self._config.workers.count):
            self._spawn()
        self._supervisor = threading.Thread(target=self._supervise, name="aiws-workers", daemon=True)
        self._supervisor.start()

    def _supervise(self) -> None:
        while not self._halt.wait(1.0):
            for name, proc in list(self._procs.items()):
                if proc.is_alive():
                    continue
                LOGGER.error("worker %s exited with code %s; re-queueing its jobs", name, proc.exitcode)
                del self._procs[name]
                self._on_died(name)
                if not self._halt.is_set():
                    self._spawn()

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs.values() if p.pid is not None]

    def stop(self, timeout: float = 30.0) -> None:
        self._halt.set()
        self._stop.set()
        deadline = time.monotonic() + timeout
        for proc in self._procs.values():
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                LOGGER.warning("worker %s did not stop in time; terminating", proc.name)
                proc.terminate()
                proc.join(5)
        self._procs.clear()
