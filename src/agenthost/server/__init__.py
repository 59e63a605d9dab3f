"""The HTTP server: ``create_app(settings)`` builds a FastAPI app around one Host.

Extending it: a router module defines ``router = APIRouter()`` and is listed in
``agenthost.server.app.ROUTE_MODULES``. Handlers get the Host and the caller
through dependencies (see :mod:`agenthost.server.deps`)::

    from agenthost.server.deps import AdminIdentity, CurrentHost, CurrentIdentity

    async def handler(host: CurrentHost, identity: CurrentIdentity) -> ...:
        who = identity.principal(body.user_id)   # tenant and user to act for
        result = await host.run(text, tenant_id=who.tenant_id, user_id=who.user_id)

Raise the agenthost exceptions (``NotFound``, ``InvalidInput``, ...): they become
JSON errors with the right status in :mod:`agenthost.server.errors`. For
streaming, ``agenthost.server.sse.event_stream(events, encode=...)`` starts a
turn's events (so start-up errors keep their status) and streams the rest.
"""

from agenthost.extras import require

require("server", "the HTTP server")  # before anything below imports fastapi

from agenthost.bootstrap import build_host  # noqa: E402
from agenthost.server.app import create_app  # noqa: E402
from agenthost.server.auth import Identity, Principal  # noqa: E402

__all__ = ["Identity", "Principal", "build_host", "create_app"]
