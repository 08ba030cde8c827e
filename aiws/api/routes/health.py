"""Health and metrics."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from aiws import __version__
from aiws.api.deps import ContextDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health(ctx: ContextDep) -> dict[str, Any]:
    policy = ctx.network.policy()
    return {"status": "ok", "version": __version__, "ae_title": policy.ae_title,
            "dicom_port": ctx.config.dicom.port, "counts": ctx.ledger.counts()}


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(ctx: ContextDep) -> str:
    """Prometheus text format: rows by state."""
    lines = []
    for table, states in ctx.ledger.counts().items():
        name = f"aiws_{table}"
        lines.append(f"# TYPE {name} gauge")
        for state, n in sorted(states.items()):
            lines.append(f'{name}{{state="{state}"}} {n}')
    return "\n".join(lines) + "\n"
