"""Health, metrics and the quarantine."""
from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from aiws import __version__
from aiws.api.deps import ContextDep, LedgerDep
from aiws.health import HealthReport, check

router = APIRouter(tags=["health"])


@router.get("/health")
def health(ctx: ContextDep) -> dict[str, Any]:
    """``status`` is ``ok`` or ``degraded``; ``reasons`` says why (HTTP 200 either way: the service runs)."""
    policy = ctx.network.policy()
    report = check(ctx.config, ctx.ledger)
    return {"status": report.status, "reasons": list(report.reasons), "version": __version__,
            "ae_title": policy.ae_title, "dicom_port": ctx.config.dicom.port, "counts": ctx.ledger.counts(),
            "checks": {"disk_free_bytes": report.disk_free_bytes, "disk_watermark_bytes": report.watermark_bytes,
                       "quarantined_instances": report.quarantined_files,
                       "dead_letter_destinations": list(report.dead_letter_destinations),
                       "triton_up": report.triton_up, "scheduler_errors_total": report.scheduler_errors_total,
                       "refused_instances": report.refused_instances}}


@router.get("/api/quarantine")
def quarantine(ledger: LedgerDep, limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
    """Instances taken out of their study because they could not be read back, newest first."""
    return [dataclasses.asdict(q) for q in ledger.list_quarantine(limit)]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _gauge(lines: list[str], name: str, help_text: str, value: float, kind: str = "gauge") -> None:
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value:g}"]


def _health_lines(report: HealthReport) -> list[str]:
    lines: list[str] = []
    _gauge(lines, "aiws_health_degraded", "1 when /health reports degraded", int(bool(report.reasons)))
    _gauge(lines, "aiws_disk_free_bytes", "free bytes under the data directory", report.disk_free_bytes)
    _gauge(lines, "aiws_disk_watermark_bytes", "below this free space new images are refused",
           report.watermark_bytes)
    _gauge(lines, "aiws_quarantined_instances", "instance files in the quarantine", report.quarantined_files)
    _gauge(lines, "aiws_scheduler_errors_total", "failed scheduler steps", report.scheduler_errors_total,
           "counter")
    lines += ["# HELP aiws_destination_dead_lettering 1 when the latest finished send to the destination is dead",
              "# TYPE aiws_destination_dead_lettering gauge"]
    lines += [f'aiws_destination_dead_lettering{{destination="{_label(d)}"}} 1'
              for d in report.dead_letter_destinations]
    lines += ["# HELP aiws_instances_refused_total instances the ledger refused, by kind",
              "# TYPE aiws_instances_refused_total counter"]
    lines += [f'aiws_instances_refused_total{{kind="{_label(k)}"}} {n}'
              for k, n in sorted(report.refused_instances.items())]
    if report.triton_up is not None:
        _gauge(lines, "aiws_triton_up", "1 when Triton answers its liveness probe", int(report.triton_up))
    return lines


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(ctx: ContextDep) -> str:
    """Prometheus text format: rows by state, and the health checks."""
    lines = []
    for table, states in ctx.ledger.counts().items():
        name = f"aiws_{table}"
        if table == "studies":
            states = {"error": 0, **states}  # always present, so an alert on it has a series to watch
        lines.append(f"# TYPE {name} gauge")
        for state, n in sorted(states.items()):
            lines.append(f'{name}{{state="{_label(state)}"}} {n}')
    lines += _health_lines(check(ctx.config, ctx.ledger))
    return "\n".join(lines) + "\n"
