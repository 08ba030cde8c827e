"""Console pages of the network configuration and the routing rules (admin only).

* ``/console/network``: the local AE title and ``require_known_source``; sources and destinations
  (add, edit, remove; a destination's TLS settings as ``[[dicom.destinations]]`` has them) and a C-ECHO
  button per destination. Changes go through :class:`aiws.netconfig.NetworkStore` (validated, audited,
  applied without restart), as the JSON API's do.
* ``/console/rules``: the live routing rules as an editable table (one row per route, in order; the
  conditions of a route as TOML lines ``Keyword = "regex"`` or ``Keyword = [min, max]``), saved through
  :class:`aiws.routestore.RouteStore` (validated as the file's, versioned, applied to the next study);
  a refused change is shown again with each problem next to its row and field. "Test": an uploaded DICOM
  file or a received study, and which route decided for each series and why. The page shows the values
  compared to a signed-in admin (that is what the tool is for), never those of person names or patient IDs.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from aiws.api.auth import Principal, Role, requires
from aiws.api.console import flash_redirect, render
from aiws.api.deps import ApiContext, ContextDep
from aiws.api.routes.config import echo_destination
from aiws.api.routes.rules import MAX_ROUTES, explanation_json, study_headers, test_routes
from aiws.config import SourceConfig
from aiws.errors import AiwsError, ConfigError, Conflict, NotFound
from aiws.pipelines import PIPELINES
from aiws.routestore import (
    Problem,
    RouteStore,
    RuleSet,
    RulesInvalid,
    StaleVersion,
    file_headers,
    routes_to_toml,
    toml_value,
)

router = APIRouter(tags=["console"])

Admin = Annotated[Principal, requires(Role.ADMIN)]
TEST_PATH = "/console/rules/test"
NETWORK = "/console/network"
RULES = "/console/rules"
#: The fields of each network form (an error message "field: ..." is shown next to that field).
_FIELDS = ("ae_title", "require_known_source", "host", "any_host", "port", "query_retrieve", "name", "tls", "verify",
           "pdf_report")


# -- network ---------------------------------------------------------------------------------------------
def _network_page(request: Request, ctx: ContextDep, principal: Principal, status_code: int = 200,
                  error: dict[str, str] | None = None, echo: dict[str, Any] | None = None,
                  draft: dict[str, Any] | None = None) -> HTMLResponse:
    doc = ctx.network.doc()
    return render(request, "console/network.html", principal, status_code=status_code, doc=doc,
                  port=ctx.config.dicom.port, tls_configured=ctx.config.dicom.tls is not None,
                  error=error, echo=echo, draft=draft or {})


def _error(form: str, exc: Exception) -> dict[str, str]:
    """Where a refusal is shown: the form and, when the message starts with one of its fields, that field."""
    message = str(exc)
    field = message.split(":", 1)[0].strip()
    return {"form": form, "field": field if field in _FIELDS else "", "message": message}


def _port(value: str) -> int | str | None:
    value = value.strip()
    return int(value) if value.isdigit() else (value or None)


@router.get(NETWORK, response_class=HTMLResponse)
def network_page(request: Request, ctx: ContextDep, principal: Admin) -> HTMLResponse:
    return _network_page(request, ctx, principal)


@router.post(NETWORK + "/ae", response_class=HTMLResponse)
def set_ae(request: Request, ctx: ContextDep, principal: Admin, ae_title: Annotated[str, Form(max_length=64)],
           require_known_source: Annotated[bool, Form()] = False) -> Response:
    try:
        ctx.network.set_ae(ae_title, require_known_source, principal.actor)
    except ConfigError as exc:
        return _network_page(request, ctx, principal, 422, _error("ae", exc))
    return flash_redirect(NETWORK, f"Local AE title {ae_title.strip()} saved.")


def _source(ae_title: str, host: str, any_host: bool, port: str, query_retrieve: str) -> dict[str, Any]:
    return {"ae_title": ae_title, "host": host.strip() or None, "any_host": any_host, "port": _port(port),
            "query_retrieve": query_retrieve or "none"}


@router.post(NETWORK + "/sources", response_class=HTMLResponse)
def save_source(request: Request, ctx: ContextDep, principal: Admin, ae_title: Annotated[str, Form(max_length=64)],
                host: Annotated[str, Form(max_length=253)] = "", any_host: Annotated[bool, Form()] = False,
                port: Annotated[str, Form(max_length=8)] = "", query_retrieve: Annotated[str, Form(max_length=8)] = "",
                original: Annotated[str, Form(max_length=330)] = "") -> Response:
    """Add a source, or (with *original* = ``AE@host`` of the row edited) replace that one."""
    raw = _source(ae_title, host, any_host, port, query_retrieve)
    form = f"src-{original}" if original else "src-new"
    try:
        if original:
            _replace_source(ctx, original, raw, principal.actor)
        else:
            ctx.network.add_source(raw, principal.actor)
    except AiwsError as exc:
        return _network_page(request, ctx, principal, 409 if not isinstance(exc, ConfigError) else 422,
                             _error(form, exc), draft={form: raw})
    return flash_redirect(NETWORK, f"Source {ae_title.strip()} saved.")


def _key(source: dict[str, Any]) -> str:
    return f"{source['ae_title']}@{source.get('host') or ''}"


def _replace_source(ctx: ApiContext, original: str, raw: dict[str, Any], actor: str) -> None:
    """The network store removes sources by AE title: the others of that AE title are put back. The new
    entry is validated before anything is removed."""
    try:
        new = SourceConfig.model_validate(raw).model_dump()
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{'.'.join(str(p) for p in err['loc']) or 'source'}: "
                          f"{err['msg'].removeprefix('Value error, ')}") from None
    sources = ctx.network.doc()["sources"]
    old = next((s for s in sources if _key(s) == original), None)
    if old is None:
        raise NotFound(f"source {original} is not configured")
    if any(_key(s) == _key(new) and _key(s) != original for s in sources):
        raise Conflict(f"source {new['ae_title']!r} ({new['host'] or 'any host'}) already exists")
    kept = [s for s in sources if s["ae_title"] == old["ae_title"] and _key(s) != original]
    ctx.network.remove_source(old["ae_title"], actor)
    for s in [*kept, new]:
        ctx.network.add_source(s, actor)


@router.post(NETWORK + "/sources/remove", response_class=HTMLResponse)
def remove_source(request: Request, ctx: ContextDep, principal: Admin,
                  ae_title: Annotated[str, Form(max_length=64)]) -> Response:
    try:
        ctx.network.remove_source(ae_title, principal.actor)
    except AiwsError as exc:
        return _network_page(request, ctx, principal, 404, _error("sources", exc))
    return flash_redirect(NETWORK, f"Source {ae_title} removed.")


def _destination(name: str, ae_title: str, host: str, port: str, tls: bool, verify: bool,
                 pdf_report: bool) -> dict[str, Any]:
    return {"name": name, "ae_title": ae_title, "host": host.strip(), "port": _port(port), "tls": tls,
            "verify": verify, "pdf_report": pdf_report}


def _check_tls(ctx: ApiContext, raw: dict[str, Any]) -> None:
    """The file's rule for a destination over TLS (``[dicom.tls]``, and its ``ca_file`` to verify the peer)."""
    tls = ctx.config.dicom.tls
    if raw["tls"] and tls is None:
        raise ConfigError(f"tls: destination {raw['name']}: tls needs [dicom.tls] (cert_file, key_file) in the "
                          "configuration file")
    if raw["tls"] and raw["verify"] and tls is not None and tls.ca_file is None:
        raise ConfigError(f"verify: destination {raw['name']}: verifying the peer needs [dicom.tls] ca_file; "
                          "set it, or untick verify")


@router.post(NETWORK + "/destinations", response_class=HTMLResponse)
def save_destination(request: Request, ctx: ContextDep, principal: Admin, name: Annotated[str, Form(max_length=64)],
                     ae_title: Annotated[str, Form(max_length=64)], host: Annotated[str, Form(max_length=253)],
                     port: Annotated[str, Form(max_length=8)], tls: Annotated[bool, Form()] = False,
                     verify: Annotated[bool, Form()] = False, pdf_report: Annotated[bool, Form()] = False,
                     edit: Annotated[bool, Form()] = False) -> Response:
    """Add a destination, or with *edit* replace the one of that name."""
    raw = _destination(name, ae_title, host, port, tls, verify, pdf_report)
    form = f"dest-{name}" if edit else "dest-new"
    try:
        _check_tls(ctx, raw)
        ctx.network.add_destination(raw, principal.actor, replace=edit)
    except AiwsError as exc:
        return _network_page(request, ctx, principal, 422 if isinstance(exc, ConfigError) else 409,
                             _error(form, exc), draft={form: raw})
    return flash_redirect(NETWORK, f"Destination {name} saved.")


@router.post(NETWORK + "/destinations/{name}/remove", response_class=HTMLResponse)
def remove_destination(request: Request, name: str, ctx: ContextDep, principal: Admin) -> Response:
    try:
        _store(ctx).refuse_if_named(name)
        ctx.network.remove_destination(name, principal.actor)
    except AiwsError as exc:
        return _network_page(request, ctx, principal, 409 if isinstance(exc, Conflict) else 404,
                             _error(f"dest-{name}", exc))
    return flash_redirect(NETWORK, f"Destination {name} removed.")


@router.post(NETWORK + "/destinations/{name}/echo", response_class=HTMLResponse)
def echo(request: Request, name: str, ctx: ContextDep, principal: Admin) -> HTMLResponse:
    """C-ECHO the destination (audited) and show the result on its row."""
    result = echo_destination(name, ctx, principal.actor)
    return _network_page(request, ctx, principal, echo=result)


# -- routing rules ---------------------------------------------------------------------------------------
def _store(ctx: ApiContext) -> RouteStore:
    if ctx.routes is None:
        raise ConfigError("the live routing rules are not available in this application")
    return ctx.routes


@dataclass
class RuleRow:
    """One row of the rules table: a route (or the blank row that adds one) as the form holds it."""

    id: int
    position: int
    pipeline: str = ""
    send_to: str = ""  # destination names, comma-separated
    match: str = ""  # TOML lines, one condition each
    remove: bool = False

    @property
    def blank(self) -> bool:
        return not (self.pipeline or self.send_to.strip() or self.match.strip())


def _rows(store: RouteStore) -> list[RuleRow]:
    """The table's rows: one per live route, then a blank one to add a route."""
    rows = [RuleRow(i, i, r.pipeline, ", ".join(r.send_to), "\n".join(f"{k} = {toml_value(v)}" for k, v in r.match.items()))
            for i, r in enumerate(store.current().routes)]
    return [*rows, RuleRow(len(rows), len(rows))]


def _rules_page(request: Request, ctx: ApiContext, principal: Principal, status_code: int = 200,
                **context: Any) -> HTMLResponse:
    store = _store(ctx)
    current = store.current()
    context.setdefault("rows", _rows(store))
    context.setdefault("rules_version", current.version)
    context.setdefault("errors", {})
    context.setdefault("error", None)
    context.setdefault("result", None)
    context.setdefault("test_error", None)
    studies = ctx.ledger.list_studies(limit=50)
    return render(request, "console/rules.html", principal, status_code=status_code, from_file=current.from_file,
                  pipelines=sorted(PIPELINES), destinations=sorted(ctx.network.destinations()), studies=studies,
                  live_version=current.version, toml=routes_to_toml(current.routes), **context)


@router.get(RULES, response_class=HTMLResponse)
def rules_page(request: Request, ctx: ContextDep, principal: Admin) -> HTMLResponse:
    return _rules_page(request, ctx, principal)


def _submitted(form: Any) -> tuple[list[RuleRow], list[Any], list[int], list[Problem]]:
    """The table as submitted: its rows (shown again on a refusal), the routes in order, the row id of each
    route, and the rows whose conditions are not TOML."""
    def text(name: str) -> str:
        value = form.get(name, "")
        return value if isinstance(value, str) else ""

    count = min(int(text("count")) if text("count").isdigit() else 0, MAX_ROUTES + 1)
    rows = []
    for i in range(count):
        position = text(f"position-{i}").strip()
        rows.append(RuleRow(i, int(position) if position.lstrip("-").isdigit() else i, text(f"pipeline-{i}"),
                            text(f"send_to-{i}"), text(f"match-{i}"), form.get(f"remove-{i}") is not None))
    kept = [r for r in sorted(rows, key=lambda r: (r.position, r.id)) if not r.remove and not r.blank]
    routes: list[Any] = []
    problems = []
    for index, row in enumerate(kept):
        try:
            match = tomllib.loads(row.match)
        except tomllib.TOMLDecodeError as exc:
            problems.append(Problem(index, "match", f"one condition per line, Keyword = \"regex\" or [min, max] ({exc})"))
            match = {}
        routes.append({"pipeline": row.pipeline, "match": match,
                       "send_to": [n.strip() for n in row.send_to.split(",") if n.strip()]})
    return rows, routes, [r.id for r in kept], problems


def _row_errors(problems: list[Problem], row_ids: list[int]) -> tuple[dict[str, str], str | None]:
    """Problems by ``"<row id>-<field>"`` (the field's first part), and those of no route."""
    errors: dict[str, str] = {}
    general = []
    for p in problems:
        if p.index is None or p.index >= len(row_ids):
            general.append(str(p))
            continue
        field = p.field.split(".")[0] if p.field.split(".")[0] in ("pipeline", "send_to", "match") else "row"
        key = f"{row_ids[p.index]}-{field}"
        message = f"{p.field}: {p.message}" if field in ("match", "row") and p.field else p.message
        errors[key] = f"{errors[key]}; {message}" if key in errors else message
    return errors, "; ".join(general) or None


@router.post(RULES, response_class=HTMLResponse)
async def save_rules(request: Request, ctx: ContextDep, principal: Admin) -> Response:
    """Save the whole table (applies to the next study routed); a refusal shows the table as submitted."""
    form = await request.form(max_fields=4 * (MAX_ROUTES + 2) + 8)
    rows, routes, row_ids, problems = _submitted(form)
    text = str(form.get("version", ""))
    version = int(text) if text.isdigit() else -1
    try:
        saved = await run_in_threadpool(_save, _store(ctx), routes, version, problems, principal.actor)
    except RulesInvalid as exc:
        errors, general = _row_errors(list(exc.problems), row_ids)
        return await run_in_threadpool(_rules_page, request, ctx, principal, 422, rows=rows, errors=errors,
                                       error=general, rules_version=version)
    except StaleVersion as exc:
        return await run_in_threadpool(_rules_page, request, ctx, principal, 409, rows=rows, error=str(exc),
                                       rules_version=version)
    return flash_redirect(RULES, f"Routing rules saved: version {saved.version}, applied to the next study.")


def _save(store: RouteStore, routes: list[Any], version: int, problems: list[Problem], actor: str) -> RuleSet:
    """Replace the rules; with rows whose conditions are not TOML, the others are checked too, so that every
    problem shows at once (nothing is saved)."""
    if problems:
        try:
            store.validate(routes)
        except RulesInvalid as exc:
            unparsed = {q.index for q in problems}  # their conditions were left out: not checked
            problems = problems + [p for p in exc.problems if not (p.index in unparsed and p.field.startswith("match"))]
        raise RulesInvalid(problems)
    return store.replace(routes, version, actor)


@router.post(TEST_PATH, response_class=HTMLResponse)
async def test_rules(request: Request, ctx: ContextDep, principal: Admin) -> HTMLResponse:
    """Which route decides for an uploaded file's series, or for each series of a received study."""
    form = await request.form(max_files=1, max_fields=4)
    upload, study_uid = form.get("file"), str(form.get("study_uid", "")).strip()
    store = _store(ctx)
    try:
        if isinstance(upload, UploadFile) and upload.filename:
            headers = await run_in_threadpool(file_headers, upload.file)
            source = "uploaded file"  # its name is not repeated (a file name may name the patient)
        elif study_uid:
            headers = await run_in_threadpool(study_headers, ctx, study_uid)
            source = f"received study {study_uid}"
        else:
            raise ConfigError("test: choose a DICOM file or a received study")
        result = await run_in_threadpool(test_routes, store, headers, None)
    except AiwsError as exc:
        return await run_in_threadpool(_rules_page, request, ctx, principal,
                                       422 if isinstance(exc, ConfigError) else 404, test_error=str(exc))
    return await run_in_threadpool(_rules_page, request, ctx, principal, result={
        "source": source, "version": result["version"], "jobs": result["jobs"],
        "series": explanation_json(result["explained"], show_values=True)})


@router.get(TEST_PATH, include_in_schema=False)
def test_page(principal: Admin) -> RedirectResponse:
    return RedirectResponse(RULES, status_code=303)
