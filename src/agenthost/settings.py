"""Server settings: CLI flags > ``AGENTHOST_*`` environment variables > ``agenthost.toml``.

:meth:`Settings.load` builds the one settings object every entry point uses
(``agenthost serve``, ``chat``, ``sessions``, the ASGI factory of worker
processes). ``masked()`` is what gets logged: secrets never are.

TOML keys are the field names; API keys may be a list of ``"key:tenant:user"``
strings or a table::

    store = "sqlite:///agenthost.db"
    auth = "api-keys"

    [api_keys]
    "sk-alice" = "acme:alice"      # tenant:user
    "sk-support" = "acme:*"        # a service key for tenant acme
    "sk-ops" = "acme:!admin"       # an admin key

Several agents (see :mod:`agenthost.agents`) and named providers (see
:mod:`agenthost.models.providers`)::

    default_agent = "triage"

    [agents.triage]
    model = "deepseek:deepseek-chat"
    instructions = "Find out what the user needs and hand them to the right agent."
    handoffs = ["billing"]

    [agents.billing]
    model = "openai:gpt-4o-mini"
    fallback_models = ["deepseek:deepseek-chat"]
    tools = ["myapp.tools:refund"]

    [providers.deepseek]
    base_url = "https://api.deepseek.com"
    api_key_env = "DEEPSEEK_API_KEY"

MCP tool servers (see :mod:`agenthost.mcp`) of an agent of ``[agents.<name>]``, or
as ``[mcp.<name>]`` of the one agent served without ``agents``::

    [agents.billing.mcp.tickets]
    url = "https://tickets.example/mcp"
    headers_from = "myapp.auth:ticket_headers"
    tools = ["search", "create"]
"""

from __future__ import annotations

import contextvars
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agenthost.errors import ConfigError
from agenthost.quotas.config import QuotaSettings
from agenthost.urls import redact

SERVICE_USER = "*"
ADMIN_USER = "!admin"
DEFAULT_TOML = "agenthost.toml"
SETTINGS_ENV = "AGENTHOST_SERVE_SETTINGS"
"""Where ``agenthost serve --workers N`` hands the effective settings to worker processes."""

CLI_FLAGS = (
    "host",
    "port",
    "workers",
    "store",
    "model",
    "models",
    "model_timeout",
    "agent",
    "agents",
    "default_agent",
    "fallback_models",
    "model_retries",
    "model_retry_budget",
    "auth",
    "policy",
    "max_live_sessions",
    "session_ttl",
    "cleanup_interval",
    "session_retention",
    "turn_timeout",
    "max_body_bytes",
    "history_window",
    "memory",
    "compaction",
    "coordination",
    "on_disconnect",
    "idempotency_ttl",
    "run_events_retention",
    "run_poll_interval",
    "jwt_public_key",
    "jwt_tenant_claim",
    "jwt_audience",
    "log_level",
    "cors_origins",
    "cors_max_age",
    "root_path",
    "forwarded_allow_ips",
)
"""Settings that ``agenthost serve`` also takes as flags (``--max-live-sessions``)."""
_SECRETS = ("api_keys", "jwt_secret", "jwt_public_key")

_toml_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "agenthost_toml_file", default=None
)


def default_model() -> str:
    """``openai:<$AGENTHOST_OPENAI_MODEL or gpt-4o-mini>`` if OpenAI is configured, else offline."""
    if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        return "openai:" + (os.environ.get("AGENTHOST_OPENAI_MODEL") or "gpt-4o-mini")
    return "offline"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One API key: the secret, its tenant and its user (``*`` service, ``!admin`` admin)."""

    secret: str = field(repr=False)
    tenant_id: str
    user: str

    def entry(self) -> str:
        return f"{self.secret}:{self.tenant_id}:{self.user}"

    def masked(self) -> str:
        return f"***:{self.tenant_id}:{self.user}"


def parse_api_key(entry: str, *, secret: str | None = None) -> ApiKey:
    """``key:tenant:user`` (or ``tenant:user`` with the key given apart, as in TOML tables)."""
    parts = entry.strip().rsplit(":", 2 if secret is None else 1)
    if secret is not None:
        parts = [secret, *parts]
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise ValueError("an API key entry must look like key:tenant:user")
    key, tenant, user = (p.strip() for p in parts)
    return ApiKey(key, tenant, user)


def _split(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


_ROOT_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")


def _origin(value: str) -> str:
    """A CORS origin as browsers send it (``https://app.example.com[:port]``), or ``*``."""
    origin = value.strip().rstrip("/").lower()
    if origin == "*":
        return origin
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
        raise ValueError(
            f"cors_origins: {value!r} is not an origin; write scheme://host[:port], e.g. "
            "https://app.example.com (no path)"
        )
    try:
        parts.port  # noqa: B018 (raises for a port that is not a number)
    except ValueError:
        raise ValueError(f"cors_origins: {value!r} has a bad port") from None
    return origin


def _mask_url(url: str | None) -> str | None:
    return redact(url) if url else url


class AgentTable(BaseModel):
    """One ``[agents.<name>]`` table: an agent defined without Python (tools are import paths)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(None, description="provider:model (default: the model setting)")
    instructions: str | None = None
    description: str = ""
    tools: list[str] = Field(default_factory=list, description="'module:function' of each tool")
    handoffs: list[str] = Field(default_factory=list, description="agents it may hand off to")
    fallback_models: list[str] = Field(default_factory=list)
    history_window: int | None = Field(None, ge=1)
    max_steps: int | None = Field(None, ge=1)
    mcp: dict[str, MCPServerTable] = Field(
        default_factory=dict, description="its MCP tool servers: [agents.<name>.mcp.<server>]"
    )


class MCPServerTable(BaseModel):
    """One ``[agents.<name>.mcp.<server>]`` (or ``[mcp.<server>]``) table: an MCP server.

    The fields are :class:`agenthost.mcp.MCPSource`'s (unset ones keep its
    defaults); ``headers_from`` is the import path of its credential provider.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    command: list[str] | None = None
    env: dict[str, str] | None = None
    cwd: str | None = None
    headers_from: str | None = None
    tools: list[str] | None = None
    prefix: str | None = None
    requires_approval: bool | list[str] | None = None
    timeout: float | None = None
    connect_timeout: float | None = None
    list_ttl: float | None = None
    max_connections: int | None = None
    max_concurrency: int | None = None
    idle_timeout: float | None = None
    protocol: str | None = None


class ProviderTable(BaseModel):
    """One ``[providers.<name>]`` table: an endpoint and the variable holding its key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["openai", "anthropic"] = "openai"
    base_url: str | None = None
    api_key_env: str | None = None
    timeout: float | None = Field(None, gt=0, description="default: the model_timeout setting")


class Settings(BaseSettings):
    """Everything ``agenthost serve`` can be told. Field names are also the TOML keys."""

    model_config = SettingsConfigDict(
        env_prefix="AGENTHOST_", extra="ignore", validate_default=True, frozen=True
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=256)
    store: str = "sqlite:///agenthost.db"
    model: str = Field(default_factory=default_model)
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="models sessions may choose besides the default"
    )
    agent: str | None = Field(
        None, description="import path 'module:attribute' of an Agent (or a function making one)"
    )
    agents: str | dict[str, AgentTable] | None = Field(
        None,
        description="several agents: 'module:attribute' (a list, dict or factory of Agents) "
        "or [agents.<name>] tables",
    )
    default_agent: str | None = Field(None, description="the agent of routes that name none")
    providers: dict[str, ProviderTable] = Field(default_factory=dict)
    fallback_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="models tried when the default agent's model fails"
    )
    model_timeout: float = Field(
        30.0,
        gt=0,
        description="seconds a provider may take to connect or to send the next part of a "
        "reply, per attempt (a [providers.<name>] timeout overrides it)",
    )
    model_retries: int = Field(2, ge=0, le=10, description="retries of a failing model call")
    model_retry_budget: float = Field(
        30.0, gt=0, description="seconds one model may take, retries included, before failover"
    )
    agent_name: str = "agent"
    instructions: str = "You are a helpful assistant."
    history_window: int = Field(20, ge=1)
    memory: Literal["off", "on", "extract"] = Field(
        "off",
        description="the built-in agent's long-term memory: on (recall and tools), "
        "extract (also facts from each turn, after the reply)",
    )
    compaction: bool = Field(False, description="the built-in agent summarises long sessions")
    auth: Literal["none", "api-keys", "jwt"] = "none"
    api_keys: Annotated[list[Any], NoDecode] = Field(default_factory=list)
    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = Field(None, description="RS256 public key: PEM text or a path")
    jwt_tenant_claim: str = "tenant"
    jwt_audience: str | None = None
    max_body_bytes: int = Field(1 << 20, ge=1)
    policy: Literal["queue", "reject"] = "queue"
    max_live_sessions: int = Field(10_000, ge=1)
    session_ttl: float | None = Field(3600.0, gt=0)
    cleanup_interval: float | None = Field(300.0, gt=0)
    session_retention: float | None = Field(None, gt=0)
    turn_timeout: float | None = Field(
        300.0, gt=0, description="seconds a turn may take, model and tools together"
    )
    coordination: str | None = Field(None, description="redis:// URL for cross-process locks")
    on_disconnect: Literal["interrupt", "continue"] = Field(
        "interrupt", description="what a turn does when its streaming client goes away"
    )
    idempotency_ttl: float = Field(86_400.0, gt=0, description="seconds a key is remembered")
    run_events_retention: float = Field(
        3600.0, gt=0, description="seconds a run's events are kept after its last one"
    )
    run_poll_interval: float = Field(
        0.2, gt=0, le=60, description="seconds between reads of a run followed from elsewhere"
    )
    insecure_bind: bool = False
    log_content: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    mcp: dict[str, MCPServerTable] = Field(
        default_factory=dict, description="MCP tool servers of the one agent: [mcp.<server>]"
    )
    # -- behind a front end: browsers on other origins, a reverse proxy, a path prefix --
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="origins whose browser pages may call the API"
    )
    cors_allow_credentials: bool = False
    cors_max_age: int = Field(600, ge=0, le=86_400)
    root_path: str = Field("", description="path prefix the proxy serves the app under")
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="proxies trusted for X-Forwarded-For/-Proto"
    )
    # -- guardrails: quotas ([quotas] table), usage metering, OpenTelemetry traces --------
    quotas: QuotaSettings = QuotaSettings()
    usage: bool = Field(True, description="meter usage per tenant, user, agent, model, day")
    usage_flush_interval: float = Field(1.0, gt=0, description="seconds between usage writes")
    otel: bool = Field(False, description="OpenTelemetry spans (pip install 'agenthost[otel]')")
    otel_content: bool = Field(False, description="put message and tool text on spans")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _cors_origins(cls, value: object) -> object:
        items = _split(value)
        if not isinstance(items, list | tuple):
            return items
        origins = [_origin(str(item)) for item in items]
        if "*" in origins and len(origins) > 1:
            raise ValueError("cors_origins: '*' allows every origin; give it alone or not at all")
        return origins

    @field_validator("root_path", mode="before")
    @classmethod
    def _root_path(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        path = value.strip().rstrip("/")
        if path and (not path.startswith("/") or not _ROOT_PATH.fullmatch(path)):
            raise ValueError(
                f"root_path {value!r} must be a URL path like '/agents': a leading '/', then "
                "letters, digits and -._~/ only"
            )
        return path

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _forwarded_allow_ips(cls, value: object) -> object:
        items = _split(value)
        if not isinstance(items, list | tuple):
            return items
        for item in items:
            if item != "*":
                try:
                    ipaddress.ip_network(str(item), strict=False)
                except ValueError:
                    raise ValueError(
                        f"forwarded_allow_ips: {item!r} is not an IP address, a network "
                        "(10.0.0.0/8) or '*'"
                    ) from None
        return [str(item) for item in items]

    @model_validator(mode="after")
    def _cors_credentials(self) -> Settings:
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError(
                "cors_allow_credentials needs an exact list of cors_origins, not '*': "
                "a credentialed request from any web page would be let through"
            )
        return self

    @field_validator("models", "fallback_models", mode="before")
    @classmethod
    def _models(cls, value: object) -> object:
        return _split(value)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _api_keys(cls, value: object) -> list[ApiKey]:
        if value is None:
            return []
        if isinstance(value, Mapping):
            return [parse_api_key(str(v), secret=str(k)) for k, v in value.items()]
        items = _split(value)
        if not isinstance(items, list | tuple):
            raise ValueError("api_keys must be 'key:tenant:user,...', a list or a table")
        return [i if isinstance(i, ApiKey) else parse_api_key(str(i)) for i in items]

    @field_validator("log_level", "auth", "policy", "on_disconnect", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _toml_file.get()
        if path is None:
            return init_settings, env_settings
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, path)

    @classmethod
    def load(
        cls, overrides: Mapping[str, Any] | None = None, *, config_file: str | Path | None = None
    ) -> Settings:
        """Settings from ``overrides`` (CLI flags; ``None`` values ignored), env, then TOML.

        The TOML file is ``config_file``, else ``$AGENTHOST_CONFIG``, else
        ``./agenthost.toml`` if it exists. A named file that does not exist is an error.
        """
        named = config_file or os.environ.get("AGENTHOST_CONFIG")
        path = Path(named) if named else Path(DEFAULT_TOML)
        if named and not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        token = _toml_file.set(path if path.is_file() else None)
        try:
            values = {k: v for k, v in (overrides or {}).items() if v is not None}
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(describe_errors(exc)) from None
        except ValueError as exc:
            raise ConfigError(f"invalid settings: {exc}") from None
        finally:
            _toml_file.reset(token)

    # -- views ---------------------------------------------------------------------

    def masked(self) -> dict[str, Any]:
        """The effective settings with every secret masked: safe to log."""
        out = self.model_dump(exclude={"api_keys", "jwt_secret", "jwt_public_key"})
        out["api_keys"] = [k.masked() for k in self.api_keys]
        out["jwt_secret"] = "***" if self.jwt_secret else None
        out["jwt_public_key"] = "set" if self.jwt_public_key else None
        out["store"] = _mask_url(self.store)
        out["coordination"] = _mask_url(self.coordination)
        tables = [out["mcp"]]
        if isinstance(out.get("agents"), dict):
            tables += [agent.get("mcp") or {} for agent in out["agents"].values()]
        for servers in tables:  # a stdio server's env may hold its secrets
            for server in servers.values():
                if server.get("env"):
                    server["env"] = dict.fromkeys(server["env"], "***")
        return out

    def __repr__(self) -> str:
        return f"Settings({self.masked()!r})"

    __str__ = __repr__

    def revealed(self) -> dict[str, Any]:
        """Every value in plain form (to hand settings to worker processes); never log it."""
        out = self.model_dump(exclude={"api_keys", "jwt_secret"})
        out["api_keys"] = [k.entry() for k in self.api_keys]
        out["jwt_secret"] = self.jwt_secret.get_secret_value() if self.jwt_secret else None
        return out

    def allowed_models(self) -> list[str]:
        return [self.model, *(m for m in self.models if m != self.model)]

    def check(self) -> None:
        """Raise ``ConfigError`` for combinations that cannot serve safely."""
        if self.auth == "none" and not self.insecure_bind and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to bind {self.host!r} with --auth none: anyone who can reach it "
                "could read every user's sessions. Bind 127.0.0.1, choose --auth api-keys or "
                "--auth jwt, or pass --insecure-bind if you really mean it."
            )
        if self.auth == "none" and "*" in self.cors_origins:
            raise ConfigError(
                "refusing --cors-origins '*' with --auth none: every web page a user of this "
                "machine opens could read and change every session. List the origins of your "
                "web app instead (--cors-origins https://app.example.com)."
            )
        if self.auth == "api-keys" and not self.api_keys:
            raise ConfigError("--auth api-keys needs keys: set AGENTHOST_API_KEYS=key:tenant:user")
        if self.auth == "jwt" and not (self.jwt_secret or self.jwt_public_key):
            raise ConfigError(
                "--auth jwt needs AGENTHOST_JWT_SECRET (HS256) or AGENTHOST_JWT_PUBLIC_KEY (RS256)"
            )
        if self.mcp and self.agents:
            raise ConfigError(
                "[mcp.<server>] tables belong to the one agent served without --agents; with "
                "several agents give each its servers as [agents.<name>.mcp.<server>]"
            )
        if self.agent and self.agents:
            raise ConfigError(
                "both --agent and --agents are set: serve one Agent with --agent, or several "
                "with --agents (or [agents.<name>] tables)"
            )
        if self.quotas.configured:  # counters every worker shares, or a clear refusal
            from agenthost.quotas import choose_backend

            choose_backend(self.store, self.coordination, self.workers)
        if self.workers > 1 and self.store.startswith("memory:"):
            raise ConfigError(
                "--store memory:// keeps sessions inside one process, so with --workers "
                f"{self.workers} each worker would see different sessions; use a sqlite:///, "
                "postgresql:// or redis:// store, or --workers 1"
            )


def describe_errors(exc: ValidationError) -> str:
    """One line for invalid settings, naming each setting and where it can be changed."""
    problems = []
    for error in exc.errors()[:5]:
        path = [str(p) for p in error.get("loc", ())]
        name = path[0] if path else "settings"
        if error.get("type") == "extra_forbidden":
            message = "unknown key"
        else:
            message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            message = message[:1].lower() + message[1:]
        got = error.get("input")
        shown = ""
        if isinstance(got, str | int | float) and name not in _SECRETS:
            shown = f" (got {str(got)[:60]!r})" if isinstance(got, str) else f" (got {got!r})"
        where = [f"--{name.replace('_', '-')}"] if name in CLI_FLAGS else []
        where += [f"AGENTHOST_{name.upper()}", f"{name} in {DEFAULT_TOML}"]
        problems.append(
            f"{'.'.join(path) or name}: {message}{shown}; "
            f"set it with {', '.join(where[:-1])} or {where[-1]}"
        )
    return "invalid setting " + "; ".join(problems)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def settings_from_environment() -> Settings:
    """Settings a worker process received from ``agenthost serve`` (else the usual load)."""
    import json

    data = os.environ.get(SETTINGS_ENV)
    if data:
        return Settings.model_validate(json.loads(data))
    return Settings.load()
