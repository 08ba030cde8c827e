"""Live network configuration: local AE, sources, destinations (admin only, reads included)."""
from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from aiws.api.deps import AdminDep, ContextDep
from aiws.api.fields import api_model
from aiws.config import DestinationConfig, SourceConfig
from aiws.errors import NotFound
from pacs_bridge.errors import SendError
from pacs_bridge.scrub import describe_error
from pacs_bridge.sender import echo

router = APIRouter(prefix="/api/config", tags=["config"])


class AeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ae_title: str | None = Field(default=None, max_length=64)
    require_known_source: StrictBool | None = None


#: The bodies as the API takes them: strict booleans, checked hosts (see :mod:`aiws.api.fields`).
SourceIn = api_model(SourceConfig)
DestinationIn = api_model(DestinationConfig)


@router.get("/ae")
def get_ae(ctx: ContextDep, actor: AdminDep) -> dict[str, Any]:
    doc = ctx.network.doc()
    return {"ae_title": doc["ae_title"], "require_known_source": doc["require_known_source"],
            "port": ctx.config.dicom.port}


@router.put("/ae")
def put_ae(body: AeUpdate, ctx: ContextDep, actor: AdminDep) -> dict[str, Any]:
    return ctx.network.set_ae(body.ae_title, body.require_known_source, actor)


@router.get("/sources")
def list_sources(ctx: ContextDep, actor: AdminDep) -> list[dict[str, Any]]:
    return list(ctx.network.doc()["sources"])


@router.post("/sources", status_code=201)
def add_source(body: SourceIn, ctx: ContextDep, actor: AdminDep) -> dict[str, Any]:
    return ctx.network.add_source(body.model_dump(), actor)


@router.delete("/sources/{ae_title}", status_code=204)
def remove_source(ae_title: str, ctx: ContextDep, actor: AdminDep) -> Response:
    ctx.network.remove_source(ae_title, actor)
    return Response(status_code=204)


@router.get("/destinations")
def list_destinations(ctx: ContextDep, actor: AdminDep) -> list[dict[str, Any]]:
    return list(ctx.network.doc()["destinations"])


@router.post("/destinations", status_code=201)
def add_destination(body: DestinationIn, ctx: ContextDep, actor: AdminDep) -> dict[str, Any]:
    return ctx.network.add_destination(body.model_dump(), actor)


@router.put("/destinations/{name}")
def put_destination(name: str, body: DestinationIn, ctx: ContextDep, actor: AdminDep) -> dict[str, Any]:
    if body.name != name:
        raise HTTPException(422, f"name: body name {body.name!r} differs from the path {name!r}")
    return ctx.network.add_destination(body.model_dump(), actor, replace=True)


@router.delete("/destinations/{name}", status_code=204)
def remove_destination(name: str, ctx: ContextDep, actor: AdminDep) -> Response:
    if ctx.routes is not None:  # 409 while a live route sends to it
        ctx.routes.refuse_if_named(name)
    ctx.network.remove_destination(name, actor)
    return Response(status_code=204)


@router.post("/destinations/{name}/echo")
def echo_destination(name: str, ctx: ContextDep, actor: AdminDep) -> dict[str, Any]:
    dest = ctx.network.destinations().get(name)
    if dest is None:
        raise NotFound(f"destination {name!r} is not configured")
    settings = dataclasses.replace(ctx.sender_settings, ae_title=ctx.network.policy().ae_title)
    try:
        ms = echo(dest, settings)
    except SendError as exc:
        error = describe_error(exc)
        ctx.ledger.audit(actor, "echo failed", {"destination": name, "error": error})
        return {"destination": name, "ok": False, "error": error}
    ctx.ledger.audit(actor, "echo", {"destination": name, "ms": round(ms, 1)})
    return {"destination": name, "ok": True, "round_trip_ms": round(ms, 1)}
