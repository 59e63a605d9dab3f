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


@pytest.mark.parametrize(
    ("statement", "question", "name", "answer"),
    [
        ("My name is Bob", "What is my name?", "Bob", "Your name is Bob."),
        ("My name is Bob", "My name is what?", "Bob", "Your name is Bob."),
        ("我叫 Bob", "我叫什么名字?", "Bob", "你的名字是 Bob"),
        ("我的名字是 Bob", "我的名字是什么?", "Bob", "你的名字是 Bob"),
        ("我叫 Bob", "我是谁?", "Bob", "你的名字是 Bob"),
        ("私の名前はボブです", "私の名前は何ですか?", "ボブ", "あなたの名前はボブです。"),
        ("私の名前はボブです", "私の名前はなんですか?", "ボブ", "あなたの名前はボブです。"),
        ("제 이름은 밥입니다", "제 이름이 뭐예요?", "밥", "당신의 이름은 밥입니다."),
        ("제 이름은 밥입니다", "제 이름은 뭐예요?", "밥", "당신의 이름은 밥입니다."),
    ],
)
async def test_a_question_is_never_stored_as_a_name(
    statement: str, question: str, name: str, answer: str
) -> None:
    """The question stays in the history; asked again, and then in English, the answer is
    still the stated name (it was "你的名字是 什么名字" and then "Your name is 什么名字.")."""
    model = OfflineModel()
    history = [statement, "ok"]
    for _ in range(3):
        reply = await complete(model, request(*history, question))
        assert reply.text == answer
        history += [question, reply.text]
    english = await complete(model, request(*history, "What is my name?"))
    assert english.text == f"Your name is {name}."


@pytest.mark.parametrize(
    "question",
    [
        "我叫什么名字?",
        "我的名字是什么?",
        "私の名前は何ですか?",
        "제 이름은 뭐예요?",
        "My name is what",
    ],
)
async def test_a_question_without_a_stated_name_stays_unknown(question: str) -> None:
    model = OfflineModel()
    first = await complete(model, request(question))
    second = await complete(model, request(question, first.text, question))
    assert second.text == first.text
    assert "什么" not in second.text and "what" not in second.text.lower().replace("what?", "")


async def test_a_name_that_merely_starts_like_a_question_word_is_a_name() -> None:
    model = OfflineModel()
    for statement, name in (("我叫何伟", "何伟"), ("My name is Whoopi", "Whoopi")):
        reply = await complete(model, request(statement))
        assert name in reply.text
