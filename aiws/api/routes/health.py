"""Health, metrics and the quarantine."""
from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from prometheus_client import CONTENT_TYPE_LATEST

from aiws import __version__
from aiws.api.auth import Principal, Role, open_unless, requires
from aiws.api.deps import ContextDep, LedgerDep
from aiws.health import check
from aiws.metrics import exposition

router = APIRouter(tags=["health"])


@router.get("/health")
def health(ctx: ContextDep, principal: Annotated[Principal | None, open_unless("open_health")]) -> dict[str, Any]:
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
def quarantine(ledger: LedgerDep, principal: Annotated[Principal, requires(Role.RADIOLOGIST, Role.ML_ENGINEER)],
               limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
    """Instances taken out of their study because they could not be read back, newest first."""
    return [dataclasses.asdict(q) for q in ledger.list_quarantine(limit)]


@router.get("/metrics", response_class=Response)
def metrics(ctx: ContextDep, principal: Annotated[Principal | None, open_unless("open_metrics")]) -> Response:
    """Prometheus text format (prometheus_client): rows by state, received instances and bytes, associations,
    job and inference durations, queue depth, send failures, disk, quarantine and the health checks."""
    return Response(exposition(ctx.config, ctx.ledger), media_type=CONTENT_TYPE_LATEST)
