"""Dependencies shared by the routes: the application context and the admin check."""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from aiws.config import Config
from aiws.ledger import Ledger
from aiws.netconfig import NetworkStore
from pacs_bridge.settings import SenderSettings


@dataclass(frozen=True)
class ApiContext:
    """What the routes need; built once by the service and kept in ``app.state.ctx``."""

    config: Config
    ledger: Ledger
    network: NetworkStore
    admin_token: str
    sender_settings: SenderSettings


def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[ApiContext, Depends(get_context)]


def get_ledger(ctx: ContextDep) -> Ledger:
    return ctx.ledger


LedgerDep = Annotated[Ledger, Depends(get_ledger)]


def require_admin(
    ctx: ContextDep, request: Request, authorization: Annotated[str | None, Header()] = None
) -> str:
    """Check ``Authorization: Bearer <admin token>``; return the actor name for the audit."""
    expected = f"Bearer {ctx.admin_token}"
    if authorization is None or not hmac.compare_digest(authorization.encode(), expected.encode()):
        raise HTTPException(status_code=401, detail="admin token required (Authorization: Bearer …)",
                            headers={"WWW-Authenticate": "Bearer"})
    host = request.client.host if request.client else "?"
    return f"api:{host}"


AdminDep = Annotated[str, Depends(require_admin)]
