"""The FastAPI application; routes live in :mod:`aiws.api.routes`, one module per resource."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from aiws import __version__
from aiws.api.deps import ApiContext
from aiws.api.limits import LimitSettings, RequestLimits, admin_routes
from aiws.api.routes import config, health, plugins, studies, web
from aiws.errors import ConfigError, Conflict, NotFound


def create_app(ctx: ApiContext) -> FastAPI:
    """Build the application around an already-built context (never at import time).

    Requests pass :class:`aiws.api.limits.RequestLimits` first (admin token before the body, body size while
    streaming, JSON depth)."""
    app = FastAPI(title="AIWS", version=__version__)
    app.state.ctx = ctx
    modules = (health, studies, config, plugins, web)
    for module in modules:
        app.include_router(module.router)
    limits = LimitSettings(body_bytes_by_prefix=((plugins.router.prefix, plugins.MAX_BODY_BYTES),))
    app.add_middleware(RequestLimits, settings=limits, admin_token=ctx.admin_token,
                       protected=admin_routes([route for m in modules for route in m.router.routes]))

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
