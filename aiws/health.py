"""What ``/health`` and ``/metrics`` report beyond "the process answers": the service is ``degraded``
(with reasons) when the disk is under the watermark, the quarantine holds files, a destination is
dead-lettering, Triton cannot be reached (runtime ``triton``), or the scheduler failed lately."""
from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from aiws.config import Config, RuntimeConfig
from aiws.ledger import Ledger
from aiws.quarantine import held_files, quarantine_root

LOGGER = logging.getLogger(__name__)

#: A scheduler failure keeps the service degraded for this long after it happened.
SCHEDULER_ERROR_WINDOW_S = 300.0
#: How long the Triton liveness probe may take.
TRITON_PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class HealthReport:
    """The checks, each as a number, and the reasons the service is degraded (empty: ok)."""

    reasons: tuple[str, ...]
    disk_free_bytes: int
    watermark_bytes: int
    quarantined_files: int
    dead_letter_destinations: tuple[str, ...]
    triton_up: bool | None  # None: runtime is not triton
    scheduler_errors_total: int
    refused_instances: dict[str, int]

    @property
    def status(self) -> str:
        return "degraded" if self.reasons else "ok"


def triton_live(runtime: RuntimeConfig) -> bool:
    """True when the Triton server at ``runtime.triton_url`` answers its liveness probe in time."""
    try:
        if runtime.triton_protocol == "http":
            import tritonclient.http as http

            client = http.InferenceServerClient(runtime.triton_url, connection_timeout=TRITON_PROBE_TIMEOUT_S,
                                                network_timeout=TRITON_PROBE_TIMEOUT_S)
            try:
                return bool(client.is_server_live())
            finally:
                client.close()
        import tritonclient.grpc as grpc

        gclient = grpc.InferenceServerClient(runtime.triton_url)
        try:
            return bool(gclient.is_server_live(client_timeout=TRITON_PROBE_TIMEOUT_S))
        finally:
            gclient.close()
    except Exception as exc:  # refused, timed out, bad URL: all mean "not reachable"; the type is logged
        LOGGER.debug("Triton at %s not live: %s", runtime.triton_url, type(exc).__name__)
        return False


def quarantine_bytes(spool_root: Path) -> int:
    """Bytes of the files held in the quarantine (instances and their reason notes)."""
    root = quarantine_root(spool_root)
    total = 0
    for path in root.rglob("*") if root.is_dir() else ():
        try:
            total += path.stat().st_size if path.is_file() else 0
        except FileNotFoundError:  # emptied by the operator while we count
            continue
    return total


def check(config: Config, ledger: Ledger, now: float | None = None) -> HealthReport:
    """Run every check once (the Triton probe only with runtime ``triton``)."""
    now = time.time() if now is None else now
    reasons = []
    data_dir = config.storage.data_dir
    free = shutil.disk_usage(data_dir).free
    watermark = config.storage.min_free_mb * 2**20
    if free < watermark:
        reasons.append(f"disk: {free // 2**20} MiB free under {data_dir}, below the {config.storage.min_free_mb} "
                       "MiB watermark (new images are refused)")
    held = held_files(data_dir / "spool")
    if held:
        reasons.append(f"quarantine: {held} instance file{'' if held == 1 else 's'} could not be read back "
                       "(see /api/quarantine)")
    try:
        dead = tuple(ledger.dead_letter_destinations())
        errors, last_at, last = ledger.scheduler_errors()
        refused = ledger.refusal_counts()
    except sqlite3.Error as exc:  # a damaged or locked ledger is a reason, not a failed health check
        reasons.append(f"ledger: cannot be read ({type(exc).__name__})")
        dead, errors, last_at, last, refused = (), 0, 0.0, "", {}
    if dead:
        reasons.append(f"destinations dead-lettering: {', '.join(dead)}")
    triton_up = None
    if config.runtime.backend == "triton":
        triton_up = triton_live(config.runtime)
        if not triton_up:
            reasons.append(f"triton: {config.runtime.triton_url} ({config.runtime.triton_protocol}) unreachable")
    if errors and now - last_at < SCHEDULER_ERROR_WINDOW_S:
        reasons.append(f"scheduler: step failed {now - last_at:.0f} s ago ({last}); {errors} failures in all")
    return HealthReport(tuple(reasons), free, watermark, held, dead, triton_up, errors, refused)
