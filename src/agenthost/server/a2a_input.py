"""A2A request bodies screened before the a2a-sdk's dispatcher reads them.

The dispatcher answers most bad input itself, but not all of it well: a body
that is not UTF-8, a number too long for Python's ``int``, or JSON nested so
deep that the parser runs out of stack reached it as an unexpected exception
(-32603 with a traceback logged, or an HTTP 500 before it), and its protobuf
parser turns an enum value it does not know into the default instead of
refusing it. So every body is read here first, once:

- not UTF-8, not JSON (``NaN`` and ``Infinity`` included), a number with more
  digits than Python parses, or nesting deeper than :data:`MAX_DEPTH`:
  -32700 parse error (the server could not parse the text);
- a v0.3 request whose params do not validate: -32602 (the SDK says -32600);
- a v1.0 request naming an enum value the protocol does not define: -32602.

Only field paths go back in messages, never the offending input. What passes
is a body the dispatcher parses again without surprises (it is no deeper than
:data:`MAX_DEPTH`), and the client's raw ``data`` parts, so that JSON numbers
reach the agent as the client wrote them (protobuf ``Value`` holds every
number as a double).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from pydantic import ValidationError

MAX_DEPTH = 50
"""Nesting levels of a whole request (objects and arrays). A data part gets about 45 of
them; protobuf refuses a ``Value`` nested about 49 deep, so this limit comes first."""

PARSE_ERROR = -32700
INVALID_PARAMS = -32602
INT32 = (-(2**31), 2**31 - 1)
V03_INT32: dict[str, tuple[tuple[str, ...], ...]] = {
    "tasks/get": (("historyLength",),),
    "message/send": (("configuration", "historyLength"),),
    "message/stream": (("configuration", "historyLength"),),
}
"""The integer fields of v0.3 params, which are int32 in v1.0 (where they are converted)."""
SEND_METHODS = frozenset({"SendMessage", "SendStreamingMessage", "message/send", "message/stream"})


@dataclass(frozen=True, slots=True)
class Screened:
    """A body fit for the dispatcher: the parsed JSON, and its message's data parts as sent."""

    body: Any
    data: dict[int, Any]


def error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def screen(raw: bytes) -> Screened | dict[str, Any]:
    """The parsed body, or the JSON-RPC error response that refuses it."""
    try:
        body = _parse(raw)
    except Unparsable as exc:
        return error(None, PARSE_ERROR, str(exc))
    if not isinstance(body, dict) or body.get("jsonrpc") != "2.0":
        return Screened(body, {})  # the dispatcher's -32600
    request_id = body.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int | None):
        return Screened(body, {})
    method, params = body.get("method"), body.get("params")
    problem = (
        _v03_invalid_params(body)
        or _v10_unknown_enum(method, params)
        or _out_of_range(method, params)
    )
    if problem is not None:
        return error(request_id, INVALID_PARAMS, f"Invalid params: {problem}")
    return Screened(body, _raw_data(method, params))


class Unparsable(ValueError):
    """A body the server cannot parse; the message says why (never echoing the input)."""


def _parse(raw: bytes) -> Any:
    """The JSON value of ``raw``."""
    too_deep = Unparsable(f"the request body nests deeper than {MAX_DEPTH} levels")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unparsable(f"the request body is not valid UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise Unparsable(f"the request body is not valid JSON: {exc.msg} ({where})") from None
    except Unparsable:
        raise
    except ValueError:  # Python refuses integers of more than 4300 digits
        raise Unparsable("the request body has a number too long to parse") from None
    except RecursionError:
        raise too_deep from None
    if _deeper_than(value, MAX_DEPTH):
        raise too_deep
    return value


def _no_constant(name: str) -> Any:
    raise Unparsable(f"the request body is not valid JSON: {name} is not a JSON value")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` has more than ``limit`` levels of objects and arrays (no recursion)."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            below.extend(c for c in children if isinstance(c, dict | list))
        level = below
    return False


def _v03_invalid_params(body: dict[str, Any]) -> str | None:
    """Where a v0.3 request's params fail validation (field locations, never values)."""
    from a2a.compat.v0_3.jsonrpc_adapter import JSONRPC03Adapter  # after the dispatcher: cycle

    model: Any = JSONRPC03Adapter.METHOD_TO_MODEL.get(str(body.get("method")))
    if model is None:
        return None
    try:
        model.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors()
        if not all(e["loc"] and e["loc"][0] == "params" for e in errors):
            return None  # an envelope problem: the dispatcher's -32600
        return "; ".join(".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in errors[:5])
    return None


def _v10_unknown_enum(method: Any, params: Any) -> str | None:
    """The path of the first enum value in a v1.0 request that its enum does not define.

    The dispatcher parses params with ``ignore_unknown_fields`` (for forward
    compatibility), which also turns an unknown enum name into the enum's zero
    value: ``"status": "INVALID_STATUS"`` would filter on nothing.
    """
    model: Any = JsonRpcDispatcher.METHOD_TO_MODEL.get(method) if isinstance(method, str) else None
    if model is None or not isinstance(params, dict):
        return None
    # protobuf descriptors (Descriptor, FieldDescriptor, EnumDescriptor) are Any: no stubs
    pending: list[tuple[dict[str, Any], Any, str]] = [(params, model.DESCRIPTOR, "params")]
    while pending:
        value, descriptor, path = pending.pop()
        for name, item in value.items():
            field = descriptor.fields_by_camelcase_name.get(name) or descriptor.fields_by_name.get(
                name
            )
            if field is None:
                continue  # unknown fields are ignored, as the dispatcher does
            kind, elements = _elements(field, item)
            for suffix, element in elements:
                where = f"{path}.{name}{suffix}"
                if kind.enum_type is not None:
                    if not _enum_value(kind.enum_type, element):
                        return f"{where}: not a {kind.enum_type.name} value"
                elif _structured(kind) and isinstance(element, dict):
                    pending.append((element, kind.message_type, where))
    return None


def _elements(field: Any, value: Any) -> tuple[Any, list[tuple[str, Any]]]:
    """What a field's values are (for a map: its value field) and each value with its path."""
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        items = [(f".{k}", v) for k, v in value.items()] if isinstance(value, dict) else []
        return entry.fields_by_name["value"], items
    if field.is_repeated:
        return field, [(f"[{i}]", v) for i, v in enumerate(value)] if isinstance(
            value, list
        ) else []
    return field, [("", value)]


def _structured(field: Any) -> bool:
    """A message of the protocol; well-known types (Struct, Value, Timestamp) are free JSON."""
    message = field.message_type
    return message is not None and not str(message.full_name).startswith("google.protobuf.")


def _enum_value(enum: Any, value: Any) -> bool:
    if value is None:
        return True  # null: the default, as protobuf's JSON mapping says
    if isinstance(value, str):
        return value in enum.values_by_name
    if isinstance(value, int) and not isinstance(value, bool):
        return value in enum.values_by_number
    return False


def _out_of_range(method: Any, params: Any) -> str | None:
    """The path of a number no field can hold: one a double cannot (not even a protobuf
    ``Value`` carries it), or a v0.3 ``historyLength`` beyond int32 (the v0.3 models take
    any integer; converting it to v1.0's int32 then failed as an internal error)."""
    pending: list[tuple[str, Any]] = [("params", params)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, dict):
            pending.extend((f"{path}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            pending.extend((f"{path}[{i}]", v) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):  # 1e400 parses as inf
            return f"{path}: number out of range"
        elif isinstance(value, int) and not isinstance(value, bool):
            try:
                float(value)
            except OverflowError:
                return f"{path}: number out of range"
    for names in V03_INT32.get(method, ()):
        value = params
        for name in names:
            value = value.get(name) if isinstance(value, dict) else None
        if isinstance(value, int) and not INT32[0] <= value <= INT32[1]:
            return f"params.{'.'.join(names)}: number out of range"
    return None


def _raw_data(method: Any, params: Any) -> dict[int, Any]:
    """The ``data`` of each data part of a send method's message, by part index, as written.

    v1.0 parts are ``{"data": <any JSON>}``, v0.3 parts ``{"kind": "data", "data": {...}}``.
    """
    if method not in SEND_METHODS or not isinstance(params, dict):
        return {}
    message = params.get("message")
    parts = message.get("parts") if isinstance(message, dict) else None
    if not isinstance(parts, list):
        return {}
    return {
        index: part["data"]
        for index, part in enumerate(parts)
        if isinstance(part, dict) and "data" in part and part.get("kind") in (None, "data")
    }
