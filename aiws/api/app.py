"""The FastAPI application; routes live in :mod:`aiws.api.routes`, one module per resource."""
from __future__ import annotations

from fastapi import FastAPI

from aiws import __version__
from aiws.api.deps import ApiContext
from aiws.api.routes import plugins


def create_app(ctx: ApiContext) -> FastAPI:
    """Build the application around an already-built context (never at import time)."""
    app = FastAPI(title="AIWS", version=__version__)
    app.state.ctx = ctx
    for module in (plugins,):
        app.include_router(module.router)
    return app
