"""Per-session model configuration: validated once, stored with the session."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from agenthost.errors import InvalidInput
from agenthost.models.base import ModelSettings

RESERVED_AGENT_KEY = "agent"
"""Holds the session's active agent (see ``agenthost.agents``); never set by a client."""

_NUMBER_LIMITS: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
}


def validate_config(config: object, *, allowed_models: Collection[str]) -> dict[str, Any]:
    """Return a clean copy of a session config or raise ``InvalidInput`` naming the field.

    Keys: ``model`` (a name on the server's allow-list), ``temperature`` (0-2),
    ``top_p`` (0-1), ``max_tokens`` (1-1,000,000). ``None`` removes a key.
    """
    if not isinstance(config, dict):
        raise InvalidInput("config must be a JSON object", field="config")
    clean: dict[str, Any] = {}
    for name, value in config.items():
        field = f"config.{name}"
        if name == RESERVED_AGENT_KEY:
            raise InvalidInput(
                "config.agent is kept by the server (the session's active agent): name the "
                "agent of a turn instead (POST /v1/agents/{agent}/chat)",
                field=field,
            )
        if value is None:
            clean[name] = None
        elif name == "model":
            if not isinstance(value, str) or value not in allowed_models:
                allowed = ", ".join(sorted(allowed_models))
                raise InvalidInput(
                    f"model {value!r} is not allowed on this server; allowed: {allowed}",
                    field=field,
                )
            clean[name] = value
        elif name in _NUMBER_LIMITS:
            low, high = _NUMBER_LIMITS[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(f"{field} must be a number", field=field)
            if not low <= value <= high:
                raise InvalidInput(f"{field} must be between {low} and {high}", field=field)
            clean[name] = float(value)
        elif name == "max_tokens":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
                raise InvalidInput(f"{field} must be an integer from 1 to 1000000", field=field)
            clean[name] = value
        else:
            raise InvalidInput(
                f"unknown config key {name!r}; known: model, temperature, top_p, max_tokens",
                field=field,
            )
    return clean


def merge_config(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def model_settings(config: dict[str, Any]) -> ModelSettings:
    if not config:
        return _DEFAULT_SETTINGS
    return ModelSettings(
        temperature=config.get("temperature"),
        max_tokens=config.get("max_tokens"),
        top_p=config.get("top_p"),
    )


_DEFAULT_SETTINGS = ModelSettings()


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch: objects merge recursively, ``None`` deletes a key."""
    result = dict(target)
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        elif isinstance(value, dict) and isinstance(result.get(name), dict):
            result[name] = merge_patch(result[name], value)
        else:
            result[name] = value
    return result


MAX_JSON_DEPTH = 32
_INT64 = 2**63


def check_storable(value: Any, field: str, *, _depth: int = 0) -> None:
    """Raise ``InvalidInput`` for JSON every store cannot round-trip.

    That is: nesting deeper than ``MAX_JSON_DEPTH``, integers outside 64 bits, NaN or
    infinity, and anything that is not JSON at all.
    """
    if _depth > MAX_JSON_DEPTH:
        raise InvalidInput(f"{field} is nested deeper than {MAX_JSON_DEPTH} levels", field=field)
    if isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                raise InvalidInput(f"{field} has a key that is not a string", field=field)
            check_storable(item, field, _depth=_depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            check_storable(item, field, _depth=_depth + 1)
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        return
    elif isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise InvalidInput(f"{field} has an integer outside the 64-bit range", field=field)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"{field} has a number that is not finite", field=field)
    else:
        raise InvalidInput(f"{field} has a {type(value).__name__}, which is not JSON", field=field)
