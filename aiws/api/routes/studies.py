"""What came in and what went out: studies, jobs, sends, associations, audit.

Error text is shown through :func:`pacs_bridge.scrub.scrub_fields` (no tag values, whoever stored it)."""
from __future__ import annotations

import dataclasses
import time
from collections import Counter
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from aiws.api.auth import Principal, Role, requires
from aiws.api.deps import LedgerDep
from aiws.api.fields import MAX_ROW_ID, RowId
from aiws.ledger import StudyRow
from pacs_bridge.scrub import scrub_fields

router = APIRouter(prefix="/api", tags=["studies"])

#: Reads of studies, jobs, sends, associations: radiologists and ML engineers (and admins).
Reader = Annotated[Principal, requires(Role.RADIOLOGIST, Role.ML_ENGINEER)]

StudyState = Literal["receiving", "complete", "error", "purged"]
JobState = Literal["pending", "running", "done", "failed", "superseded"]
SendState = Literal["pending", "sending", "done", "dead", "superseded"]
#: StudyRow fields the JSON answers leave out (the API carries UIDs only).
CONSOLE_ONLY = frozenset({"accession", "modality", "description"})


@router.get("/studies")
def list_studies(ledger: LedgerDep, principal: Reader, state: StudyState | None = None, unrouted: Literal["true", "false"] | None = None,
                 limit: int = Query(100, ge=1, le=1000),
                 offset: int = Query(0, ge=0, le=MAX_ROW_ID)) -> list[dict[str, Any]]:
    """Studies, newest first; ``unrouted=true`` lists the complete studies no route matched."""
    studies = ledger.list_studies(state, limit, offset)
    if unrouted is not None:
        studies = [s for s in studies if s.unrouted == (unrouted == "true")]
    return scrub_fields([_study_json(s) for s in studies])


def _study_json(study: StudyRow) -> dict[str, Any]:
    """A study as the API answers it: UIDs and states, without the console's labels (accession, modality,
    description: patient data, shown to signed-in console users only)."""
    return {k: v for k, v in dataclasses.asdict(study).items() if k not in CONSOLE_ONLY}


@router.get("/studies/{study_uid}")
def get_study(study_uid: str, ledger: LedgerDep, principal: Reader) -> dict[str, Any]:
    study = ledger.get_study(study_uid)
    if study is None:
        raise HTTPException(404, f"study {study_uid} not found")
    instances = ledger.instances_of_study(study_uid)
    per_series = Counter(i.series_uid for i in instances)
    modality = {i.series_uid: i.modality for i in instances}
    jobs = ledger.list_jobs(study_uid=study_uid, limit=1000)
    return scrub_fields({
        **_study_json(study),
        "series": [{"series_uid": uid, "modality": modality[uid], "instances": n} for uid, n in per_series.items()],
        "jobs": [dataclasses.asdict(j) for j in jobs],
        "results": [dataclasses.asdict(r) for r in ledger.results_of_study(study_uid)],
        "sends": [dataclasses.asdict(s) for j in jobs for s in ledger.list_sends(job_id=j.id)],
    })


@router.get("/jobs")
def list_jobs(ledger: LedgerDep, principal: Reader, state: JobState | None = None, study_uid: str | None = None,
              limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
    return scrub_fields([dataclasses.asdict(j) for j in ledger.list_jobs(state, study_uid, limit)])


@router.get("/jobs/{job_id}")
def get_job(job_id: RowId, ledger: LedgerDep, principal: Reader) -> dict[str, Any]:
    job = ledger.get_job(job_id)
    if job is None:
        raise HTTPException(404, f"job {job_id} not found")
    return scrub_fields({**dataclasses.asdict(job),
                         "results": [dataclasses.asdict(r) for r in ledger.results_of_job(job_id)],
                         "sends": [dataclasses.asdict(s) for s in ledger.list_sends(job_id=job_id)]})


@router.get("/sends")
def list_sends(ledger: LedgerDep, principal: Reader, state: SendState | None = None,
               limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
    return scrub_fields([dataclasses.asdict(s) for s in ledger.list_sends(state, limit=limit)])


@router.post("/sends/{send_id}/retry")
def retry_send(send_id: RowId, ledger: LedgerDep,
               principal: Annotated[Principal, requires(Role.RADIOLOGIST)]) -> dict[str, Any]:
    send = ledger.get_send(send_id)
    if send is None:
        raise HTTPException(404, f"send {send_id} not found")
    if not ledger.retry_send(send_id, principal.actor, time.time()):
        raise HTTPException(409, f"send {send_id} is {send.state}, only dead sends can be retried")
    return {"id": send_id, "state": "pending"}


@router.get("/associations")
def list_associations(ledger: LedgerDep, principal: Reader, limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
    return scrub_fields(ledger.list_associations(limit))


@router.get("/audit")
def list_audit(ledger: LedgerDep, principal: Annotated[Principal, requires(Role.ADMIN)], limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
    return scrub_fields(ledger.list_audit(limit))
