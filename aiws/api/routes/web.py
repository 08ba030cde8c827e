"""A small web page for PACS administrators: what came in, what went out, what is configured."""
from __future__ import annotations

import html
import time

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from aiws import __version__
from aiws.api.deps import ContextDep
from aiws.api.routes.plugins import RegistryDep, plugins_html
from pacs_bridge.scrub import scrub_text

router = APIRouter(tags=["web"])


def _ts(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def _table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body or '<tr><td colspan=99>none</td></tr>'}</table>"


@router.get("/", response_class=HTMLResponse)
def index(ctx: ContextDep, registry: RegistryDep) -> str:
    doc = ctx.network.doc()
    studies = ctx.ledger.list_studies(limit=50)
    jobs = ctx.ledger.list_jobs(limit=50)
    sends = ctx.ledger.list_sends(limit=50)
    parts = [
        f"<h1>AIWS {html.escape(__version__)}</h1>",
        f"<p>DICOM SCP <b>{html.escape(doc['ae_title'])}</b> port {ctx.config.dicom.port}; "
        f"known sources only: {doc['require_known_source']}. Changes: HTTP API with the admin token, "
        "or <code>aiws ae …</code>. <a href='/docs'>API</a> · <a href='/metrics'>metrics</a></p>",
        "<h2>Sources</h2>" + _table(["AE title", "host"], [[s["ae_title"], s.get("host") or "any"]
                                                          for s in doc["sources"]]),
        "<h2>Destinations</h2>" + _table(["name", "AE title", "host", "port", "TLS"],
                                         [[d["name"], d["ae_title"], d["host"], d["port"],
                                           ("peer verified" if d.get("verify", True) else "NOT verified (verify = false)")
                                           if d["tls"] else "no"]
                                          for d in doc["destinations"]]),
        "<h2>Studies</h2>" + _table(
            ["study UID", "state", "instances", "jobs", "unrouted", "from", "last received", "error"],
            [[s.study_uid, s.state, s.n_instances, s.n_jobs, s.unrouted, s.calling_ae, _ts(s.last_received_at),
              scrub_text(s.error, max_chars=120)] for s in studies]),
        "<h2>Jobs</h2>" + _table(["id", "pipeline", "study UID", "state", "attempts", "error"],
                                 [[j.id, j.pipeline, j.study_uid, j.state, j.attempts,
                                   scrub_text(j.error, max_chars=120)] for j in jobs]),
        "<h2>Sends</h2>" + _table(["id", "job", "destination", "state", "attempts", "files", "last error"],
                                  [[s.id, s.job_id, s.destination, s.state, s.attempts, s.n_files,
                                    scrub_text(s.last_error, max_chars=120)]
                                   for s in sends]),
        plugins_html(registry),
    ]
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1em}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}")
    return f"<!doctype html><html><head><meta charset=utf-8><title>AIWS</title><style>{style}</style>" \
           f"<meta http-equiv=refresh content=10></head><body>{''.join(parts)}</body></html>"
