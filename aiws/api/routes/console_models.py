"""Console pages: model versions per pipeline (cards, figures, promote and roll back) and the audit trail.

Promote and roll back go through a confirmation page (GET) whose form posts with the session's CSRF
token; the change itself is :mod:`aiws.model_versions` (the same path as the API and the CLI).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from markdown_it import MarkdownIt
from starlette.concurrency import run_in_threadpool

from aiws import model_versions
from aiws.api.auth import Principal, Role, requires
from aiws.api.console import flash_redirect, render
from aiws.api.deps import ContextDep
from aiws.errors import AiwsError
from aiws.ledger import Ledger

router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False)

ReadModels = Annotated[Principal, requires(Role.RADIOLOGIST, Role.ML_ENGINEER)]
ChangeModels = Annotated[Principal, requires(Role.ML_ENGINEER)]
ReadAudit = Annotated[Principal, requires(Role.ADMIN)]
ModelName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]
FigureName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,128}\.png$")]
PAGE_ROWS = 50
DETAIL_CHARS = 400


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    """CommonMark with tables; raw HTML in a card is shown as text, never passed through."""
    return MarkdownIt("commonmark", {"html": False}).enable("table")


# -- models -----------------------------------------------------------------------------------------
@router.get("/models", response_class=HTMLResponse)
async def models_page(request: Request, ctx: ContextDep, principal: ReadModels) -> HTMLResponse:
    groups = await run_in_threadpool(model_versions.overview, ctx.config, ctx.ledger)
    return render(request, "console/models.html", principal, groups=groups,
                  may_change=principal.has(Role.ML_ENGINEER), backend=ctx.config.runtime.backend)


@router.get("/models/{name}/{version:int}", response_class=HTMLResponse)
async def card_page(request: Request, ctx: ContextDep, principal: ReadModels, name: ModelName,
                    version: Version) -> HTMLResponse:
    markdown = await run_in_threadpool(model_versions.card_markdown, ctx.config, name, version)
    info = await run_in_threadpool(model_versions.describe_model, model_versions.repository(ctx.config), ctx.ledger,
                                   name)
    this = next((v for v in info.versions if v.version == version), None)
    return render(request, "console/models.html", principal, groups=None, model=info, card_version=this,
                  card_html=_markdown().render(markdown),
                  figures=model_versions.card_figures(ctx.config, name, version),
                  may_change=principal.has(Role.ML_ENGINEER), backend=ctx.config.runtime.backend)


@router.get("/models/{name}/{version:int}/figures/{figure}")
def figure(ctx: ContextDep, principal: ReadModels, name: ModelName, version: Version,
           figure: FigureName) -> FileResponse:
    return FileResponse(model_versions.figure_path(ctx.config, name, version, figure), media_type="image/png")


@router.get("/models/{name}/promote", response_class=HTMLResponse)
async def confirm_promote(request: Request, ctx: ContextDep, principal: ChangeModels, name: ModelName,
                          version: Annotated[int, Query(ge=1, le=2**31 - 1)]) -> HTMLResponse:
    info = await run_in_threadpool(model_versions.describe_model, model_versions.repository(ctx.config), ctx.ledger,
                                   name)
    return render(request, "console/models.html", principal, groups=None, model=info, card_version=None,
                  confirm={"kind": "promote", "version": version}, backend=ctx.config.runtime.backend)


@router.get("/models/{name}/rollback", response_class=HTMLResponse)
async def confirm_rollback(request: Request, ctx: ContextDep, principal: ChangeModels,
                           name: ModelName) -> HTMLResponse:
    info = await run_in_threadpool(model_versions.describe_model, model_versions.repository(ctx.config), ctx.ledger,
                                   name)
    return render(request, "console/models.html", principal, groups=None, model=info, card_version=None,
                  confirm={"kind": "rollback", "version": info.rollback_to}, backend=ctx.config.runtime.backend)


@router.post("/models/{name}/promote")
async def do_promote(ctx: ContextDep, principal: ChangeModels, name: ModelName,
                     version: Annotated[int, Form(ge=1, le=2**31 - 1)]) -> RedirectResponse:
    try:
        outcome = await run_in_threadpool(model_versions.promote, ctx.config, ctx.ledger, principal.actor, name,
                                          version)
    except AiwsError as exc:
        return flash_redirect("/console/models", f"{name}: version {version} not promoted: {exc}")
    return flash_redirect("/console/models", _done(outcome))


@router.post("/models/{name}/rollback")
async def do_rollback(ctx: ContextDep, principal: ChangeModels, name: ModelName) -> RedirectResponse:
    try:
        outcome = await run_in_threadpool(model_versions.rollback, ctx.config, ctx.ledger, principal.actor, name)
    except AiwsError as exc:
        return flash_redirect("/console/models", f"{name}: not rolled back: {exc}")
    return flash_redirect("/console/models", _done(outcome))


def _done(outcome: model_versions.PromoteOutcome) -> str:
    c = outcome.change
    verb = "promoted" if c.kind == "promote" else "rolled back"
    text = f"{c.model}: {verb}, active version {c.old if c.old is not None else 'none'} -> {c.new}"
    return f"{text} (Triton: {outcome.triton})" if outcome.triton else text


# -- audit ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditFilter:
    action: str = ""
    actor: str = ""
    since: float | None = None  # seconds since the epoch, inclusive
    until: float | None = None  # exclusive

    def where(self) -> tuple[str, tuple[Any, ...]]:
        clauses: list[str] = ["1=1"]
        params: list[Any] = []
        for column, value in (("action", self.action), ("actor", self.actor)):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.since is not None:
            clauses.append("at >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("at < ?")
            params.append(self.until)
        return " AND ".join(clauses), tuple(params)


def parse_local_time(text: str, name: str) -> float | None:
    """``YYYY-MM-DDTHH:MM`` (an HTML datetime-local field, local time) as seconds since the epoch; "" -> None.

    Raises:
        ValueError: naming the field.
    """
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(f"{name}: {text[:40]!r} is not a date and time (YYYY-MM-DDTHH:MM)") from None


def search_audit(ledger: Ledger, where: AuditFilter, page: int, rows: int = PAGE_ROWS) -> tuple[list[dict[str, Any]],
                                                                                               int]:
    """One page (1-based) of audit rows matching *where*, newest first, and the number of matching rows."""
    sql, params = where.where()
    total = int(ledger.query(f"SELECT COUNT(*) FROM audit WHERE {sql}", params)[0][0])
    found = ledger.query(f"SELECT id, at, actor, action, detail FROM audit WHERE {sql} ORDER BY id DESC "
                         "LIMIT ? OFFSET ?", (*params, rows, (page - 1) * rows))
    out = []
    for r in found:
        try:
            detail = json.dumps(json.loads(r["detail"]), sort_keys=True, ensure_ascii=False)
        except ValueError:
            detail = "(detail is not JSON)"
        out.append({"id": int(r["id"]), "at": float(r["at"]), "actor": r["actor"], "action": r["action"],
                    "detail": detail if len(detail) <= DETAIL_CHARS else detail[:DETAIL_CHARS] + " …"})
    return out, total


def _audit_page(ledger: Ledger, where: AuditFilter, page: int) -> dict[str, Any]:
    started = time.monotonic()
    report = ledger.verify_audit()
    rows, total = search_audit(ledger, where, page)
    actions = [str(r[0]) for r in ledger.query("SELECT DISTINCT action FROM audit ORDER BY action")]
    return {"chain": report, "rows": rows, "total": total, "pages": max(1, math.ceil(total / PAGE_ROWS)),
            "actions": actions, "seconds": time.monotonic() - started}


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(request: Request, ctx: ContextDep, principal: ReadAudit,
                     action: Annotated[str, Query(max_length=200)] = "",
                     actor: Annotated[str, Query(max_length=200)] = "",
                     since: Annotated[str, Query(max_length=40)] = "",
                     until: Annotated[str, Query(max_length=40)] = "",
                     page: Annotated[int, Query(ge=1, le=1_000_000)] = 1) -> HTMLResponse:
    form = {"action": action, "actor": actor, "since": since, "until": until}
    try:
        where = AuditFilter(action, actor, parse_local_time(since, "since"), parse_local_time(until, "until"))
    except ValueError as exc:
        return render(request, "console/audit.html", principal, status_code=422, error=str(exc), form=form,
                      chain=None, rows=[], total=0, pages=1, page=1, actions=[], query="")
    found = await run_in_threadpool(_audit_page, ctx.ledger, where, page)
    query = urlencode({k: v for k, v in form.items() if v})
    return render(request, "console/audit.html", principal, error="", form=form, page=page, query=query,
                  **{k: found[k] for k in ("chain", "rows", "total", "pages", "actions")})
