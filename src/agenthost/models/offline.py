"""Deterministic models that need no network: the embedded default and test doubles."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import orjson

from agenthost.messages import Message, ToolCall, Usage
from agenthost.models.base import ModelChunk, ModelReply, ModelRequest, TextChunk, estimate_tokens

_NAME_STATEMENTS = (
    re.compile(r"\bmy name is\s+([^\s,.!?;:]+)", re.IGNORECASE),
    re.compile(r"\bcall me\s+([^\s,.!?;:]+)", re.IGNORECASE),
    re.compile(r"我叫\s*([^\s,.!?;:，。！？]+)"),
    re.compile(r"我的名字是\s*([^\s,.!?;:，。！？]+)"),
    re.compile(r"私の名前は\s*([^\s,.!?;:、。！？]+?)\s*(?:です|だ|$)"),
    re.compile(r"제 이름은\s*([^\s,.!?;:]+?)\s*(?:입니다|이에요|예요|$)"),
)
_EN = ("Your name is {}.", "I don't know your name yet.")
_ZH = ("你的名字是 {}", "我还不知道你的名字。")
_JA = ("あなたの名前は{}です。", "まだお名前を知りません。")
_KO = ("당신의 이름은 {}입니다.", "아직 이름을 모릅니다.")
_NAME_QUESTIONS = tuple(
    (re.compile(pattern, re.IGNORECASE), known, unknown)
    for pattern, (known, unknown) in (
        (r"what(?:'s| is) my name|who am i\b|my name is (?:what|who)\b", _EN),
        (r"(?:do|did) you (?:know|remember) my name", _EN),
        (r"我叫(?:什么|啥)|我的名字(?:是|叫)(?:什么|啥)|我是谁", _ZH),
        (r"私の名前は(?:何|なに|なん)|私は(?:誰|だれ)", _JA),
        (r"제 이름(?:이|은) (?:뭐|무엇)|저는 누구", _KO),
    )
)
_INTERROGATIVES = frozenset({"what", "who", "何"})
_INTERROGATIVE_PREFIXES = ("什么", "啥", "谁", "なに", "なん", "だれ", "誰", "뭐", "무엇", "누구")
"""Never a name, nor the start of one: "我叫什么名字?" asks, it does not tell."""
_TOOL_COMMAND = re.compile(r"^/tool\s+(\w+)\s*(\{.*\})?\s*$", re.DOTALL)
_HANDOFF_COMMAND = re.compile(r"^/handoff\s+([A-Za-z0-9_-]+)\s*$")
_TRANSFER = "transfer_to_"
# The patterns after the first of each group need CJK text: ASCII text skips them.
_ASCII_NAME_STATEMENTS = _NAME_STATEMENTS[:2]
_ASCII_NAME_QUESTIONS = tuple(q for q in _NAME_QUESTIONS if q[0].pattern.isascii())


def _interrogative(word: str) -> bool:
    return word.lower() in _INTERROGATIVES or word.startswith(_INTERROGATIVE_PREFIXES)


def _asks_name(content: str) -> bool:
    questions = _ASCII_NAME_QUESTIONS if content.isascii() else _NAME_QUESTIONS
    return any(pattern.search(content) for pattern, _, _ in questions)


def _stated_name(content: str) -> str | None:
    """The name a message states ("My name is Alice"), never one it asks about."""
    if _asks_name(content):
        return None
    for pattern in _ASCII_NAME_STATEMENTS if content.isascii() else _NAME_STATEMENTS:
        match = pattern.search(content)
        name = match.group(1) if match else None
        if name and not _interrogative(name):
            return name
    return None


def _recall_name(messages: list[Message]) -> str | None:
    for message in reversed(messages):
        if message.role == "user":
            name = _stated_name(message.content)
            if name is not None:
                return name
    return None


class OfflineModel:
    """A deterministic model that really reads the history it is given.

    - "My name is Alice" / "我叫 Alice" ... then "What is my name?" answers from
      the session's own history, so isolation between sessions is visible.
    - "/tool NAME {json}" calls tool NAME with those arguments when the agent
      offers it; after the result arrives it replies with the result.
    - "/handoff NAME" calls the transfer tool to agent NAME when the agent may
      hand off to it; the agent taking over then greets the user.
    - Anything else is echoed deterministically.

    ``delay`` (seconds) simulates provider latency for benchmarks.
    """

    def __init__(self, *, delay: float = 0.0, name: str = "offline") -> None:
        self.delay = delay
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def reply(self, request: ModelRequest) -> ModelReply:
        messages = list(request.messages)
        tokens = estimate_tokens(request.instructions)
        for message in messages:  # estimate_tokens, inlined: this runs on every turn
            if message.content:
                tokens += (len(message.content) + 3) // 4
        usage = Usage(input_tokens=tokens, requests=1)
        last = messages[-1] if messages else None
        if last is not None and last.role == "tool" and (last.name or "").startswith(_TRANSFER):
            target = (last.name or "")[len(_TRANSFER) :]
            failed = (last.meta or {}).get("error")
            text = last.content if failed else f"You are now talking to {target}. How can I help?"
        elif last is not None and last.role == "tool":
            text = f"{last.name} returned: {last.content}"
        elif last is not None and last.role == "user":
            text, call = self._answer(last, messages, request)
            if call is not None:
                return ModelReply(tool_calls=[call], usage=usage)
        else:
            text = "Hello! How can I help?"
        usage.output_tokens = estimate_tokens(text)
        return ModelReply(text=text, usage=usage)

    def _answer(
        self, last: Message, messages: list[Message], request: ModelRequest
    ) -> tuple[str, ToolCall | None]:
        content = last.content
        command = _TOOL_COMMAND.match(content.strip()) if "/tool" in content else None
        if command and command.group(1) in {t["function"]["name"] for t in request.tools}:
            arguments = command.group(2) or "{}"
            call_id = f"call_{last.seq}_{command.group(1)}"
            return "", ToolCall(call_id, command.group(1), arguments)
        handoff = _HANDOFF_COMMAND.match(content.strip()) if "/handoff" in content else None
        if handoff:
            tool = _TRANSFER + handoff.group(1)
            if tool in {t["function"]["name"] for t in request.tools}:
                return "", ToolCall(f"call_{last.seq}_{tool}", tool, '{"reason": "asked to"}')
            return f"I cannot hand you over to {handoff.group(1)} from here.", None
        for pattern, known, unknown in (
            _ASCII_NAME_QUESTIONS if content.isascii() else _NAME_QUESTIONS
        ):
            if pattern.search(content):
                name = _recall_name(messages[:-1])
                return (known.format(name) if name else unknown), None
        stated = _stated_name(content)
        if stated is not None:
            return f"Nice to meet you, {stated}!", None
        return f"You said: {content}", None

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = self.reply(request)
        if reply.text:
            yield TextChunk(reply.text)
        for call in reply.tool_calls:
            yield call
        yield reply.usage


ReplyFunction = Callable[[ModelRequest], "ModelReply | str | Awaitable[ModelReply | str]"]


@dataclass
class FunctionModel:
    """A model scripted by a function of the request: the tool for tests.

    The function returns a :class:`ModelReply` (text and/or tool calls) or a
    string, sync or async; whatever it raises is what the model raises.
    """

    function: ReplyFunction
    model_name: str = "function"

    @property
    def name(self) -> str:
        return self.model_name

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        result = self.function(request)
        if inspect.isawaitable(result):
            result = await result
        reply = ModelReply(text=result) if isinstance(result, str) else result
        if reply.text:
            yield TextChunk(reply.text)
        for call in reply.tool_calls:
            yield call
        yield reply.usage if reply.usage.requests else Usage(requests=1)


def tool_call(name: str, arguments: dict[str, object] | None = None, *, id: str = "") -> ToolCall:
    """Build a tool call for scripted models."""
    return ToolCall(id or f"call_{name}", name, orjson.dumps(arguments or {}).decode())
