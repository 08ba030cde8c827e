"""Plugin routes: POST /api/plugins/{name}, GET /api/plugins (filled in by the plugins work)."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/plugins", tags=["plugins"])
