"""The FastAPI application; routes live in :mod:`aiws.api.routes`, one module per resource."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from aiws import __version__
from aiws.api.deps import ApiContext
from aiws.api.routes import config, health, plugins, studies, web
from aiws.errors import ConfigError, Conflict, NotFound


def create_app(ctx: ApiContext) -> FastAPI:
    """Build the application around an already-built context (never at import time)."""
    app = FastAPI(title="AIWS", version=__version__)
    app.state.ctx = ctx
    for module in (health, studies, config, plugins, web):
        app.include_router(module.router)

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
