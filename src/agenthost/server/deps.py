"""FastAPI dependencies every router uses: the app's Host, its settings, the caller.

A new router gets what it needs by annotation::

    from agenthost.server.deps import CurrentHost, CurrentIdentity

    @router.post("/v1/thing")
    async def thing(host: CurrentHost, identity: CurrentIdentity) -> ...:
        who = identity.principal()          # Principal(tenant_id, user_id), or 401/403
        await host.run("hi", tenant_id=who.tenant_id, user_id=who.user_id)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from agenthost.host import Host
from agenthost.server.auth import AdminIdentity, CurrentIdentity, Identity, Principal
from agenthost.settings import Settings


# ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, a
# thread hop on every request for what is an attribute read.
async def get_host(request: Request) -> Host:
    host: Host = request.app.state.host
    return host


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


CurrentHost = Annotated[Host, Depends(get_host)]
CurrentSettings = Annotated[Settings, Depends(get_settings)]

__all__ = [
    "AdminIdentity",
    "CurrentHost",
    "CurrentIdentity",
    "CurrentSettings",
    "Identity",
    "Principal",
    "get_host",
    "get_settings",
]
