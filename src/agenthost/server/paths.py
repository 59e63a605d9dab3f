"""Ids in URL paths: every id the API accepts is reachable, ``/`` and ``%`` included.

A client puts an id in a path percent-encoded (``DELETE /v1/users/team%2Fa``, as
``encodeURIComponent`` and ``urllib.parse.quote(id, safe="")`` write it). ASGI
servers decode the path before routing, which would turn that ``%2F`` into a
separator and the route into a 404. :class:`IdPathMiddleware` therefore gives the
router, for the routes under :data:`PREFIXES`, a path rebuilt from the raw one in
which each segment's own ``%`` and ``/`` stay escaped (``%25``, ``%2F``): a segment
is one path parameter again. The path parameter types below (:data:`SessionPath`,
:data:`UserPath`, ...) undo exactly that escaping and check the id.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import unquote, unquote_to_bytes

from fastapi import Path
from pydantic import AfterValidator
from starlette.types import ASGIApp, Receive, Scope, Send

from agenthost.errors import InvalidId
from agenthost.keys import validate_id

PREFIXES = ("/v1/sessions/", "/v1/users/", "/v1/admin/sessions/")
"""Route paths whose parameters are ids (the routes must use the types below)."""


def _escape(segment: str) -> str:
    return segment.replace("%", "%25").replace("/", "%2F")


def escaped_path(scope: Scope) -> str | None:
    """The path to route on (segments escaped), or None if this path is not an id route."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        head, route = root, path[len(root) :]
    else:
        head, route = "", path
    if not route.startswith(PREFIXES):
        return None
    raw = scope.get("raw_path")
    raw_root = head.encode("latin-1")
    if isinstance(raw, bytes) and raw.startswith(raw_root):
        segments = raw[len(raw_root) :].split(b"/")
        rebuilt = "/".join(
            _escape(unquote_to_bytes(s).decode("utf-8", "replace")) for s in segments
        )
        if unquote(rebuilt) == route:  # the raw path is the path we were given
            return head + rebuilt
    # No usable raw path: slashes inside a segment cannot be told apart, but a '%' can.
    return head + route.replace("%", "%25")


class IdPathMiddleware:
    """Routes :data:`PREFIXES` on the raw path (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            escaped = escaped_path(scope)
            if escaped is not None:
                # in place, as the router's own changes are: the metrics middleware
                # outside reads the matched route from this same scope afterwards
                scope["path"] = escaped
        await self.app(scope, receive, send)


def _path_id(value: str) -> str:
    try:
        return validate_id(unquote(value), "id")
    except InvalidId as exc:  # pydantic adds the parameter's name
        raise ValueError(exc.message.removeprefix("id ")) from None


SessionPath = Annotated[
    str,
    Path(description="A session id, percent-encoded ('/' as %2F)", examples=["s1"]),
    AfterValidator(_path_id),
]
UserPath = Annotated[
    str,
    Path(description="A user id, percent-encoded ('/' as %2F)", examples=["alice"]),
    AfterValidator(_path_id),
]
TenantPath = Annotated[
    str,
    Path(description="A tenant id, percent-encoded ('/' as %2F)", examples=["default"]),
    AfterValidator(_path_id),
]
CallPath = Annotated[
    str,
    Path(description="A tool call id, percent-encoded", examples=["call_1"]),
    AfterValidator(_path_id),
]
