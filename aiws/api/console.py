"""Rendering console pages: :func:`render` and :func:`flash_redirect`.

Templates live in ``aiws/api/templates/`` (package data), extend ``console/base.html`` and fill
``{% block title %}`` and ``{% block content %}``. Autoescaping is on for every template. Every form carries
``<input type="hidden" name="csrf_token" value="{{ csrf_token }}">``.

Console pages are served with a Content-Security-Policy that allows nothing from another origin and
no inline script (``script-src 'self'``): JavaScript goes into a file under ``aiws/api/static/``
(served at ``/static``), styles into the stylesheet or a ``style`` attribute.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from aiws import __version__
from aiws.api.auth import PageForbidden, Principal, Role

FLASH_COOKIE = "aiws_flash"
_A, _R, _M, _C = Role.ADMIN, Role.RADIOLOGIST, Role.ML_ENGINEER, Role.CLINICIAN


@dataclass(frozen=True)
class NavLink:
    label: str
    href: str
    roles: tuple[Role, ...]


#: The navigation of every page; a link is shown to the roles that may open it (admin sees all).
NAVIGATION: tuple[NavLink, ...] = (
    NavLink("Dashboard", "/console/", (_R, _M)),
    NavLink("Network", "/console/network", (_A,)),
    NavLink("Rules", "/console/rules", (_A,)),
    NavLink("Models", "/console/models", (_R, _M)),
    NavLink("Plugins", "/console/plugins", (_C,)),
    NavLink("Audit", "/console/audit", (_A,)),
    NavLink("Users", "/console/users", (_A,)),
    NavLink("API", "/docs", (_A, _R, _M, _C)),
    NavLink("Account", "/console/account", (_A, _R, _M, _C)),
)


@lru_cache(maxsize=1)
def templates() -> jinja2.Environment:
    """The template environment, built at the first page (never at import); autoescape on for every template."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("aiws.api", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["ts"] = format_time
    return env


def format_time(t: float | None) -> str:
    """Seconds since the epoch as local ``YYYY-MM-DD HH:MM:SS`` ("" for None)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def navigation(principal: Principal | None) -> list[NavLink]:
    if principal is None:
        return []
    return [link for link in NAVIGATION if principal.has(*link.roles)]


def render(request: Request, template: str, principal: Principal | None, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    """Render *template* with *context* plus ``principal``, ``csrf_token``, ``nav``, ``flash``, ``path`` and
    ``version``; a flash message left by :func:`flash_redirect` is shown once."""
    flash = request.cookies.get(FLASH_COOKIE)
    html = templates().get_template(template).render(
        principal=principal, csrf_token=getattr(request.state, "csrf_token", ""), nav=navigation(principal),
        flash=unquote(flash)[:500] if flash else None, path=request.url.path, version=__version__, **context)
    response = HTMLResponse(html, status_code=status_code)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/console")
    return response


def home(principal: Principal) -> str:
    """The first page of the navigation *principal* may open (where a login without ``next`` lands)."""
    links = navigation(principal)
    return links[0].href if links else "/console/account"


def forbidden_page(request: Request, exc: Exception) -> Response:
    """The 403 of a console page (:class:`aiws.api.auth.PageForbidden`): a page with the navigation."""
    principal = exc.principal if isinstance(exc, PageForbidden) else None
    detail = exc.detail if isinstance(exc, PageForbidden) else "forbidden"
    return render(request, "console/forbidden.html", principal, status_code=403, detail=detail)


def flash_redirect(url: str, message: str) -> RedirectResponse:
    """303 to *url* (post/redirect/get) with *message* shown once on the next page."""
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(FLASH_COOKIE, quote(message[:500]), max_age=60, path="/console", httponly=True,
                        samesite="strict")
    return response
