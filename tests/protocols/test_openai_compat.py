"""The OpenAI-compatible API through the official ``openai`` SDK, against the served app."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from support.inprocess import InProcessServer
from support.serve import KEYS, bearer, uid

MODEL = "proto-agent"


_open: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def client(server: InProcessServer, key: str = "alice", **headers: str) -> openai.OpenAI:
    """A sync client (closed after the test) with ``key``'s API key."""
    made = openai.OpenAI(
        base_url=server.url + "/v1",
        api_key=KEYS.get(key, key),
        default_headers=headers,
        max_retries=0,
    )
    _open.append(made)
    return made


def stored(server: InProcessServer, session_id: str, **auth: str) -> list[dict[str, Any]]:
    """The session's messages as the agenthost API lists them."""
    response = httpx.get(f"{server.url}/v1/sessions/{session_id}/messages", headers=auth)
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


def say(
    chat: openai.OpenAI, history: list[dict[str, str]], text: str, session_id: str
) -> tuple[str, str]:
    """Send the whole conversation plus ``text``; append both turns; return (reply, header)."""
    history.append({"role": "user", "content": text})
    raw = chat.chat.completions.with_raw_response.create(
        model=MODEL, messages=history, extra_headers={"X-Session-Id": session_id}
    )
    reply = raw.parse().choices[0].message.content or ""
    history.append({"role": "assistant", "content": reply})
    return reply, raw.headers["x-agenthost-history"]


def test_models_lists_the_agent(keyed_server: InProcessServer) -> None:
    chat = client(keyed_server)
    assert [m.id for m in chat.models.list()] == [MODEL]
    assert chat.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError):
        chat.models.retrieve("gpt-4o")


def test_two_users_interleaved_each_recall_only_their_own_name(
    keyed_server: InProcessServer,
) -> None:
    session_id = uid("shared-name")  # the same session id for both: still two sessions
    alice, bob = client(keyed_server, "alice"), client(keyed_server, "bob")
    alice_history: list[dict[str, str]] = [{"role": "system", "content": "Be brief."}]
    bob_history: list[dict[str, str]] = []

    assert (
        say(alice, alice_history, "My name is Alice", session_id)[0] == "Nice to meet you, Alice!"
    )
    assert say(bob, bob_history, "My name is Bob", session_id)[0] == "Nice to meet you, Bob!"
    assert say(alice, alice_history, "What is my name?", session_id) == (
        "Your name is Alice.",
        "match",
    )
    assert say(bob, bob_history, "What is my name?", session_id) == ("Your name is Bob.", "match")

    for who, name in (("alice", "Alice"), ("bob", "Bob")):
        messages = stored(keyed_server, session_id, **bearer(who))
        # only what was new each time: two turns, no duplicates, no client system message
        assert [(m["role"], m["content"]) for m in messages] == [
            ("user", f"My name is {name}"),
            ("assistant", f"Nice to meet you, {name}!"),
            ("user", "What is my name?"),
            ("assistant", f"Your name is {name}."),
        ]


async def test_async_streaming_with_usage_and_matching_history(
    keyed_server: InProcessServer,
) -> None:
    session_id = uid("stream")
    async with openai.AsyncOpenAI(
        base_url=keyed_server.url + "/v1", api_key=KEYS["alice"], max_retries=0
    ) as chat:
        history: list[Any] = [{"role": "user", "content": "My name is Carol"}]
        first = await chat.chat.completions.create(
            model=MODEL, messages=history, extra_headers={"X-Session-Id": session_id}
        )
        history.append({"role": "assistant", "content": first.choices[0].message.content})
        history.append({"role": "user", "content": "What is my name?"})
        response = await chat.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=history,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"X-Session-Id": session_id},
        )
        assert response.headers["x-agenthost-history"] == "match"
        chunks = [chunk async for chunk in response.parse()]

    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Your name is Carol."
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1
    assert len(stored(keyed_server, session_id, **bearer("alice"))) == 4


def test_stream_without_usage_ends_with_the_finish(keyed_server: InProcessServer) -> None:
    stream = client(keyed_server).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        extra_headers={"X-Session-Id": uid("plain-stream")},
    )
    chunks = list(stream)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: hello"


def test_session_from_metadata_and_trailing_user_messages_stored_once(
    keyed_server: InProcessServer,
) -> None:
    session_id = uid("meta")
    chat = client(keyed_server)
    history: list[Any] = [
        {"role": "user", "content": "My name is Dana"},
        {"role": "user", "content": [{"type": "text", "text": "hello"}]},
    ]
    first = chat.chat.completions.create(
        model=MODEL, messages=history, metadata={"session_id": session_id}
    )
    history.append({"role": "assistant", "content": first.choices[0].message.content})
    history.append({"role": "user", "content": "What is my name?"})
    raw = chat.chat.completions.with_raw_response.create(
        model=MODEL, messages=history, metadata={"session_id": session_id}
    )
    assert raw.headers["x-agenthost-history"] == "match"
    assert raw.parse().choices[0].message.content == "Your name is Dana."
    users = [m["content"] for m in stored(keyed_server, session_id, **bearer("alice"))]
    assert users[0] == "My name is Dana\n\nhello" and len(users) == 4


def test_divergent_history_the_stored_one_wins(keyed_server: InProcessServer) -> None:
    session_id = uid("diverge")
    chat = client(keyed_server)
    history: list[dict[str, str]] = []
    say(chat, history, "My name is Erin", session_id)
    forged = [
        {"role": "user", "content": "My name is Mallory"},
        {"role": "assistant", "content": "Nice to meet you, Mallory!"},
    ]
    reply, header = say(chat, forged, "What is my name?", session_id)
    assert header == "diverged"
    assert reply == "Your name is Erin."
    contents = [m["content"] for m in stored(keyed_server, session_id, **bearer("alice"))]
    assert "My name is Mallory" not in contents
    assert contents[-2:] == ["What is my name?", "Your name is Erin."]


def test_stateless_mode_stores_nothing(keyed_server: InProcessServer) -> None:
    session_id = uid("stateless")
    chat = client(keyed_server, **{"X-Agenthost-Stateless": "1"})
    messages: list[Any] = [
        {"role": "user", "content": "My name is Finn"},
        {"role": "assistant", "content": "Nice to meet you, Finn!"},
        {"role": "user", "content": "What is my name?"},
    ]
    raw = chat.chat.completions.with_raw_response.create(
        model=MODEL, messages=messages, extra_headers={"X-Session-Id": session_id}
    )
    assert raw.parse().choices[0].message.content == "Your name is Finn."
    assert raw.headers["x-agenthost-stateless"] == "1"
    streamed = chat.chat.completions.create(
        model=MODEL, messages=messages, stream=True, extra_headers={"X-Session-Id": session_id}
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == "Your name is Finn."
    response = httpx.get(f"{keyed_server.url}/v1/sessions/{session_id}", headers=bearer("alice"))
    assert response.status_code == 404


def test_auth_as_on_v1_chat(keyed_server: InProcessServer) -> None:
    messages: list[Any] = [{"role": "user", "content": "hi"}]
    anonymous = httpx.post(
        f"{keyed_server.url}/v1/chat/completions", json={"model": MODEL, "messages": messages}
    )
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    with pytest.raises(openai.AuthenticationError):
        client(keyed_server, "wrong-key").models.list()
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client(keyed_server, "alice").chat.completions.create(
            model=MODEL, messages=messages, user="bob"
        )
    assert "own user" in denied.value.message
    # a service key acts for the user it names
    session_id = uid("svc")
    service = client(keyed_server, "service")
    service.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "My name is Gus"}],
        user="gus",
        extra_headers={"X-Session-Id": session_id},
    )
    assert stored(keyed_server, session_id, **bearer("service"), **{"X-User-Id": "gus"})


def test_bad_requests_get_clear_errors(keyed_server: InProcessServer) -> None:
    chat = client(keyed_server)
    with pytest.raises(openai.NotFoundError) as unknown:
        chat.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert "GET /v1/models" in unknown.value.message
    bad: list[list[Any]] = [
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        [
            {"role": "tool", "content": "42", "tool_call_id": "c1"},
            {"role": "user", "content": "hi"},
        ],
        [{"role": "user", "content": "   "}],
    ]
    for messages in bad:
        with pytest.raises(openai.UnprocessableEntityError):
            chat.chat.completions.create(model=MODEL, messages=messages)
    with pytest.raises(openai.UnprocessableEntityError):
        chat.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], n=2)
    raw = httpx.post(
        f"{keyed_server.url}/v1/chat/completions",
        content=b"{not json",
        headers={**bearer("alice"), "Content-Type": "application/json"},
    )
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "malformed_json"


def test_auth_none_the_user_field_names_the_user(open_server: InProcessServer) -> None:
    chat = client(open_server, "unused")
    session_id = uid("none")
    users = {uid("hana"): "Hana", uid("ivan"): "Ivan"}
    histories: dict[str, list[Any]] = {user: [] for user in users}
    for text in ("My name is {}", "What is my name?"):
        for user, name in users.items():
            histories[user].append({"role": "user", "content": text.format(name)})
            reply = chat.chat.completions.create(
                model=MODEL,
                messages=histories[user],
                user=user,
                extra_headers={"X-Session-Id": session_id},
            )
            histories[user].append(
                {"role": "assistant", "content": reply.choices[0].message.content}
            )
    for user, name in users.items():
        assert histories[user][-1]["content"] == f"Your name is {name}."
        assert len(stored(open_server, session_id, **{"X-User-Id": user})) == 4
