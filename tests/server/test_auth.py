"""``agenthost.server.auth``, JWT mode (HS256 and RS256): signature, expiry, tenant claim, admin
scope (API keys: test_server_auth_matrix)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from serverkit import make_app

from agenthost.settings import Settings

SECRET = "test-secret-with-enough-length-for-hs256"


def rsa_pair() -> tuple[Any, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


PRIVATE, PUBLIC = rsa_pair()
OTHER_PRIVATE, _ = rsa_pair()


def token(key: Any = SECRET, algorithm: str = "HS256", **claims: Any) -> dict[str, str]:
    # made when the tests are collected: valid long enough for a whole suite run to reach them
    payload = {"sub": "alice", "tenant": "acme", "exp": int(time.time()) + 6 * 3600, **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    return {"Authorization": "Bearer " + jwt.encode(payload, key, algorithm=algorithm)}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.load(
        {
            "store": "memory://",
            "model": "offline",
            "auth": "jwt",
            "jwt_secret": SECRET,
            "jwt_public_key": PUBLIC,
            "jwt_audience": None,
        }
    )
    app = make_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as c:
        yield c
    await app.state.host.close()


@pytest.mark.parametrize(("name", "key"), [("HS256", SECRET), ("RS256", PRIVATE)])
async def test_valid_tokens_reach_their_own_sessions(
    client: httpx.AsyncClient, name: str, key: Any
) -> None:
    headers = token(key, name)  # made now: a token made at collection may have expired
    body = {"message": "My name is Alice", "session_id": name}
    assert (await client.post("/v1/chat", json=body, headers=headers)).status_code == 200
    session = (await client.get(f"/v1/sessions/{name}", headers=headers)).json()
    assert (session["tenant_id"], session["user_id"]) == ("acme", "alice")
    bob = token(sub="bob")
    assert (await client.get(f"/v1/sessions/{name}", headers=bob)).status_code == 404
    other_tenant = token(tenant="other")
    assert (await client.get(f"/v1/sessions/{name}", headers=other_tenant)).status_code == 404


@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("expired", token(exp=int(time.time()) - 60)),
        ("no expiry", token(exp=None)),
        ("no subject", token(sub=None)),
        ("wrong secret", token("another-secret-of-sufficient-length!!")),
        ("wrong RSA key", token(OTHER_PRIVATE, "RS256")),
        ("unsigned", {"Authorization": "Bearer " + jwt.encode({"sub": "a"}, None, "none")}),
        ("garbage", {"Authorization": "Bearer not.a.token"}),
        ("missing", {}),
    ],
)
async def test_bad_tokens_are_401(
    client: httpx.AsyncClient, case: str, headers: dict[str, str]
) -> None:
    response = await client.get("/v1/sessions", headers=headers)
    assert response.status_code == 401, case
    assert response.json()["error"]["code"] == "unauthorized"


async def test_public_key_cannot_be_used_as_an_hs256_secret(client: httpx.AsyncClient) -> None:
    """The classic algorithm-confusion attack: HS256 "signed" with the RSA public key."""

    def part(data: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")

    claims = {"sub": "alice", "tenant": "acme", "exp": int(time.time()) + 60}
    signing_input = part({"alg": "HS256", "typ": "JWT"}) + b"." + part(claims)
    mac = hmac.new(PUBLIC.encode(), signing_input, hashlib.sha256).digest()
    forged = signing_input + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")
    headers = {"Authorization": "Bearer " + forged.decode()}
    assert (await client.get("/v1/sessions", headers=headers)).status_code == 401


async def test_admin_scope_opens_admin_routes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/admin/stats", headers=token())).status_code == 403
    for claims in ({"scope": "read admin"}, {"scp": ["admin"]}):
        admin = token(**claims)
        assert (await client.get("/v1/admin/stats", headers=admin)).status_code == 200


async def test_missing_tenant_claim_means_the_default_tenant(client: httpx.AsyncClient) -> None:
    headers = token(tenant=None)
    await client.post("/v1/chat", json={"message": "hi"}, headers=headers)
    [session] = (await client.get("/v1/sessions", headers=headers)).json()["sessions"]
    assert session["tenant_id"] == "default"


async def test_audience_is_checked_when_configured() -> None:
    settings = Settings.load(
        {"store": "memory://", "auth": "jwt", "jwt_secret": SECRET, "jwt_audience": "agenthost"}
    )
    app = make_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        good = await c.get("/v1/sessions", headers=token(aud="agenthost"))
        wrong = await c.get("/v1/sessions", headers=token(aud="someone-else"))
        missing = await c.get("/v1/sessions", headers=token())
    assert (good.status_code, wrong.status_code, missing.status_code) == (200, 401, 401)
