"""Worker processes: pipelines run here, never in the listener's process.

The ledger is the only shared state: a worker takes a job with one atomic
update; the supervisor re-queues the jobs of a worker that died and starts a
new one.

Stopping. A supervisor (systemd's default ``KillMode=control-group``, ``timeout``,
a container runtime, Ctrl-C in a terminal) signals every process of the group at
once, so the workers get SIGTERM/SIGINT too. They ignore both: the parent decides
when they stop. Each worker owns the read end of a pipe whose write end only the
parent holds; the parent asks a worker to stop by closing it (nothing a process
killed at any moment can leave locked, unlike a ``multiprocessing.Event``), and a
worker whose parent died (even by SIGKILL) sees the same end of file and leaves.
A worker still in a job when the grace period is over is killed and its job goes
back to the queue, as after a crash; it resumes at the next start.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess

from aiws.config import Config
from aiws.jobs import JobRunner
from aiws.ledger import Ledger
from aiws.logsetup import setup_logging
from aiws.netconfig import NetworkStore
from imaging.backend import ArrayBackend

LOGGER = logging.getLogger(__name__)

#: Signals a supervisor sends to the whole process group; only the service's main process acts on them.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
IDLE_POLL_SECONDS = 0.3


def _told_to_stop(control: Connection, timeout: float) -> bool:
    """True once the parent closed its end of *control* (a stop, or the parent is gone)."""
    if not control.poll(timeout):
        return False
    try:
        control.recv_bytes()
    except EOFError:
        return True
    return False


def worker_main(config: Config, name: str, control: Connection, log_level: int) -> None:
    """Entry point of a worker process: claim, run, repeat until the parent closes *control*.

    SIGINT and SIGTERM arrive blocked (see :meth:`WorkerPool._spawn`); they are ignored here before
    being unblocked, so a signal sent to the group while this process started is discarded too.
    """
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    setup_logging(log_level, f"%(asctime)s %(levelname)s [{name}] %(name)s: %(message)s")
    ledger = Ledger.of_config(config)
    runner = JobRunner(config, ledger, NetworkStore(ledger), ArrayBackend.select(config.imaging.array_backend))
    LOGGER.info("worker %s (pid %d) ready", name, os.getpid())
    while not _told_to_stop(control, 0.0):
        job = ledger.claim_job(name, time.time())
        if job is None:
            if _told_to_stop(control, IDLE_POLL_SECONDS):
                break
            continue
        LOGGER.info("job %d: %s on study %s (attempt %d)", job.id, job.pipeline, job.study_uid, job.attempts)
        runner.run(job)
    ledger.close()
    LOGGER.info("worker %s stopped", name)


@dataclass
class _Worker:
    process: SpawnProcess
    control: Connection  # the parent's (write) end: closing it tells the worker to stop


class WorkerPool:
    """Starts ``count`` worker processes and replaces any that die."""

    def __init__(self, config: Config, on_worker_died: Callable[[str], None]) -> None:
        self._config = config
        self._on_died = on_worker_died
        self._ctx = mp.get_context("spawn")
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()
        self._supervisor: threading.Thread | None = None
        self._halt = threading.Event()
        self._serial = 0

    def _spawn(self) -> None:
        """Start one worker with SIGINT/SIGTERM blocked in the spawning thread, so the child inherits them
        blocked and no signal can interrupt its start-up with a traceback (it ignores them, then unblocks)."""
        self._serial += 1
        name = f"worker-{os.getpid()}-{self._serial}"
        reader, writer = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(
            target=worker_main,
            args=(self._config, name, reader, logging.getLogger().getEffectiveLevel()),
            name=name,
            daemon=True,
        )
        # Starting the resource tracker unblocks both signals in this thread; start it first (a no-op once running).
        resource_tracker.ensure_running()
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        reader.close()
        self._workers[name] = _Worker(proc, writer)

    def start(self) -> None:
        with self._lock:
            for _ in range(self._config.workers.count):
                self._spawn()
        self._supervisor = threading.Thread(target=self._supervise, name="aiws-workers", daemon=True)
        self._supervisor.start()

    def _supervise(self) -> None:
        while not self._halt.wait(1.0):
            with self._lock:
                if self._halt.is_set():
                    return
                for name, worker in list(self._workers.items()):
                    if worker.process.is_alive():
                        continue
                    LOGGER.error("worker %s exited with code %s; re-queueing its jobs", name,
                                 worker.process.exitcode)
                    del self._workers[name]
                    worker.control.close()
                    self._on_died(name)
                    self._spawn()

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers.values() if w.process.pid is not None]

    def stop(self, grace_seconds: float) -> list[str]:
        """Ask every worker to stop; kill those still in a job after *grace_seconds*.

        Returns:
            The names of the workers that did not leave on their own (killed, or dead already), whose
            running jobs the caller puts back in the queue.
        """
        self._halt.set()
        with self._lock:
            workers, self._workers = dict(self._workers), {}
        for worker in workers.values():
            worker.control.close()
        deadline = time.monotonic() + grace_seconds
        unfinished = []
        for name, worker in workers.items():
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                LOGGER.warning("worker %s still in a job after %.1f s; stopping it, its job resumes at the next start",
                               name, grace_seconds)
                worker.process.kill()
                worker.process.join(5)
            if worker.process.exitcode != 0:
                unfinished.append(name)
        if self._supervisor is not None:
            self._supervisor.join(5)
        return unfinished
