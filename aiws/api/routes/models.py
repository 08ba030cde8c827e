"""Model versions: per pipeline its models, versions, cards and the active version; promote and roll back.

The active version is written into the model's ``config.pbtxt`` (``version_policy { specific … }``) and
followed by both runtimes (see :mod:`models.runtime.promote`); every change is an audit row
(``model promoted`` / ``model rolled back`` with the old and new version and the actor).
"""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from aiws import model_versions
from aiws.api.auth import Principal, Role, requires
from aiws.api.deps import ContextDep

router = APIRouter(prefix="/api/models", tags=["models"])

ReadModels = Annotated[Principal, requires(Role.RADIOLOGIST, Role.ML_ENGINEER)]
ChangeModels = Annotated[Principal, requires(Role.ML_ENGINEER)]
ModelName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=2**31 - 1)


def _outcome(outcome: model_versions.PromoteOutcome) -> dict[str, Any]:
    change = outcome.change
    return {"model": change.model, "old_version": change.old, "new_version": change.new, "kind": change.kind,
            "audit_id": outcome.audit_id, "triton": outcome.triton}


@router.get("")
def list_models(ctx: ContextDep, principal: ReadModels) -> list[dict[str, Any]]:
    """Per pipeline its models: versions (newest first) with the card summary, the active one and the policy."""
    return [{"pipeline": pipeline, "models": [m.as_json() for m in models]}
            for pipeline, models in model_versions.overview(ctx.config, ctx.ledger)]


@router.get("/{name}/{version}/card", response_class=PlainTextResponse)
def model_card(ctx: ContextDep, principal: ReadModels, name: ModelName, version: Version) -> str:
    """The model card of a version (markdown, as published with it)."""
    return model_versions.card_markdown(ctx.config, name, version)


@router.post("/{name}/promote")
async def promote(ctx: ContextDep, principal: ChangeModels, name: ModelName, body: PromoteRequest) -> dict[str, Any]:
    """Make *version* the active version: 404 unknown model/version, 422 ONNX not matching config.pbtxt."""
    outcome = await run_in_threadpool(model_versions.promote, ctx.config, ctx.ledger, principal.actor, name,
                                      body.version)
    return _outcome(outcome)


@router.post("/{name}/rollback")
async def rollback(ctx: ContextDep, principal: ChangeModels, name: ModelName) -> dict[str, Any]:
    """Back to the version active before the last promotion: 409 when none is recorded."""
    outcome = await run_in_threadpool(model_versions.rollback, ctx.config, ctx.ledger, principal.actor, name)
    return _outcome(outcome)
