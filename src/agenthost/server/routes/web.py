"""``GET /``: a one-file web chat page."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from starlette.responses import HTMLResponse

router = APIRouter()


@router.get("/", include_in_schema=False)
async def index() -> HTMLResponse:
    page = files("agenthost.server").joinpath("static/index.html").read_text(encoding="utf-8")
    return HTMLResponse(page)
