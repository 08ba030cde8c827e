"""Plugin routes: ``GET /api/plugins``, ``GET /api/plugins/{name}`` (with the input schema) and
``POST /api/plugins/{name}`` (flat JSON, a FHIR R4 Bundle, or CSV with ``Content-Type: text/csv``).

Every plugin states what its results are and where they come from: ``disclaimer`` and
``provenance`` (model, version, trained on, knowledge base, version, review status) in the list, the
description, every result, and the status page (:func:`plugin_rows`).

Invalid input answers 422 with ``errors: [{field, rule, value}]``. Every run, valid or not, is
recorded in the ledger's audit (plugin, version, SHA-256 of the input, status, time) — never a
patient identifier.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from aiws.api.auth import Principal, Role, requires
from aiws.api.deps import ContextDep
from aiws.ledger import Ledger
from plugins.base import Plugin, Provenance
from plugins.errors import InvalidInput, PluginError, UnknownPlugin
from plugins.registry import Registry
from plugins.runner import RunResult, audit_detail, run_plugin

LOGGER = logging.getLogger(__name__)

router = APIRouter(prefix="/api/plugins", tags=["plugins"])

#: Largest input (a year of hourly ED counts as CSV is ~0.3 MiB; a patient's FHIR Bundle a few MiB), enforced
#: while the body streams in (:mod:`aiws.api.limits`): four concurrent bodies cost at most 4 × this.
MAX_BODY_BYTES = 16 * 1024 * 1024
AUDIT_ACTION = "plugin.run"


def get_registry(request: Request) -> Registry:
    """One registry per application (plugins load their knowledge base or model once)."""
    registry: Registry | None = getattr(request.app.state, "plugin_registry", None)
    if registry is None:
        registry = Registry()
        request.app.state.plugin_registry = registry
    return registry


RegistryDep = Annotated[Registry, Depends(get_registry)]
#: Plugins (list, describe, run): clinicians (and admins).
PluginUser = Annotated[Principal, requires(Role.CLINICIAN)]


def _plugin(registry: Registry, name: str) -> Any:
    try:
        return registry.get(name)
    except UnknownPlugin as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except PluginError as exc:
        LOGGER.error("plugin %s cannot be loaded: %s", name, exc)
        raise HTTPException(status_code=503, detail=str(exc)) from exc


@router.get("")
def list_plugins(registry: RegistryDep, principal: PluginUser) -> list[dict[str, Any]]:
    out = []
    for name in registry.names():
        info = _plugin(registry, name).describe()
        out.append({k: info[k] for k in ("name", "version", "summary", "disclaimer", "provenance", "formats")})
    return out


@dataclass(frozen=True)
class PluginRow:
    """One row of the status page's Plugins section: the cells shown, or why the plugin cannot load."""

    name: str
    cells: tuple[str, ...] = ()
    error: str | None = None


def plugin_rows(registry: Registry) -> list[PluginRow]:
    """The status page's plugin section: name, version, summary, disclaimer and provenance of each."""
    rows = []
    for name in registry.names():
        try:
            info = registry.get(name).describe()
        except (PluginError, ImportError) as exc:  # a broken third-party plugin must not take the page down
            LOGGER.error("plugin %s cannot be loaded: %s", name, type(exc).__name__)
            rows.append(PluginRow(name, error=str(exc)))
            continue
        cells = (info["name"], info["version"], info["summary"], info["disclaimer"],
                 Provenance.model_validate(info["provenance"]).text())
        rows.append(PluginRow(name, tuple(str(c) for c in cells)))
    return rows


@router.get("/{name}")
def describe_plugin(name: str, registry: RegistryDep, principal: PluginUser) -> dict[str, Any]:
    return dict(_plugin(registry, name).describe())


#: What the OpenAPI description says of the body (each plugin's own schema: ``GET /api/plugins/{name}``).
_RUN_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": ["object", "array"], "description": "flat JSON or a FHIR R4 Bundle"}},
    "text/csv": {"schema": {"type": "string"}}}}}


@router.post("/{name}", openapi_extra=_RUN_BODY)
async def run(name: str, request: Request, ctx: ContextDep, registry: RegistryDep,
              principal: PluginUser) -> JSONResponse:
    plugin = _plugin(registry, name)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise HTTPException(status_code=413, detail=f"input of {len(body)} bytes above {MAX_BODY_BYTES}")
    actor = principal.actor
    try:
        result = await run_in_threadpool(run_audited, ctx.ledger, plugin, body, request.headers.get("content-type"),
                                         actor)
    except InvalidInput as exc:
        return JSONResponse({"detail": str(exc), "errors": [p.as_dict() for p in exc.problems]}, status_code=422)
    return JSONResponse(result.body())


def run_audited(ledger: Ledger, plugin: Plugin[Any, Any], body: bytes, hint: str | None, actor: str) -> RunResult:
    """Run *plugin* on *body* (:func:`plugins.runner.run_plugin`) and write its audit row, valid or not: the one
    path of the API and the console (:mod:`aiws.api.routes.console_plugins`). Raises :class:`InvalidInput`
    (after its audit row)."""
    try:
        result = run_plugin(plugin, body, hint)
    except InvalidInput as exc:
        ledger.audit(actor, AUDIT_ACTION, audit_detail(plugin.name, plugin.version, body, "invalid",
                                                       problems=len(exc.problems)))
        raise
    ledger.audit(actor, AUDIT_ACTION, audit_detail(
        plugin.name, plugin.version, body, "ok", format=result.input_format, records=len(result.outputs),
        seconds=round(result.seconds, 4)))
    LOGGER.info("plugin %s %s: %d record(s) in %.3f s", plugin.name, plugin.version, len(result.outputs),
                result.seconds)
    return result
