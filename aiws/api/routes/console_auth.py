"""Signing in and out, one's own API tokens, the accounts (admin), and the API documentation served offline.

* ``/console/login`` (GET form, POST): argon2 check, then a session cookie (HttpOnly, SameSite=Strict, Secure
  over HTTPS); failed logins are counted per account and per client address in the ledger: past
  ``[http] login_max_failures`` within ``login_window_seconds`` the answer is 429 with ``Retry-After``.
* ``/console/logout`` (POST, CSRF-checked), ``/console/account`` (own tokens: create, revoke),
  ``/console/users`` (admin: add, change role, disable or enable, set a password).
* ``/docs`` and ``/redoc`` with Swagger UI and ReDoc vendored under ``aiws/api/static/vendor`` (no CDN), and
  ``/openapi.json``: signed-in users only. ``/`` redirects to the console.
"""
from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from aiws.api import accounts
from aiws.api.accounts import AccountError
from aiws.api.auth import ALL_ROLES, PAGES, SESSION_COOKIE, Principal, Role, requires
from aiws.api.console import flash_redirect, home, render
from aiws.api.deps import ContextDep
from aiws.errors import Conflict, NotFound

LOGGER = logging.getLogger(__name__)

router = APIRouter(tags=["console"])

Anyone = Annotated[Principal, requires(*ALL_ROLES)]
Admin = Annotated[Principal, requires(Role.ADMIN)]
OPENAPI_URL = "/openapi.json"


def _peer(request: Request) -> str:
    return request.client.host if request.client else "?"


def _safe_next(target: str) -> str:
    """Only a console path of this site (never another host: no open redirect); "" for none."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not (parts.path.startswith("/console/") or parts.path in PAGES) \
            or "\\" in target:
        return ""
    return target


def _same_origin(request: Request) -> bool:
    """A login form posted from another site is refused (login CSRF): its Origin names another host."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host", "")


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=303)


@router.get("/console/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "") -> HTMLResponse:
    return render(request, "console/login.html", None, error=None, next=_safe_next(next), username="")


@router.post("/console/login", response_class=HTMLResponse)
def login(request: Request, ctx: ContextDep, username: Annotated[str, Form(max_length=64)],
          password: Annotated[str, Form(max_length=accounts.MAX_PASSWORD_CHARS)],
          next: Annotated[str, Form(max_length=2000)] = "") -> Response:
    http, peer, target = ctx.config.http, _peer(request), _safe_next(next)
    if not _same_origin(request):
        raise HTTPException(403, "login form posted from another site")
    wait = accounts.login_blocked_for(ctx.ledger, username, peer, http.login_max_failures, http.login_window_seconds)
    if wait > 0:
        seconds = int(wait) + 1
        response = render(request, "console/login.html", None, status_code=429, next=target, username=username,
                          error=f"Too many failed sign-ins; try again in {seconds} s.")
        response.headers["Retry-After"] = str(seconds)
        return response
    account = accounts.verify_password(ctx.ledger, username, password)
    if account is None:
        accounts.record_login_failure(ctx.ledger, username, peer, http.login_window_seconds)
        LOGGER.info("failed console login from %s", peer)
        return render(request, "console/login.html", None, status_code=401, next=target, username=username,
                      error="Wrong account name or password.")
    session = accounts.open_session(ctx.ledger, account, http.session_minutes * 60, peer)
    principal = Principal(account.name, account.role, "session")
    landing = RedirectResponse(target or home(principal), status_code=303)
    landing.set_cookie(SESSION_COOKIE, session.session_id, max_age=int(http.session_minutes * 60), path="/",
                       secure=http.https, httponly=True, samesite="strict")
    return landing


@router.post("/console/logout")
def logout(request: Request, ctx: ContextDep, principal: Anyone) -> RedirectResponse:
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        accounts.close_session(ctx.ledger, session_id)
    response = flash_redirect("/console/login", "Signed out.")
    response.delete_cookie(SESSION_COOKIE, path="/", secure=ctx.config.http.https, httponly=True, samesite="strict")
    return response


# -- own API tokens ---------------------------------------------------------------------------------------------
def _account_page(request: Request, ctx: ContextDep, principal: Principal, status_code: int = 200,
                  new_token: str | None = None, error: str | None = None) -> HTMLResponse:
    own = accounts.get_account(ctx.ledger, principal.name)
    roles = list(Role) if principal.role is Role.ADMIN else [principal.role]
    return render(request, "console/account.html", principal, status_code=status_code, account=own,
                  tokens=accounts.list_tokens(ctx.ledger, principal.name), roles=roles, new_token=new_token,
                  error=error)


@router.get("/console/account", response_class=HTMLResponse)
def account_page(request: Request, ctx: ContextDep, principal: Anyone) -> HTMLResponse:
    return _account_page(request, ctx, principal)


@router.post("/console/account/tokens", response_class=HTMLResponse)
def create_token(request: Request, ctx: ContextDep, principal: Anyone,
                 label: Annotated[str, Form(max_length=200)] = "", role: Annotated[str, Form()] = "") -> HTMLResponse:
    try:
        token = accounts.issue_token(ctx.ledger, principal.name, role or None, label, actor=principal.actor)
    except (AccountError, NotFound) as exc:
        return _account_page(request, ctx, principal, status_code=422, error=str(exc))
    return _account_page(request, ctx, principal, status_code=201, new_token=token)


@router.post("/console/account/tokens/{token_id}/revoke")
def revoke_own_token(token_id: str, ctx: ContextDep, principal: Anyone) -> RedirectResponse:
    accounts.revoke_token(ctx.ledger, token_id, principal.actor, account=principal.name)
    return flash_redirect("/console/account", f"Token {token_id} revoked.")


@router.post("/console/account/password", response_class=HTMLResponse)
def change_own_password(request: Request, ctx: ContextDep, principal: Anyone,
                        current_password: Annotated[str, Form(max_length=accounts.MAX_PASSWORD_CHARS)],
                        new_password: Annotated[str, Form(max_length=accounts.MAX_PASSWORD_CHARS)]) -> Response:
    """A new password for one's own account (the current one is checked and a wrong one counts as a failed
    login); every session of the account ends, this one too."""
    http, peer = ctx.config.http, _peer(request)
    if accounts.login_blocked_for(ctx.ledger, principal.name, peer, http.login_max_failures,
                                  http.login_window_seconds) > 0:
        return _account_page(request, ctx, principal, status_code=429, error="Too many failed attempts; wait.")
    if accounts.verify_password(ctx.ledger, principal.name, current_password) is None:
        accounts.record_login_failure(ctx.ledger, principal.name, peer, http.login_window_seconds)
        return _account_page(request, ctx, principal, status_code=422, error="The current password is wrong.")
    try:
        accounts.set_password(ctx.ledger, principal.name, new_password, principal.actor)
    except AccountError as exc:
        return _account_page(request, ctx, principal, status_code=422, error=str(exc))
    response = flash_redirect("/console/login", "Password changed; sign in with the new one.")
    response.delete_cookie(SESSION_COOKIE, path="/", secure=http.https, httponly=True, samesite="strict")
    return response


# -- accounts (admin) -------------------------------------------------------------------------------------------
def _users_page(request: Request, ctx: ContextDep, principal: Principal, status_code: int = 200,
                error: str | None = None) -> HTMLResponse:
    return render(request, "console/users.html", principal, status_code=status_code,
                  users=accounts.list_accounts(ctx.ledger), tokens=accounts.list_tokens(ctx.ledger),
                  roles=list(Role), error=error)


@router.get("/console/users", response_class=HTMLResponse)
def users_page(request: Request, ctx: ContextDep, principal: Admin) -> HTMLResponse:
    return _users_page(request, ctx, principal)


@router.post("/console/users", response_class=HTMLResponse)
def add_user(request: Request, ctx: ContextDep, principal: Admin, name: Annotated[str, Form(max_length=64)],
             role: Annotated[str, Form()], password: Annotated[str, Form(max_length=1024)]) -> Response:
    try:
        accounts.create_account(ctx.ledger, name, role, password, actor=principal.actor)
    except (AccountError, Conflict) as exc:
        return _users_page(request, ctx, principal, status_code=422, error=str(exc))
    return flash_redirect("/console/users", f"Account {name} added.")


@router.post("/console/users/{name}", response_class=HTMLResponse)
def change_user(request: Request, name: str, ctx: ContextDep, principal: Admin,
                action: Annotated[str, Form()], role: Annotated[str, Form()] = "",
                password: Annotated[str, Form(max_length=1024)] = "") -> Response:
    """``action``: ``role`` (with ``role``), ``disable``, ``enable`` or ``password`` (with ``password``)."""
    try:
        if action == "role":
            accounts.set_role(ctx.ledger, name, role, principal.actor)
        elif action in ("disable", "enable"):
            if name == principal.name and action == "disable":
                raise AccountError("you cannot disable your own account")
            accounts.set_disabled(ctx.ledger, name, action == "disable", principal.actor)
        elif action == "password":
            accounts.set_password(ctx.ledger, name, password, principal.actor)
        else:
            raise AccountError(f"action {action!r}: one of role, disable, enable, password")
    except AccountError as exc:
        return _users_page(request, ctx, principal, status_code=422, error=str(exc))
    return flash_redirect("/console/users", f"Account {name}: {action} done.")


@router.post("/console/users/tokens/{token_id}/revoke")
def revoke_any_token(token_id: str, ctx: ContextDep, principal: Admin) -> RedirectResponse:
    accounts.revoke_token(ctx.ledger, token_id, principal.actor)
    return flash_redirect("/console/users", f"Token {token_id} revoked.")


# -- API documentation, offline ---------------------------------------------------------------------------------
@router.get(OPENAPI_URL, include_in_schema=False)
def openapi(request: Request, principal: Anyone) -> JSONResponse:
    doc: dict[str, Any] = request.app.openapi()
    return JSONResponse(doc)


@router.get("/docs", include_in_schema=False)
def swagger(request: Request, principal: Anyone) -> HTMLResponse:
    return render(request, "console/docs_swagger.html", principal, openapi_url=OPENAPI_URL)


@router.get("/redoc", include_in_schema=False)
def redoc(request: Request, principal: Anyone) -> HTMLResponse:
    return render(request, "console/docs_redoc.html", principal, openapi_url=OPENAPI_URL)
