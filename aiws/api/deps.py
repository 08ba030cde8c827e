"""Dependencies shared by the routes: the application context and the admin check."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from aiws.api.auth import Principal, Role, requires
from aiws.config import Config
from aiws.ledger import Ledger
from aiws.netconfig import NetworkStore
from aiws.routestore import RouteStore
from pacs_bridge.settings import SenderSettings


@dataclass(frozen=True)
class ApiContext:
    """What the routes need; built once by the service and kept in ``app.state.ctx``."""

    config: Config
    ledger: Ledger
    network: NetworkStore
    admin_token: str
    sender_settings: SenderSettings
    routes: RouteStore | None = None  # the live routing rules; None: an application built without them (tests)


def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[ApiContext, Depends(get_context)]


def get_ledger(ctx: ContextDep) -> Ledger:
    return ctx.ledger


LedgerDep = Annotated[Ledger, Depends(get_ledger)]


def require_admin(principal: Annotated[Principal, requires(Role.ADMIN)]) -> str:
    """An admin (account or the configured admin token, see :mod:`aiws.api.auth`); returns the audit's actor."""
    return principal.actor


AdminDep = Annotated[str, Depends(require_admin)]
