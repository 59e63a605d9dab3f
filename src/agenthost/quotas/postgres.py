"""Quota counters in PostgreSQL, for deployments without Redis: one call per admission.

An admission is one call of the ``quota_admit`` function: it locks the rows of
every scope involved (in a fixed order, so concurrent admissions never
deadlock), drops expired members, checks every limit and, only if all pass,
adds the request to each set, all in the one statement's transaction. Times
are the database's clock. Tables (created on first use, in the URL's
``schema``, unless the URL says ``migrate=false``)::

    quota_sets       (kind, scope) -> members[] with expires[] (epoch seconds)
    quota_tokens     scope of a day -> tokens used (upsert: used = used + n)
    quota_overrides  (tenant_id, user_id; '' for a tenant's own) -> limits JSONB
    quota_versions   'overrides' -> a number bumped by every change of an override

A scope's row is rewritten whole on each admission, so a set stays small:
up to its limit of members (requests of the last minute, running turns, live
sessions). Rows left empty are swept every few minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agenthost.quotas.base import Check, Refusal
from agenthost.quotas.limits import Limits, Overrides, TenantLimits
from agenthost.stores.postgres import (
    LazyPool,
    advisory_key,
    call,
    check_schema,
    parse_url,
    redact,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS quota_sets (
    kind TEXT NOT NULL, scope TEXT NOT NULL,
    members TEXT[] NOT NULL DEFAULT '{}', expires DOUBLE PRECISION[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (kind, scope)
);
CREATE TABLE IF NOT EXISTS quota_tokens (
    scope TEXT PRIMARY KEY, used BIGINT NOT NULL, expires_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS quota_overrides (
    tenant_id TEXT NOT NULL, user_id TEXT NOT NULL, limits JSONB NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE TABLE IF NOT EXISTS quota_versions (name TEXT PRIMARY KEY, version BIGINT NOT NULL);

CREATE OR REPLACE FUNCTION quota_admit(
    p_kinds TEXT[], p_scopes TEXT[], p_caps INT[], p_members TEXT[], p_spans DOUBLE PRECISION[]
) RETURNS DOUBLE PRECISION[] LANGUAGE plpgsql AS $fn$
DECLARE
    now_s DOUBLE PRECISION := extract(epoch FROM clock_timestamp());
    v_members TEXT[];
    v_expires DOUBLE PRECISION[];
    v_used BIGINT;
BEGIN
    INSERT INTO quota_sets (kind, scope)
        SELECT k, s FROM unnest(p_kinds, p_scopes) AS x(k, s) WHERE k <> 'tokens'
        ORDER BY k, s
        ON CONFLICT DO NOTHING;
    PERFORM 1 FROM quota_sets
        WHERE (kind, scope) IN (SELECT k, s FROM unnest(p_kinds, p_scopes) AS x(k, s))
        ORDER BY kind, scope FOR UPDATE;
    FOR i IN 1 .. cardinality(p_kinds) LOOP
        IF p_kinds[i] = 'tokens' THEN
            SELECT used INTO v_used FROM quota_tokens
                WHERE scope = p_scopes[i] AND expires_at > now_s;
            IF coalesce(v_used, 0) >= p_caps[i] THEN
                RETURN ARRAY[i - 1, p_spans[i]];
            END IF;
        ELSE
            UPDATE quota_sets q SET (members, expires) = (
                SELECT coalesce(array_agg(e.m), '{}'), coalesce(array_agg(e.x), '{}')
                FROM unnest(q.members, q.expires) AS e(m, x) WHERE e.x > now_s)
            WHERE kind = p_kinds[i] AND scope = p_scopes[i]
            RETURNING members, expires INTO v_members, v_expires;
            IF NOT FOUND THEN  -- swept since the insert above: start it again
                INSERT INTO quota_sets (kind, scope) VALUES (p_kinds[i], p_scopes[i])
                    ON CONFLICT DO NOTHING;
                v_members := '{}';
                v_expires := '{}';
            END IF;
            IF NOT (p_members[i] = ANY(v_members)) AND cardinality(v_members) >= p_caps[i] THEN
                IF p_kinds[i] = 'turns' THEN
                    RETURN ARRAY[i - 1, 1];
                END IF;
                RETURN ARRAY[i - 1, (SELECT min(x) FROM unnest(v_expires) AS x) - now_s];
            END IF;
        END IF;
    END LOOP;
    FOR i IN 1 .. cardinality(p_kinds) LOOP
        CONTINUE WHEN p_kinds[i] = 'tokens';
        UPDATE quota_sets q SET (members, expires) = (
            SELECT array_agg(z.m), array_agg(z.x) FROM (
                SELECT e.m, e.x FROM unnest(q.members, q.expires) AS e(m, x)
                WHERE e.m <> p_members[i]
                UNION ALL SELECT p_members[i], now_s + p_spans[i]) AS z)
        WHERE kind = p_kinds[i] AND scope = p_scopes[i];
    END LOOP;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION quota_touch(
    p_kinds TEXT[], p_scopes TEXT[], p_members TEXT[], p_spans DOUBLE PRECISION[],
    p_remove BOOLEAN
) RETURNS VOID LANGUAGE plpgsql AS $fn$
DECLARE
    now_s DOUBLE PRECISION := extract(epoch FROM clock_timestamp());
BEGIN
    FOR i IN 1 .. cardinality(p_kinds) LOOP
        UPDATE quota_sets q SET (members, expires) = (
            SELECT coalesce(array_agg(e.m), '{}'),
                   coalesce(array_agg(CASE WHEN e.m = p_members[i] THEN now_s + p_spans[i]
                                           ELSE e.x END), '{}')
            FROM unnest(q.members, q.expires) AS e(m, x)
            WHERE NOT (p_remove AND e.m = p_members[i]))
        WHERE kind = p_kinds[i] AND scope = p_scopes[i] AND p_members[i] = ANY(q.members);
    END LOOP;
END
$fn$;
"""

ADD_TOKENS = """
INSERT INTO quota_tokens AS q (scope, used, expires_at)
SELECT x.s, $2, extract(epoch FROM clock_timestamp()) + x.e
FROM unnest($1::text[], $3::float8[]) AS x(s, e)
ORDER BY x.s
ON CONFLICT (scope) DO UPDATE SET used = q.used + EXCLUDED.used, expires_at = EXCLUDED.expires_at
"""

SWEEP = """
WITH now AS (SELECT extract(epoch FROM clock_timestamp()) AS t),
gone AS (
    DELETE FROM quota_tokens WHERE expires_at < (SELECT t FROM now) RETURNING 1
)
DELETE FROM quota_sets
WHERE coalesce((SELECT max(x) FROM unnest(expires) AS x), 0) < (SELECT t FROM now) - 3600
"""

BUMP = """
INSERT INTO quota_versions (name, version) VALUES ('overrides', 1)
ON CONFLICT (name) DO UPDATE SET version = quota_versions.version + 1
"""


class PostgresQuotaBackend:
    shared = True

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        max_size: int = 4,
        migrate: bool | None = None,
    ) -> None:
        self.dsn, options = parse_url(url)
        self.schema = check_schema(schema if schema is not None else options.get("schema"))
        wanted = options.get("migrate", "true").lower() not in ("0", "false", "no")
        self.migrate = wanted if migrate is None else migrate
        self.max_size = max_size
        self._lazy = LazyPool(
            self.dsn,
            schema=self.schema,
            max_size=max_size,
            setup=self._create if self.migrate else None,
            transaction=True,
        )

    def __repr__(self) -> str:
        return f"PostgresQuotaBackend({redact(self.dsn)!r})"

    async def open(self) -> None:
        await self._lazy.get()

    async def _ensure_pool(self) -> Any:
        return await self._lazy.get()

    async def _create(self, conn: Any) -> None:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", advisory_key(f"quota:{self.schema}"))
        if self.schema:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        await conn.execute(SCHEMA)

    async def close(self) -> None:
        await self._lazy.close()

    async def admit(self, checks: Sequence[Check]) -> Refusal | None:
        pool = await self._ensure_pool()
        args = (
            [c.kind for c in checks],
            [c.scope for c in checks],
            [c.limit for c in checks],
            [c.member for c in checks],
            [c.seconds for c in checks],
        )
        refused = await call(
            pool, lambda conn: conn.fetchval("SELECT quota_admit($1, $2, $3, $4, $5)", *args)
        )
        if refused is None:
            return None
        return Refusal(int(refused[0]), max(0.0, float(refused[1])))

    async def _touch(self, checks: Sequence[Check], remove: bool) -> None:
        pool = await self._ensure_pool()
        args = (
            [c.kind for c in checks],
            [c.scope for c in checks],
            [c.member for c in checks],
            [c.seconds for c in checks],
            remove,
        )
        await call(pool, lambda conn: conn.execute("SELECT quota_touch($1, $2, $3, $4, $5)", *args))

    async def release(self, checks: Sequence[Check]) -> None:
        await self._touch(checks, True)

    async def renew(self, checks: Sequence[Check]) -> None:
        await self._touch(checks, False)

    async def add_tokens(self, checks: Sequence[Check], tokens: int) -> None:
        pool = await self._ensure_pool()
        scopes = [c.scope for c in checks]
        expiries = [c.seconds + 3600 for c in checks]
        await call(pool, lambda conn: conn.execute(ADD_TOKENS, scopes, tokens, expiries))

    async def sweep(self) -> None:
        pool = await self._ensure_pool()
        await call(pool, lambda conn: conn.execute(SWEEP))

    # -- overrides -------------------------------------------------------------------

    async def overrides(self) -> Overrides:
        pool = await self._ensure_pool()
        rows = await call(
            pool, lambda conn: conn.fetch("SELECT tenant_id, user_id, limits FROM quota_overrides")
        )
        tenants: dict[str, TenantLimits] = {}
        users: dict[tuple[str, str], Limits] = {}
        for tenant_id, user_id, limits in rows:
            if user_id == "":
                tenants[tenant_id] = TenantLimits.of(limits)
            else:
                users[(tenant_id, user_id)] = Limits.of(limits)
        return Overrides(tenants, users)

    async def overrides_version(self) -> str:
        pool = await self._ensure_pool()
        version = await call(
            pool,
            lambda conn: conn.fetchval(
                "SELECT version FROM quota_versions WHERE name = 'overrides'"
            ),
        )
        return str(version or 0)

    async def _set(self, tenant_id: str, user_id: str, data: dict[str, Any] | None) -> None:
        pool = await self._ensure_pool()

        async def write(conn: Any) -> None:
            if data is None:
                await conn.execute(
                    "DELETE FROM quota_overrides WHERE tenant_id = $1 AND user_id = $2",
                    tenant_id,
                    user_id,
                )
            else:
                await conn.execute(
                    "INSERT INTO quota_overrides (tenant_id, user_id, limits) VALUES ($1, $2, $3) "
                    "ON CONFLICT (tenant_id, user_id) DO UPDATE SET limits = EXCLUDED.limits",
                    tenant_id,
                    user_id,
                    data,
                )
            await conn.execute(BUMP)

        await call(pool, write, transaction=True)

    async def set_tenant(self, tenant_id: str, limits: TenantLimits | None) -> None:
        await self._set(tenant_id, "", None if limits is None else limits.to_dict())

    async def set_user(self, tenant_id: str, user_id: str, limits: Limits | None) -> None:
        await self._set(tenant_id, user_id, None if limits is None else limits.to_dict())
