"""Console pages of the plugins: ``/console/plugins`` (what each does, version, disclaimer, provenance) and
``/console/plugins/{name}`` (a form generated from the plugin's input model, filled with an example; POST runs it
and shows the result under the form).

A run takes the API's path (:func:`aiws.api.routes.plugins.run_audited`): the form's values become the JSON
document ``POST /api/plugins/{name}`` accepts (or an uploaded JSON, FHIR R4 or CSV file is passed as it is),
the plugin's model validates it, and the audit row (plugin, version, input hash, status, actor) is the API's.
A model's refusal (422) shows the form again with each message beside the input it names.
Roles: clinician (and admin).
"""
from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from aiws.api.auth import Principal, Role, requires
from aiws.api.console import render
from aiws.api.deps import ContextDep
from aiws.api.plugin_examples import example
from aiws.api.plugin_forms import ADD_ROWS, BLANK_ROWS, form_spec, form_view, values_from_form
from aiws.api.plugin_results import document_of_upload, result_views
from aiws.api.routes.plugins import MAX_BODY_BYTES, RegistryDep, run_audited
from plugins.base import Plugin, Provenance
from plugins.errors import FieldProblem, InvalidInput, PluginError, UnknownPlugin

LOGGER = logging.getLogger(__name__)

router = APIRouter(prefix="/console/plugins", tags=["console"])

ClinicianDep = Annotated[Principal, requires(Role.CLINICIAN)]

#: Form fields that are not the model's: the CSRF token, the button pressed, the upload box.
ACTION_FIELD = "action"
UPLOAD_FIELD = "upload"
PASTE_FIELD = "pasted"
TEMPLATE = "console/plugins_form.html"


def _plugin(registry: Any, name: str) -> Plugin[Any, Any]:
    try:
        plugin: Plugin[Any, Any] = registry.get(name)
    except UnknownPlugin as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except PluginError as exc:
        LOGGER.error("plugin %s cannot be loaded: %s", name, type(exc).__name__)
        raise HTTPException(status_code=503, detail=str(exc)) from exc
    return plugin


def _info(plugin: Plugin[Any, Any]) -> dict[str, Any]:
    info = plugin.describe()
    info["provenance_text"] = Provenance.model_validate(info["provenance"]).text()
    info.pop("input_schema", None)
    return info


@router.get("", response_class=HTMLResponse)
def plugin_list(request: Request, principal: ClinicianDep, registry: RegistryDep) -> HTMLResponse:
    rows, broken = [], []
    for name in registry.names():
        try:
            rows.append(_info(registry.get(name)))
        except (PluginError, ImportError) as exc:  # one broken third-party plugin must not hide the others
            LOGGER.error("plugin %s cannot be loaded: %s", name, type(exc).__name__)
            broken.append((name, str(exc)))
    return render(request, "console/plugins.html", principal, plugins=rows, broken=broken)


@router.get("/{name}", response_class=HTMLResponse)
def plugin_form(name: str, request: Request, principal: ClinicianDep, registry: RegistryDep) -> HTMLResponse:
    plugin = _plugin(registry, name)
    spec = form_spec(plugin.input_model)
    return render(request, TEMPLATE, principal, plugin=_info(plugin), form=form_view(spec, example(name)),
                  results=[], problems=[], ran=False)


async def _upload(form: FormData) -> tuple[bytes, str | None] | None:
    """The uploaded file or the pasted text (JSON, FHIR R4 Bundle or CSV), with its format hint; None if neither."""
    item = form.get(UPLOAD_FIELD)
    if isinstance(item, UploadFile) and item.filename:
        data = await item.read(MAX_BODY_BYTES + 1)
        return data, f"{item.content_type or ''} {item.filename}"
    pasted = form.get(PASTE_FIELD)
    if isinstance(pasted, str) and pasted.strip():
        return pasted.encode("utf-8"), None
    return None


def _blanks(form: FormData) -> dict[str, int]:
    action = str(form.get(ACTION_FIELD) or "")
    if action.startswith("add:"):
        return {action[4:]: BLANK_ROWS + ADD_ROWS}
    return {}


@router.post("/{name}", response_class=HTMLResponse)
async def plugin_run(name: str, request: Request, principal: ClinicianDep, ctx: ContextDep,
                     registry: RegistryDep) -> HTMLResponse:
    plugin = _plugin(registry, name)
    spec = form_spec(plugin.input_model)
    form = await request.form()
    doc = values_from_form(spec, form)
    info = _info(plugin)
    blanks = _blanks(form)
    if blanks:  # "add rows": the same form with more blank rows; nothing runs
        return render(request, TEMPLATE, principal, plugin=info, form=form_view(spec, doc, blanks=blanks),
                      results=[], problems=[], ran=False)
    upload = await _upload(form)
    if upload is not None:
        body, hint = upload
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(status_code=413, detail=f"upload above {MAX_BODY_BYTES} bytes")
    else:
        body, hint = json.dumps(doc).encode("utf-8"), "application/json"
    try:
        result = await run_in_threadpool(run_audited, ctx.ledger, plugin, body, hint, principal.actor)
    except InvalidInput as exc:
        problems: list[FieldProblem] = exc.problems
        return render(request, TEMPLATE, principal, status_code=422, plugin=info,
                      form=form_view(spec, doc, problems if upload is None else ()), results=[],
                      problems=[str(p) for p in problems], ran=False)
    outputs = [o.model_dump(mode="json") for o in result.outputs]
    shown_doc = doc if upload is None else document_of_upload(body, result.input_format == "csv")
    return render(request, TEMPLATE, principal, plugin=info, form=form_view(spec, doc),
                  results=result_views(plugin.name, outputs, shown_doc), problems=[], ran=True,
                  seconds=result.seconds, input_format=result.input_format)
