"""Operator actions over JSON: retry a failed job, reprocess a study, send a job's results again.

Admin and radiologist may do them. Each is one ledger transaction (:mod:`aiws.ledger.actions`) that is audited
with the principal's name; a state that does not allow it answers 409 with the reason, an unknown job, study or
destination 404. The console's buttons (:mod:`aiws.api.routes.console_ops`) call the same functions.
"""
from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from aiws.api.auth import Principal, Role, requires
from aiws.api.deps import ContextDep
from aiws.api.fields import RowId
from aiws.ledger import Ledger
from aiws.netconfig import NetworkStore

router = APIRouter(prefix="/api", tags=["actions"])

#: Who may retry, reprocess and resend (admin passes every check).
OPERATOR = requires(Role.RADIOLOGIST)


class ResendIn(BaseModel):
    """Where to send a job's results again: one configured destination, or (left out) each of the job's own."""

    model_config = ConfigDict(extra="forbid")
    destination: str | None = Field(default=None, min_length=1, max_length=64)


def destination_pdf_flags(network: NetworkStore) -> dict[str, bool]:
    """Each configured destination, with whether it takes the PDF report."""
    return {name: bool(network.destination_options(name).get("pdf_report", False))
            for name in network.destinations()}


def retry(ledger: Ledger, job_id: int, principal: Principal) -> dict[str, Any]:
    ledger.retry_job(job_id, principal.actor, time.time())
    return {"id": job_id, "state": "pending"}


def reprocess(ledger: Ledger, study_uid: str, principal: Principal) -> dict[str, Any]:
    out = ledger.reprocess_study(study_uid, principal.actor, time.time())
    return {"study_uid": out.study_uid, "generation": out.generation, "superseded_jobs": list(out.superseded_jobs)}


def resend(ledger: Ledger, network: NetworkStore, job_id: int, destination: str | None,
           principal: Principal) -> dict[str, Any]:
    ids = ledger.resend_job(job_id, principal.actor, time.time(), destination_pdf_flags(network), destination)
    return {"job_id": job_id, "send_ids": ids}


@router.post("/jobs/{job_id}/retry")
def retry_job(job_id: RowId, ctx: ContextDep, principal: Annotated[Principal, OPERATOR]) -> dict[str, Any]:
    """A failed job back to pending (its attempts counted from zero). 409 when the job is not failed, or its
    study was re-opened, reprocessed or purged since."""
    return retry(ctx.ledger, job_id, principal)


@router.post("/studies/{study_uid}/reprocess")
def reprocess_study(study_uid: str, ctx: ContextDep, principal: Annotated[Principal, OPERATOR]) -> dict[str, Any]:
    """Supersede the study's jobs and route it again (a new generation, with the routes in force now). 409 while
    it is receiving, a job of it is running, or it was purged."""
    return reprocess(ctx.ledger, study_uid, principal)


@router.post("/jobs/{job_id}/resend")
def resend_results(job_id: RowId, ctx: ContextDep, principal: Annotated[Principal, OPERATOR],
                   body: Annotated[ResendIn | None, Body()] = None) -> dict[str, Any]:
    """New sends of a done job's results to its destinations, or to ``destination``. 409 when the job is not
    done, its results were purged, or a send of it there is already queued; 404 for an unknown destination."""
    return resend(ctx.ledger, ctx.network, job_id, body.destination if body else None, principal)
