"""The console's operations pages: the dashboard (/console/) and a study's page (/console/studies/{uid}) with its
buttons — retry a failed job, reprocess the study, send a job's results again.

Reads: admin, radiologist, ml-engineer; the buttons: admin and radiologist. The buttons post forms (with the
session's CSRF token) to routes here that call the same ledger functions as the JSON API
(:mod:`aiws.api.routes.actions`) and redirect back with a message (post/redirect/get).

The pages show the study labels (accession, modality, description) to signed-in users only; error text is
scrubbed (:func:`pacs_bridge.scrub.scrub_text`). The dashboard's queries are portable SQL with ``?`` parameters;
a page reads at most :data:`PAGE_SIZE` studies and their jobs through ``ix_jobs_study``.
"""
from __future__ import annotations

import datetime as dt
import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from aiws.api.auth import Principal, Role, requires
from aiws.api.console import flash_redirect, render
from aiws.api.deps import ContextDep
from aiws.api.fields import RowId
from aiws.api.routes.actions import OPERATOR, reprocess, resend, retry
from aiws.errors import Conflict, NotFound
from aiws.ledger import Ledger
from aiws.ledger.stats import DURATION_BUCKETS, Histogram
from pacs_bridge.scrub import scrub_text

router = APIRouter(prefix="/console", tags=["console"])

READER = requires(Role.RADIOLOGIST, Role.ML_ENGINEER)
PAGE_SIZE = 50
STUDY_STATES = ("receiving", "complete", "error", "purged")
JOB_STATES = ("pending", "running", "done", "failed", "superseded")
SEND_STATES = ("pending", "sending", "done", "dead", "superseded")
_DAY_S = 86400.0


@dataclass(frozen=True)
class StudyFilter:
    """The dashboard's search: text over accession and description, state, modality, source AE, and the day
    received (local dates, inclusive)."""

    q: str = ""
    state: str = ""
    modality: str = ""
    source: str = ""
    date_from: str = ""
    date_to: str = ""

    def where(self) -> tuple[str, list[Any]]:
        """The WHERE clause (portable SQL) and its parameters."""
        clauses: list[str] = ["1=1"]
        params: list[Any] = []
        if self.q:
            pattern = "%" + _like_escape(self.q.lower()) + "%"
            clauses.append("(LOWER(accession) LIKE ? ESCAPE '\\' OR LOWER(description) LIKE ? ESCAPE '\\')")
            params += [pattern, pattern]
        if self.state:
            clauses.append("state=?")
            params.append(self.state)
        if self.modality:
            clauses.append("('/' || modality || '/') LIKE ? ESCAPE '\\'")
            params.append("%/" + _like_escape(self.modality) + "/%")
        if self.source:
            clauses.append("calling_ae=?")
            params.append(self.source)
        if self.date_from:
            clauses.append("last_received_at>=?")
            params.append(_day_start(self.date_from))
        if self.date_to:
            clauses.append("last_received_at<?")
            params.append(_day_start(self.date_to) + _DAY_S)
        return " AND ".join(clauses), params

    def query_string(self, page: int) -> str:
        fields = {k: v for k, v in vars(self).items() if v}
        return urlencode({**fields, "page": page})


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _day_start(day: str) -> float:
    """Local midnight of a ``YYYY-MM-DD`` date, epoch seconds."""
    return time.mktime(dt.date.fromisoformat(day).timetuple())


def _date_param(value: str | None) -> str:
    if not value:
        return ""
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return ""  # a date the browser did not send as YYYY-MM-DD: no bound, rather than an error page
    return value


def search_studies(ledger: Ledger, flt: StudyFilter, page: int) -> tuple[list[dict[str, Any]], int]:
    """One page of studies, newest first, each with its jobs counted by state; and the number matching."""
    where, params = flt.where()
    total = int(ledger.query(f"SELECT COUNT(*) FROM studies WHERE {where}", tuple(params))[0][0])
    rows = ledger.query(
        "SELECT study_uid, state, accession, modality, description, calling_ae, first_received_at,"
        f" last_received_at, n_instances, error FROM studies WHERE {where}"
        " ORDER BY last_received_at DESC, study_uid LIMIT ? OFFSET ?",
        (*params, PAGE_SIZE, (page - 1) * PAGE_SIZE))
    studies = [dict(r) for r in rows]
    jobs: dict[str, Counter[str]] = defaultdict(Counter)
    if studies:
        marks = ",".join("?" * len(studies))
        for uid, state, n in ledger.query(
                f"SELECT study_uid, state, COUNT(*) FROM jobs WHERE study_uid IN ({marks}) GROUP BY study_uid, state",
                tuple(s["study_uid"] for s in studies)):
            jobs[uid][state] = int(n)
    for s in studies:
        s["jobs"] = [(state, jobs[s["study_uid"]][state]) for state in JOB_STATES if jobs[s["study_uid"]][state]]
        s["error"] = scrub_text(s["error"], max_chars=120)
    return studies, total


def counts_by_state(ledger: Ledger, table: str, states: tuple[str, ...]) -> list[tuple[str, int]]:
    found = {r[0]: int(r[1]) for r in ledger.query(f"SELECT state, COUNT(*) FROM {table} GROUP BY state")}
    return [(state, found.get(state, 0)) for state in states]


def quantile(hist: Histogram, q: float) -> float | None:
    """The *q* quantile of a bucketed histogram, interpolated linearly inside its bucket (as Prometheus'
    ``histogram_quantile``); the last finite bound when it falls in the +Inf bucket; None when empty."""
    if hist.count == 0:
        return None
    rank = q * hist.count
    lower, below = 0.0, 0
    for bound, cumulative in zip(DURATION_BUCKETS, hist.cumulative, strict=True):
        if cumulative >= rank:
            if math.isinf(bound):
                return lower
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return lower


def stage_durations(ledger: Ledger) -> list[dict[str, Any]]:
    """p50 and p95 (seconds) per pipeline and stage, from the duration histograms (aiws.ledger.stats)."""
    return [{"pipeline": h.labels[0], "stage": h.labels[1], "count": h.count,
             "p50": quantile(h, 0.5), "p95": quantile(h, 0.95)} for h in ledger.histograms("job_duration")]


def _options(ledger: Ledger) -> tuple[list[str], list[str]]:
    """The modalities and source AE titles the studies have (for the filter lists)."""
    modalities: set[str] = set()
    for (label,) in ledger.query("SELECT DISTINCT modality FROM studies"):
        modalities.update(m for m in str(label).split("/") if m)
    sources = [str(r[0]) for r in ledger.query("SELECT DISTINCT calling_ae FROM studies ORDER BY calling_ae") if r[0]]
    return sorted(modalities), sources


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, ctx: ContextDep, principal: Annotated[Principal, READER],
              q: Annotated[str, Query(max_length=64)] = "",
              state: Annotated[str, Query(pattern="^(|receiving|complete|error|purged)$")] = "",
              modality: Annotated[str, Query(max_length=16)] = "", source: Annotated[str, Query(max_length=16)] = "",
              date_from: Annotated[str, Query(alias="from", max_length=10)] = "",
              date_to: Annotated[str, Query(alias="to", max_length=10)] = "",
              page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> HTMLResponse:
    """Studies (searchable, filtered, a page at a time), jobs by state with durations per stage, sends by state
    and the latest dead letters."""
    ledger = ctx.ledger
    flt = StudyFilter(q.strip(), state, modality.strip(), source.strip(), _date_param(date_from), _date_param(date_to))
    studies, total = search_studies(ledger, flt, page)
    modalities, sources = _options(ledger)
    dead = [{"id": s.id, "job_id": s.job_id, "destination": s.destination, "attempts": s.attempts,
             "updated_at": s.updated_at, "error": scrub_text(s.last_error, max_chars=160)}
            for s in ledger.list_sends("dead", limit=20)]
    pages = max(1, math.ceil(total / PAGE_SIZE))
    return render(request, "console/dashboard.html", principal, studies=studies, total=total, page=page, pages=pages,
                  filter=flt, prev_url=f"/console/?{flt.query_string(page - 1)}" if page > 1 else "",
                  next_url=f"/console/?{flt.query_string(page + 1)}" if page < pages else "",
                  study_states=STUDY_STATES, modalities=modalities, sources=sources,
                  job_counts=counts_by_state(ledger, "jobs", JOB_STATES), durations=stage_durations(ledger),
                  send_counts=counts_by_state(ledger, "sends", SEND_STATES), dead=dead)


def _durations(job: Any) -> list[tuple[str, float]]:
    timings = job.summary.get("timings_s") or {}
    out = [(str(k), float(v)) for k, v in sorted(timings.items()) if isinstance(v, (int, float))]
    if job.started_at is not None and job.finished_at is not None and job.state in ("done", "failed"):
        out.append(("job", job.finished_at - job.started_at))
    return out


@router.get("/studies/{study_uid}", response_class=HTMLResponse)
def study_page(request: Request, study_uid: str, ctx: ContextDep,
               principal: Annotated[Principal, READER]) -> HTMLResponse:
    """A study: its series, the routes it matched and their jobs, the results and where they were sent, its
    quarantined instances and errors, and the buttons."""
    ledger = ctx.ledger
    study = ledger.get_study(study_uid)
    if study is None:
        return render(request, "console/study.html", principal, status_code=404, study=None, study_uid=study_uid)
    series = [dict(r) for r in ledger.query(
        "SELECT series_uid, modality, COUNT(*) AS n FROM instances WHERE study_uid=? GROUP BY series_uid, modality"
        " ORDER BY series_uid", (study_uid,))]
    jobs = ledger.list_jobs(study_uid=study_uid, limit=1000)
    results = ledger.results_of_study(study_uid)
    sends = {j.id: ledger.list_sends(job_id=j.id, limit=1000) for j in jobs}
    job_rows = [{"job": j, "error": scrub_text(j.error, max_chars=300), "durations": _durations(j),
                 "results": [r for r in results if r.job_id == j.id],
                 "sends": [{"send": s, "error": scrub_text(s.last_error, max_chars=200)} for s in sends[j.id]]}
                for j in jobs]
    quarantine = [{"row": q, "reason": scrub_text(q.reason, max_chars=200)} for q in ledger.quarantine_of_study(study_uid)]
    return render(request, "console/study.html", principal, study=study, study_uid=study_uid, series=series,
                  jobs=job_rows, quarantine=quarantine, error=scrub_text(study.error, max_chars=300),
                  can_act=principal.has(Role.RADIOLOGIST), destinations=sorted(ctx.network.destinations()))


def _back(study_uid: str) -> str:
    return f"/console/studies/{quote(study_uid, safe='')}"


def _study_of_job(ledger: Ledger, job_id: int) -> str | None:
    job = ledger.get_job(job_id)
    return job.study_uid if job is not None else None


@router.post("/jobs/{job_id}/retry")
def retry_form(job_id: RowId, ctx: ContextDep, principal: Annotated[Principal, OPERATOR]) -> RedirectResponse:
    study_uid = _study_of_job(ctx.ledger, job_id)
    if study_uid is None:
        return flash_redirect("/console/", f"job {job_id} not found")
    try:
        retry(ctx.ledger, job_id, principal)
    except (Conflict, NotFound) as exc:
        return flash_redirect(_back(study_uid), f"Not retried: {exc}")
    return flash_redirect(_back(study_uid), f"Job {job_id} queued again (pending).")


@router.post("/studies/{study_uid}/reprocess")
def reprocess_form(study_uid: str, ctx: ContextDep, principal: Annotated[Principal, OPERATOR]) -> RedirectResponse:
    try:
        out = reprocess(ctx.ledger, study_uid, principal)
    except NotFound as exc:
        return flash_redirect("/console/", str(exc))
    except Conflict as exc:
        return flash_redirect(_back(study_uid), f"Not reprocessed: {exc}")
    superseded = out["superseded_jobs"]
    return flash_redirect(_back(study_uid), f"Study sent back to routing as generation {out['generation']}; "
                          f"{len(superseded)} job(s) superseded.")


@router.post("/jobs/{job_id}/resend")
def resend_form(job_id: RowId, ctx: ContextDep, principal: Annotated[Principal, OPERATOR],
                destination: Annotated[str, Form(max_length=64)] = "") -> RedirectResponse:
    study_uid = _study_of_job(ctx.ledger, job_id)
    if study_uid is None:
        return flash_redirect("/console/", f"job {job_id} not found")
    try:
        out = resend(ctx.ledger, ctx.network, job_id, destination or None, principal)
    except (Conflict, NotFound) as exc:
        return flash_redirect(_back(study_uid), f"Not sent: {exc}")
    return flash_redirect(_back(study_uid), f"Job {job_id}: {len(out['send_ids'])} send(s) queued.")

