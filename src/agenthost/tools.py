"""Tools: typed Python functions the model may call.

``@tool`` derives a JSON schema from the signature (through pydantic) and the
description from the docstring. A parameter annotated ``ToolContext`` is not
shown to the model; it receives the caller's ids and the session state, which
is how tools stay tenant-aware without any shared "current user".

A :class:`ToolSource` supplies tools that depend on who is calling (an MCP
server reached with each user's own credentials, see :mod:`agenthost.mcp`):
the turn asks each of the agent's sources for the caller's tools once per turn.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, get_type_hints, overload, runtime_checkable

import orjson
import pydantic

from agenthost.errors import ConfigError


@dataclass(slots=True)
class ToolContext:
    """What a tool may know about the turn that called it."""

    tenant_id: str
    user_id: str
    session_id: str
    run_id: str
    state: dict[str, Any] = field(default_factory=dict)


ToolFunction = Callable[..., Any] | Callable[..., Awaitable[Any]]

_ARG_LINE = re.compile(r"^\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its summary and per-argument text."""
    if not doc:
        return "", {}
    text = inspect.cleandoc(doc)
    summary_lines: list[str] = []
    args: dict[str, str] = {}
    in_args = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.lower() in ("args:", "arguments:", "parameters:"):
            in_args = True
            continue
        if in_args:
            if stripped.endswith(":") and not line.startswith((" ", "\t")):
                in_args = False
                continue
            match = _ARG_LINE.match(line)
            if match:
                args[match.group(1)] = match.group(2).strip()
            continue
        summary_lines.append(line)
    return "\n".join(summary_lines).strip(), args


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the model may call.

    ``arguments_model`` validates the model's arguments into keyword arguments of
    ``function``. Without one (:func:`raw_tool`), ``function(arguments, context)``
    receives the arguments as one JSON object: for tools whose schema someone else
    enforces, such as an MCP server's.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    function: ToolFunction
    arguments_model: type[pydantic.BaseModel] | None
    context_param: str | None = None
    requires_approval: bool = False

    def schema(self) -> dict[str, Any]:
        """The tool in the Chat Completions ``tools`` shape."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    async def call(self, arguments: str, context: ToolContext) -> str:
        """Validate ``arguments`` (JSON text), run the function, return its result as text.

        Raises ``ValueError`` for arguments that do not fit the schema; whatever
        the function raises propagates (the turn loop reports it to the model).
        """
        try:
            raw = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"arguments are not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ValueError("arguments must be a JSON object")
        if self.arguments_model is None:
            result = self.function(raw, context)
        else:
            try:
                parsed = self.arguments_model.model_validate(raw)
            except pydantic.ValidationError as exc:
                raise ValueError(f"invalid arguments: {exc.errors(include_url=False)}") from None
            kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
            if self.context_param is not None:
                kwargs[self.context_param] = context
            result = self.function(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result if isinstance(result, str) else orjson.dumps(result, default=str).decode()


def _build(
    function: ToolFunction,
    *,
    name: str | None,
    description: str | None,
    requires_approval: bool,
) -> Tool:
    signature = inspect.signature(function)
    try:
        hints = get_type_hints(function)
    except NameError as exc:
        raise ConfigError(f"tool {function.__name__}: cannot resolve annotations: {exc}") from None
    summary, arg_docs = _parse_docstring(function.__doc__)
    fields: dict[str, Any] = {}
    context_param: str | None = None
    for param in signature.parameters.values():
        annotation = hints.get(param.name, Any)
        if annotation is ToolContext:
            context_param = param.name
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(f"tool {function.__name__}: *args/**kwargs are not supported")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (
            annotation,
            pydantic.Field(default, description=arg_docs.get(param.name)),
        )
    tool_name = name or function.__name__
    model = pydantic.create_model(f"{tool_name}_arguments", **fields)
    parameters = model.model_json_schema()
    parameters.pop("title", None)
    for prop in parameters.get("properties", {}).values():
        prop.pop("title", None)
    return Tool(
        name=tool_name,
        description=description or summary or tool_name,
        parameters=parameters,
        function=function,
        arguments_model=model,
        context_param=context_param,
        requires_approval=requires_approval,
    )


@overload
def tool(function: ToolFunction, /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    requires_approval: bool = False,
) -> Callable[[ToolFunction], Tool]: ...


def tool(
    function: ToolFunction | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    requires_approval: bool = False,
) -> Tool | Callable[[ToolFunction], Tool]:
    """Turn a typed function (sync or async) into a :class:`Tool`.

    Use bare (``@tool``) or with options (``@tool(requires_approval=True)``).
    """
    if function is not None:
        return _build(function, name=None, description=None, requires_approval=False)

    def decorate(fn: ToolFunction) -> Tool:
        return _build(fn, name=name, description=description, requires_approval=requires_approval)

    return decorate


def as_tool(item: Tool | ToolFunction) -> Tool:
    return item if isinstance(item, Tool) else tool(item)


RawToolFunction = Callable[[dict[str, Any], ToolContext], Awaitable[str]]


def raw_tool(
    name: str,
    description: str,
    parameters: dict[str, Any],
    function: RawToolFunction,
    *,
    requires_approval: bool = False,
) -> Tool:
    """A tool with a given JSON schema whose function takes ``(arguments, context)``."""
    return Tool(name, description, parameters, function, None, None, requires_approval)


@runtime_checkable
class ToolSource(Protocol):
    """Tools that depend on the caller, resolved once per turn (e.g. an MCP server).

    ``tools_for`` must not raise for a source that is down: it returns what it can
    (its last known tools, or none) so the turn and the other tools go on.
    """

    @property
    def name(self) -> str: ...

    async def tools_for(self, context: ToolContext) -> Sequence[Tool]: ...

    def stats(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...
