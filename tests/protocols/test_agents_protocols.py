"""Three agents (triage -> support, billing) over the OpenAI SDK and the a2a-sdk client,
against the app ``agenthost serve --agents`` runs, with API keys, served in this process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import openai
import pytest
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory
from a2a.types import (
    AgentCard,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    Task,
    TaskState,
)
from google.protobuf.json_format import MessageToDict

from support.agents import TEAM
from support.inprocess import InProcessServer, sqlite_in_process
from support.serve import KEYS, bearer, uid


@pytest.fixture(scope="module")
def team_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    tmp = tmp_path_factory.mktemp("team")
    with sqlite_in_process(tmp, "", "--agents", TEAM, keyed=True) as server:
        yield server


@pytest.fixture
def chat(team_server: InProcessServer) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=team_server.url + "/v1", api_key=KEYS["alice"], max_retries=0)
    yield client
    client.close()


def ask(
    chat: openai.OpenAI, model: str, history: list[dict[str, str]], text: str, session: str
) -> tuple[str, str]:
    """One Chat Completions call with the whole conversation; returns (model, reply)."""
    history.append({"role": "user", "content": text})
    reply = chat.chat.completions.create(
        model=model,
        messages=history,  # type: ignore[arg-type]
        extra_headers={"X-Session-Id": session},
    )
    content = reply.choices[0].message.content or ""
    history.append({"role": "assistant", "content": content})
    return reply.model, content


def test_the_openai_sdk_talks_to_two_agents_and_follows_a_hand_off(chat: openai.OpenAI) -> None:
    assert [m.id for m in chat.models.list().data] == ["triage", "support", "billing"]
    support: list[dict[str, str]] = []
    assert ask(chat, "support", support, "My name is Sam", uid("s")) == (
        "support",
        "Nice to meet you, Sam!",
    )
    session, triage = uid("s"), []
    assert ask(chat, "triage", triage, "My name is Tia", session)[0] == "triage"
    model, text = ask(chat, "triage", triage, "/handoff billing", session)
    assert (model, text) == ("billing", "You are now talking to billing. How can I help?")
    # the client keeps saying "triage": the session stays with billing
    assert ask(chat, "triage", triage, "What is my name?", session) == (
        "billing",
        "Your name is Tia.",
    )
    with pytest.raises(openai.ConflictError, match="with agent 'billing'"):
        ask(chat, "support", list(triage), "hello", session)
    with pytest.raises(openai.NotFoundError):
        ask(chat, "nobody", [], "hello", uid("s"))


def test_a_streamed_hand_off_names_the_new_agent_in_its_chunks(chat: openai.OpenAI) -> None:
    stream = chat.chat.completions.create(
        model="triage",
        messages=[{"role": "user", "content": "/handoff support"}],
        extra_headers={"X-Session-Id": uid("s")},
        stream=True,
    )
    chunks = list(stream)
    texts = [(c.model, c.choices[0].delta.content) for c in chunks if c.choices[0].delta.content]
    assert texts == [("support", "You are now talking to support. How can I help?")]
    assert chunks[0].model == "triage" and chunks[-1].model == "support"


@asynccontextmanager
async def agent_client(
    server: InProcessServer, agent: str, user: str
) -> AsyncIterator[tuple[Client, AgentCard]]:
    """An a2a-sdk client made from one agent's own card (found under ``/a2a/<agent>``)."""
    async with httpx.AsyncClient(headers=bearer(user), timeout=30.0) as http:
        card = await A2ACardResolver(http, f"{server.url}/a2a/{agent}").get_agent_card()
        client = ClientFactory(ClientConfig(httpx_client=http, streaming=True)).create(card)
        yield client, card
        await client.close()


def request(text: str, context_id: str = "") -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(
            message_id=str(uuid.uuid4()),
            role=Role.ROLE_USER,
            parts=[Part(text=text)],
            context_id=context_id,
        )
    )


async def send(client: Client, text: str, context_id: str = "") -> tuple[Task, list[dict]]:  # type: ignore[type-arg]
    """Send (streaming); the stored task, and the status updates seen on the way."""
    events = [e async for e in client.send_message(request(text, context_id))]
    updates = [MessageToDict(e.status_update) for e in events if e.HasField("status_update")]
    task = await client.get_task(GetTaskRequest(id=events[0].task.id))
    return task, updates


def spoken(task: Task) -> list[tuple[str, str]]:
    """(agent, text) of each agent message in the task's history."""
    return [
        (m.metadata["agent"], m.parts[0].text) for m in task.history if m.role == Role.ROLE_AGENT
    ]


async def test_the_a2a_client_talks_to_two_agents_each_on_its_own_card(
    team_server: InProcessServer,
) -> None:
    async with agent_client(team_server, "billing", "bob") as (billing, card):
        assert card.name == "billing"
        assert card.supported_interfaces[0].url == f"{team_server.url}/a2a/billing"
        task, _ = await send(billing, "My name is Bo")
        assert task.status.state == TaskState.TASK_STATE_COMPLETED
        assert spoken(task) == [("billing", "Nice to meet you, Bo!")]

    async with agent_client(team_server, "triage", "bob") as (triage, card):
        assert card.name == "triage"
        task, updates = await send(triage, "My name is Bo")
        context = task.context_id
        task, updates = await send(triage, "/handoff support", context)
        handoffs = [u["status"]["message"] for u in updates if "message" in u["status"]]
        assert handoffs[0]["metadata"]["handoff"] == {"from": "triage", "to": "support"}
        assert handoffs[0]["parts"][0]["text"] == "Transferred from triage to support."
        assert spoken(task) == [("support", "You are now talking to support. How can I help?")]
        task, _ = await send(triage, "What is my name?", context)
        assert spoken(task) == [("support", "Your name is Bo.")]


async def test_agent_cards_and_endpoints_of_unknown_agents_are_404(
    team_server: InProcessServer,
) -> None:
    async with httpx.AsyncClient(headers=bearer("bob")) as http:
        card = await http.get(f"{team_server.url}/a2a/nobody/.well-known/agent-card.json")
        assert card.status_code == 404 and card.json()["error"]["code"] == "not_found"
        rpc = await http.post(f"{team_server.url}/a2a/nobody", json={"jsonrpc": "2.0"})
        assert rpc.status_code == 404
        default = await http.get(f"{team_server.url}/.well-known/agent-card.json")
        assert default.json()["name"] == "triage"
