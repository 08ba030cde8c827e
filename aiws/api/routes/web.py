"""A small web page for PACS administrators: what came in, what went out, what is configured.

The page is the Jinja2 template ``aiws/api/templates/status.html`` (package data), rendered with
autoescaping on, so every value shown is HTML-escaped; errors are scrubbed before they reach it.
"""
from __future__ import annotations

import time
from functools import lru_cache
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from aiws import __version__
from aiws.api.auth import Principal, Role, requires
from aiws.api.deps import ContextDep
from aiws.api.routes.plugins import RegistryDep, plugin_rows
from pacs_bridge.scrub import scrub_text

router = APIRouter(tags=["web"])


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    """The template environment, built at the first page (never at import); autoescape on for every template."""
    return jinja2.Environment(loader=jinja2.PackageLoader("aiws.api", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined)


def _ts(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def _tls(d: dict[str, Any]) -> str:
    if not d["tls"]:
        return "no"
    return "peer verified" if d.get("verify", True) else "NOT verified (verify = false)"


@router.get("/console/status", response_class=HTMLResponse)
def index(ctx: ContextDep, registry: RegistryDep,
          principal: Annotated[Principal, requires(Role.RADIOLOGIST, Role.ML_ENGINEER)]) -> str:
    doc = ctx.network.doc()
    return _templates().get_template("status.html").render(
        version=__version__, ae_title=doc["ae_title"], port=ctx.config.dicom.port,
        require_known_source=doc["require_known_source"],
        sources=[[s["ae_title"], s.get("host") or "any"] for s in doc["sources"]],
        destinations=[[d["name"], d["ae_title"], d["host"], d["port"], _tls(d)] for d in doc["destinations"]],
        studies=[[s.study_uid, s.state, s.n_instances, s.n_jobs, s.unrouted, s.calling_ae, _ts(s.last_received_at),
                  scrub_text(s.error, max_chars=120)] for s in ctx.ledger.list_studies(limit=50)],
        jobs=[[j.id, j.pipeline, j.study_uid, j.state, j.attempts, scrub_text(j.error, max_chars=120)]
              for j in ctx.ledger.list_jobs(limit=50)],
        sends=[[s.id, s.job_id, s.destination, s.state, s.attempts, s.n_files, scrub_text(s.last_error, max_chars=120)]
               for s in ctx.ledger.list_sends(limit=50)],
        plugins=plugin_rows(registry))
