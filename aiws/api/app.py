"""The FastAPI application; routes live in :mod:`aiws.api.routes`, one module per resource."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import cookie_parser

import aiws.api.routes.console_auth as console_auth
from aiws import __version__
from aiws.api.auth import SESSION_COOKIE, PageForbidden, authenticate
from aiws.api.console import forbidden_page
from aiws.api.deps import ApiContext
from aiws.api.limits import LimitSettings, RequestLimits, protected_routes
from aiws.api.routes import (
    actions,
    config,
    console_models,
    console_network,
    console_ops,
    console_plugins,
    health,
    models,
    plugins,
    rules,
    studies,
    web,
)
from aiws.api.security import SecurityHeaders
from aiws.errors import ConfigError, Conflict, NotFound


def create_app(ctx: ApiContext) -> FastAPI:
    """Build the application around an already-built context (never at import time).

    Requests pass :class:`aiws.api.limits.RequestLimits` first (admin token before the body, body size while
    streaming, JSON depth)."""
    app = FastAPI(title="AIWS", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = ctx
    modules: tuple[ModuleType, ...] = (health, studies, config, plugins, web)
    modules = (*modules, console_auth)
    modules = (*modules, actions, console_ops)
    modules = (*modules, rules)
    modules = (*modules, console_network)
    modules = (*modules, models, console_models)
    modules = (*modules, console_plugins)
    for module in modules:
        app.include_router(module.router)
    limits = LimitSettings(body_bytes_by_prefix=((plugins.router.prefix, plugins.MAX_BODY_BYTES),
                                                 (rules.TEST_PATH, rules.MAX_UPLOAD_BYTES),
                                                 (console_network.TEST_PATH, rules.MAX_UPLOAD_BYTES),
                                                 (console_plugins.router.prefix, plugins.MAX_BODY_BYTES)))
    app.add_middleware(RequestLimits, settings=limits, credentials_ok=_credentials_checker(ctx),
                       protected=protected_routes([route for m in modules for route in m.router.routes]))
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.add_middleware(SecurityHeaders, https=ctx.config.http.https)
    if ctx.config.http.trusted_hosts:  # outermost: a wrong Host header answers 400 before anything else
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(ctx.config.http.trusted_hosts))

    app.add_exception_handler(PageForbidden, forbidden_page)

    @app.exception_handler(RequestValidationError)
    def _unprocessable(request: Request, exc: RequestValidationError) -> JSONResponse:
        # where and which rule, never the value sent back (it may be long, or patient data)
        errors = [{k: e[k] for k in ("type", "loc", "msg") if k in e} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(NotFound)
    def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    def _conflict(request: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(ConfigError)
    def _invalid(request: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    return app


def _credentials_checker(ctx: ApiContext) -> Callable[[dict[bytes, bytes]], bool]:
    """Whether request headers carry a valid API token or session (for :class:`RequestLimits`, before the body)."""
    def credentials_ok(headers: dict[bytes, bytes]) -> bool:
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        session = cookie_parser(headers.get(b"cookie", b"").decode("latin-1")).get(SESSION_COOKIE)
        return authenticate(ctx, authorization, session) is not None
    return credentials_ok
