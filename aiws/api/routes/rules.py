"""Live routing rules: read, replace (versioned, validated as the file's ``[[routes]]``), and "test this rule".

``POST /api/routes/test`` explains, series by series, which route decided and, for every route, each
condition's outcome. Whether the value compared is shown:

* an **uploaded file**: yes. The answer goes to an admin and repeats only values of the file the caller
  sent, and of the attributes the rules name, nothing else of the header; seeing the value is the
  point of the tool ("SliceThickness 3 is outside [0, 2.5]").
* a **received study** (``{"study_uid": ...}``): no, the JSON API carries UIDs only (as ``/api/studies``
  leaves out the console's labels); the console page, for a signed-in admin, shows them.
* person names and patient identifiers (VR PN, ``Patient…`` keywords): never, wherever a rule names one.

Values are never logged, audited or repeated in an error.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from aiws.api.auth import Principal, Role, requires
from aiws.api.deps import ApiContext, ContextDep
from aiws.api.fields import MAX_ROW_ID
from aiws.errors import ConfigError, NotFound
from aiws.headerstore import load_headers
from aiws.routestore import (
    RouteStore,
    RuleSet,
    RulesInvalid,
    SeriesExplanation,
    explain_routes,
    file_headers,
    shown_value,
)
from aiws.routing import Route, route_study
from imaging.series import read_instance
from pacs_bridge.uids import is_valid_uid

router = APIRouter(prefix="/api/routes", tags=["routes"])

TEST_PATH = "/api/routes/test"
#: An uploaded file larger than this is refused (413) before it is read: one instance's header is what counts.
MAX_UPLOAD_BYTES = 64 * 2**20
MAX_ROUTES = 500

Admin = Annotated[Principal, requires(Role.ADMIN)]


def route_store(ctx: ContextDep) -> RouteStore:
    if ctx.routes is None:
        raise HTTPException(503, "the live routing rules are not available in this application")
    return ctx.routes


StoreDep = Annotated[RouteStore, Depends(route_store)]


class RoutesUpdate(BaseModel):
    """The whole rule list (order matters: per pipeline, the first matching route decides) and the version
    it was edited from."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=0, le=MAX_ROW_ID)
    routes: list[Any] = Field(max_length=MAX_ROUTES)


class RoutesTest(BaseModel):
    """A received study, tested against the live rules or, when given, against candidate *routes*."""

    model_config = ConfigDict(extra="forbid")
    study_uid: str = Field(max_length=64)
    routes: list[Any] | None = Field(default=None, max_length=MAX_ROUTES)


def rules_json(rules: RuleSet) -> dict[str, Any]:
    return {"version": rules.version, "from_file": rules.from_file,
            "routes": [r.model_dump(mode="json") for r in rules.routes]}


def invalid_response(exc: RulesInvalid) -> JSONResponse:
    """422 naming each route index and field (``loc`` as FastAPI's own errors have it)."""
    errors = [{"loc": ["body", "routes", *([] if p.index is None else [p.index]), *filter(None, p.field.split("."))],
               "msg": p.message} for p in exc.problems]
    return JSONResponse({"detail": str(exc), "errors": errors}, status_code=422)


@router.get("")
def get_routes(principal: Admin, store: StoreDep) -> dict[str, Any]:
    """The live rules, their version and whether they are the configuration file's."""
    return rules_json(store.current())


@router.put("", response_model=None)
def put_routes(principal: Admin, body: RoutesUpdate, store: StoreDep) -> dict[str, Any] | JSONResponse:
    """Replace the live rules; applies to the next study routed, without restart. 409 when the rules are
    no longer at ``version``; 422 naming ``routes[i].field`` for a route the file would refuse."""
    try:
        return rules_json(store.replace(body.routes, body.version, principal.actor))
    except RulesInvalid as exc:
        return invalid_response(exc)


def explanation_json(explained: list[SeriesExplanation], show_values: bool) -> list[dict[str, Any]]:
    return [{
        "series_uid": s.series_uid,
        "deciding": [v.index for v in s.deciding],
        "routes": [{
            "index": v.index, "pipeline": v.pipeline, "send_to": list(v.send_to), "matched": v.matched,
            "decides": v.decides, "shadowed_by": v.shadowed_by,
            "conditions": [{"keyword": c.keyword, "rule": c.rule, "matched": c.matched, "reason": c.reason,
                            "value": shown_value(c.keyword, c.value, show_values)} for c in v.conditions],
        } for v in s.verdicts],
    } for s in explained]


def study_headers(ctx: ApiContext, study_uid: str) -> dict[str, Dataset]:
    """One header per series of a received study, as the scheduler routed it: the first instance of each
    series, from the headers kept for its jobs (:mod:`aiws.headerstore`) or read back from the spool.

    Raises:
        ConfigError: not a UID. NotFound: no such study, or its files are gone (retention).
    """
    if not is_valid_uid(study_uid):
        raise ConfigError("study_uid: not a valid UID")
    first: dict[str, Path] = {}
    for inst in ctx.ledger.instances_of_study(study_uid):
        first.setdefault(inst.series_uid, Path(inst.path))
    if not first:
        raise NotFound(f"study {study_uid}: no instances received")
    kept = load_headers(ctx.config.storage.data_dir, study_uid, list(first.values()))
    headers: dict[str, Dataset] = {}
    for series_uid, path in first.items():
        header = kept.get(path)
        if header is None or not header.is_current():
            try:
                header = read_instance(path)
            except (OSError, InvalidDicomError, EOFError, ValueError) as exc:
                raise NotFound(f"study {study_uid} series {series_uid}: not readable ({type(exc).__name__}); "
                               "purged or quarantined") from None
        headers[series_uid] = header.dataset
    return headers


def test_routes(store: RouteStore, headers: Mapping[str, Dataset], candidate: list[Any] | None) -> dict[str, Any]:
    """The explanation of *headers* under the live rules or the *candidate* ones (validated first).

    Raises:
        RulesInvalid: a candidate route refused.
    """
    if candidate is None:
        current = store.current()
        routes, version = current.compiled, current.version
    else:
        routes, version = tuple(Route.of(r) for r in store.validate(candidate)), None
    jobs = route_study(routes, headers)
    return {"version": version, "explained": explain_routes(routes, headers),
            "jobs": [{"pipeline": j.pipeline, "send_to": list(j.send_to), "series_uids": list(j.series_uids)}
                     for j in jobs]}


_TEST_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "one DICOM instance"},
        "routes": {"type": "string", "description": "optional: candidate rules, a JSON list of routes"}}}},
    "application/json": {"schema": RoutesTest.model_json_schema()}}}}


@router.post("/test", response_model=None, openapi_extra=_TEST_BODY)
async def test_rules(principal: Admin, request: Request, ctx: ContextDep, store: StoreDep) -> Any:
    """Which route matched each series and why: an uploaded DICOM file (multipart field ``file``) or a
    received study (JSON ``{"study_uid": ...}``), against the live rules or candidate ``routes``."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "multipart/form-data":
            form = await request.form(max_files=1, max_fields=4)
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ConfigError("file: a DICOM file is required (multipart field 'file')")
            candidate = _candidate_field(form.get("routes"))
            headers = await run_in_threadpool(file_headers, upload.file)
            show, study_uid = True, None
        else:
            body = RoutesTest.model_validate_json(await request.body())
            headers = await run_in_threadpool(study_headers, ctx, body.study_uid)
            candidate, show, study_uid = body.routes, False, body.study_uid
        result = await run_in_threadpool(test_routes, store, headers, candidate)
    except RulesInvalid as exc:
        return invalid_response(exc)
    except ValidationError as exc:  # where and which rule, never the value
        return JSONResponse({"detail": [{k: e[k] for k in ("type", "loc", "msg") if k in e} for e in exc.errors()]},
                            status_code=422)
    return {"version": result["version"], "study_uid": study_uid, "values_shown": show,
            "series": explanation_json(result["explained"], show), "jobs": result["jobs"]}


def _candidate_field(value: object) -> list[Any] | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError("routes: expected a JSON list of routes")
    try:
        parsed = json.loads(value)
    except ValueError:
        raise ConfigError("routes: not JSON") from None
    if not isinstance(parsed, list):
        raise ConfigError("routes: expected a JSON list of routes")
    return parsed
