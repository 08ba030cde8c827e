"""Who may call what: roles, the principal of a request, and the ``requires(...)`` dependency.

Every route declares its roles::

    @router.get("/api/studies")
    def list_studies(principal: Annotated[Principal, requires(Role.RADIOLOGIST, Role.ML_ENGINEER)]) -> ...

Credentials are a console session cookie (:data:`SESSION_COOKIE`) or ``Authorization: Bearer <API token>``
(an account's token, or the configured admin token, which acts as an admin). Admin passes every role check.

* no (valid) credentials: 401 for the JSON API; a 303 redirect to ``/console/login?next=<path>`` for a
  console page (a path under ``/console``);
* a role not among those required: 403;
* a session on POST, PUT, PATCH or DELETE: the form field ``csrf_token`` or the header ``X-CSRF-Token``
  must equal the session's CSRF token, else 403 (a bearer token needs none: a browser never sends it by itself).
"""
from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

if TYPE_CHECKING:
    from aiws.api.deps import ApiContext

SESSION_COOKIE = "aiws_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
#: The principal name of the configured admin token (``[http] admin_token``); no account may take it.
ADMIN_TOKEN_NAME = "admin-token"
CONSOLE_PREFIX = "/console"
LOGIN_PATH = "/console/login"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Pages outside ``/console`` that a browser opens (see :func:`is_page`).
PAGES = frozenset({"/docs", "/redoc"})


class Role(str, enum.Enum):
    ADMIN = "admin"
    RADIOLOGIST = "radiologist"
    ML_ENGINEER = "ml-engineer"
    CLINICIAN = "clinician"


#: Every role: ``requires(*ALL_ROLES)`` is "any signed-in user".
ALL_ROLES: tuple[Role, ...] = tuple(Role)


@dataclass(frozen=True)
class Principal:
    """Who makes a request: an account (by session or API token) or the configured admin token."""

    name: str
    role: Role
    via: str  # "session" | "token"

    @property
    def actor(self) -> str:
        """The name written to the audit: ``user:<account>``, or ``api:admin-token`` for the configured token."""
        return f"api:{self.name}" if self.name == ADMIN_TOKEN_NAME else f"user:{self.name}"

    def has(self, *roles: Role) -> bool:
        """Whether this principal passes a check for *roles* (admin passes every check)."""
        return self.role is Role.ADMIN or self.role in roles


class LoginRedirect(HTTPException):
    """No credentials on a console page: 303 to the login page (handled like any HTTPException)."""

    def __init__(self, path: str) -> None:
        super().__init__(status_code=303, detail="sign in first",
                         headers={"Location": f"{LOGIN_PATH}?next={quote(path, safe='/')}"})


def is_page(path: str) -> bool:
    """Whether *path* is a page a browser opens (the console, the API documentation): no credentials there
    redirect to the login page instead of answering 401."""
    return path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/") or path in PAGES


class PageForbidden(HTTPException):
    """A signed-in user opened a console page of another role: 403, shown as a page with the navigation."""

    def __init__(self, principal: Principal, detail: str) -> None:
        super().__init__(status_code=403, detail=detail)
        self.principal = principal


def _context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def bearer_token(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authenticate(ctx: ApiContext, authorization: str | None, session_id: str | None) -> tuple[Principal, str] | None:
    """The principal of a request's credentials and its CSRF token ("" for a bearer token), or None.
    Blocking (ledger reads): call it from a worker thread. A bearer token, when present, decides alone."""
    from aiws.api.accounts import principal_of_token, session_principal

    token = bearer_token(authorization)
    if token is not None:
        if hmac.compare_digest(token.encode(), ctx.admin_token.encode()):
            return Principal(ADMIN_TOKEN_NAME, Role.ADMIN, "token"), ""
        principal = principal_of_token(ctx.ledger, token)
        return (principal, "") if principal is not None else None
    if session_id:
        return session_principal(ctx.ledger, session_id)
    return None


async def principal_of(request: Request) -> tuple[Principal, str] | None:
    """The principal of *request* (and its CSRF token), looked up once per request."""
    if hasattr(request.state, "principal"):
        cached: tuple[Principal, str] | None = request.state.principal
        return cached
    found = await run_in_threadpool(authenticate, _context(request), request.headers.get("authorization"),
                                    request.cookies.get(SESSION_COOKIE))
    request.state.principal = found
    if found is not None:
        request.state.csrf_token = found[1]
    return found


async def _csrf_ok(request: Request, expected: str) -> bool:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            value = (await request.form()).get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    return sent is not None and bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


class RoleCheck:
    """The dependency :func:`requires` builds; ``roles`` is what the route declares (read by the role tests)."""

    def __init__(self, roles: tuple[Role, ...]) -> None:
        self.roles = roles

    def __repr__(self) -> str:
        return f"requires({', '.join(r.value for r in self.roles)})"

    async def __call__(self, request: Request) -> Principal:
        found = await principal_of(request)
        if found is None:
            if is_page(request.url.path):
                raise LoginRedirect(request.url.path)
            raise HTTPException(status_code=401, detail="sign in or send Authorization: Bearer <API token>",
                                headers={"WWW-Authenticate": "Bearer"})
        principal, csrf = found
        if not principal.has(*self.roles):
            detail = f"{principal.role.value} may not do this (needs {' or '.join(r.value for r in self.roles)})"
            if is_page(request.url.path):
                raise PageForbidden(principal, detail)
            raise HTTPException(status_code=403, detail=detail)
        if principal.via == "session" and request.method in WRITE_METHODS and not await _csrf_ok(request, csrf):
            raise HTTPException(status_code=403, detail="CSRF token missing or wrong: reload the page")
        return principal


class OpenUnless(RoleCheck):
    """A role check that lets everyone in while the ``[http]`` setting *open_setting* is true (``/health``,
    ``/metrics``); the principal is then None."""

    def __init__(self, open_setting: str, roles: tuple[Role, ...]) -> None:
        super().__init__(roles)
        self.open_setting = open_setting

    def __repr__(self) -> str:
        return f"open while [http] {self.open_setting}, else {super().__repr__()}"

    async def __call__(self, request: Request) -> Principal | None:  # type: ignore[override]
        if getattr(_context(request).config.http, self.open_setting):
            return None
        return await super().__call__(request)


def open_unless(open_setting: str, *roles: Role) -> Any:
    """Like :func:`requires`, but open to all while ``[http] <open_setting>`` is true. Use as
    ``principal: Annotated[Principal | None, open_unless("open_health")]``."""
    return Depends(OpenUnless(open_setting, roles or ALL_ROLES))


def requires(*roles: Role) -> Any:
    """A FastAPI dependency admitting *roles* (and admin); no roles: any signed-in principal. Use as
    ``principal: Annotated[Principal, requires(Role.RADIOLOGIST)]``."""
    return Depends(RoleCheck(roles or ALL_ROLES))


def role_check_of(call: object) -> RoleCheck | None:
    """The :class:`RoleCheck` a dependency callable is, or None (for walking a route's dependencies)."""
    return call if isinstance(call, RoleCheck) else None
