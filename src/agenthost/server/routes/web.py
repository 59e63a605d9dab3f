"""The web console: ``GET /`` (playground), ``GET /dashboard`` and their static assets,
plus ``GET /v1/config``, the one read the console needs beyond the session API.

The pages are plain files shipped in ``agenthost/server/static`` (no build step,
nothing from a CDN) and talk to the server only through the public HTTP API, with
URLs relative to the page so they keep working under a path prefix. A strict
Content-Security-Policy (scripts and styles from this origin only, no inline
code) backs up the console's own rule that model output is never parsed as HTML.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from starlette.responses import Response

from agenthost.errors import NotFound
from agenthost.server.deps import CurrentHost, CurrentIdentity, CurrentSettings
from agenthost.server.schemas import ERRORS

router = APIRouter()

ASSET_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
PAGE_TYPE = "text/html; charset=utf-8"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _read(name: str) -> bytes:
    return files("agenthost.server").joinpath("static", name).read_bytes()


def _file(name: str, media_type: str) -> Response:
    return Response(_read(name), media_type=media_type, headers=SECURITY_HEADERS)


@router.get("/", include_in_schema=False)
async def playground() -> Response:
    return _file("index.html", PAGE_TYPE)


@router.get("/dashboard", include_in_schema=False)
async def dashboard() -> Response:
    return _file("dashboard.html", PAGE_TYPE)


@router.get("/console/{name}", include_in_schema=False)
async def asset(name: str = Path(max_length=64, pattern=r"^[a-z][a-z0-9-]*\.[a-z]+$")) -> Response:
    media_type = ASSET_TYPES.get(name[name.rfind(".") :])
    try:
        if media_type is None:
            raise FileNotFoundError(name)
        return _file(name, media_type)
    except (FileNotFoundError, IsADirectoryError):
        raise NotFound(f"no console asset {name!r}") from None


class ServerConfig(BaseModel):
    agent: str = Field(description="The served (default) agent")
    auth: str = Field(description="Auth mode: none, api-keys or jwt")
    default_model: str
    models: list[str] = Field(description="Models a session may choose (the allow-list)")
    config_keys: list[str] = Field(description="Keys a session config may set")


@router.get(
    "/v1/config",
    response_model=ServerConfig,
    responses=ERRORS,
    tags=["sessions"],
    summary="What a client may configure per session: the model allow-list and config keys",
)
async def server_config(
    host: CurrentHost, identity: CurrentIdentity, settings: CurrentSettings
) -> dict[str, Any]:
    default = host.default_model
    return {
        "agent": host.agent.name,
        "auth": settings.auth,
        "default_model": default,
        "models": [default, *sorted(m for m in host.allowed_models if m != default)],
        "config_keys": ["model", "temperature", "top_p", "max_tokens"],
    }
