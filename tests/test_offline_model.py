"""The offline model answers from the history it is given, deterministically."""

from __future__ import annotations

import pytest

from agenthost import ConfigError, Message, OfflineModel
from agenthost.models import complete, resolve_model
from agenthost.models.base import ModelRequest


def request(*texts: str) -> ModelRequest:
    roles = ["user", "assistant"]
    return ModelRequest(
        "",
        [Message(roles[i % 2], t, seq=i + 1) for i, t in enumerate(texts)],  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("statement", "question", "answer"),
    [
        ("My name is Alice", "What is my name?", "Your name is Alice."),
        ("我叫 Alice", "我叫什么?", "你的名字是 Alice"),
        ("我的名字是 Bob", "我的名字是什么?", "你的名字是 Bob"),
        ("私の名前はハナコです", "私の名前は何ですか?", "あなたの名前はハナコです。"),
        ("제 이름은 민수입니다", "제 이름이 뭐예요?", "당신의 이름은 민수입니다."),
    ],
)
async def test_recalls_a_name_from_the_history_it_is_given(
    statement: str, question: str, answer: str
) -> None:
    model = OfflineModel()
    reply = await complete(model, request(statement, "ok", question))
    assert reply.text == answer
    empty = await complete(model, request(question))
    assert "Alice" not in empty.text and "Bob" not in empty.text


async def test_deterministic_echo_and_usage() -> None:
    model = OfflineModel()
    one = await complete(model, request("hello world"))
    two = await complete(model, request("hello world"))
    assert one.text == two.text == "You said: hello world"
    assert one.usage.input_tokens > 0 and one.usage.output_tokens > 0
    assert one.usage.requests == 1


def test_resolve_model_names() -> None:
    assert resolve_model("offline").name == "offline"
    slow = resolve_model("offline:200ms")
    assert isinstance(slow, OfflineModel) and slow.delay == pytest.approx(0.2)
    with pytest.raises(ConfigError, match="unknown model"):
        resolve_model("nope:x")
