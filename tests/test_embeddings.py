"""Semantic ranking of memories: an embedder through the openai SDK against a real loopback
server speaking the embeddings protocol, and one made from a function."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agenthost import Agent, Host, LongTermMemory
from agenthost.errors import ConfigError
from agenthost.models import FunctionModel, ModelReply, ModelRequest, OfflineModel
from agenthost.models.embeddings import FunctionEmbedder, OpenAIEmbedder, resolve_embedder
from support.fake_openai import FakeOpenAI, embed, serve
from support.stores import make_store

ALICE = {"user_id": "alice", "tenant_id": "acme"}


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeOpenAI, str]]:
    server = FakeOpenAI()
    with serve(server.app) as url:
        yield server, url + "/v1"


async def test_the_openai_embedder_speaks_the_protocol(fake: tuple[FakeOpenAI, str]) -> None:
    server, url = fake
    embedder = OpenAIEmbedder("fake-embed", base_url=url, api_key="test-key")
    try:
        vectors = await embedder.embed(["my puppy", "pizza tonight"])
    finally:
        await embedder.aclose()
    for got, text in zip(vectors, ["my puppy", "pizza tonight"], strict=True):
        assert got == pytest.approx(embed(text))  # float32 on the wire
    assert server.embedding_requests[-1]["model"] == "fake-embed"
    assert embedder.name == "openai:fake-embed"


async def test_memories_are_ranked_by_meaning(
    fake: tuple[FakeOpenAI, str], store_kind: str, tmp_path: Path
) -> None:
    _server, url = fake
    seen: list[ModelRequest] = []
    offline = OfflineModel()

    def model(request: ModelRequest) -> ModelReply:
        seen.append(request)
        return offline.reply(request)

    embedder = OpenAIEmbedder("fake-embed", base_url=url, api_key="test-key")
    options = LongTermMemory(embedder=embedder, max_items=1, tools=False)
    agent = Agent(model=FunctionModel(model), long_term_memory=options)
    async with Host(agent, store=make_store(store_kind, tmp_path)) as host:
        await host.memories.add("The user has a dog called Rex", **ALICE)
        await host.memories.add("The user is vegetarian", **ALICE)
        await host.memories.add("The user takes the train to work", **ALICE)
        # no word in common with the memory it needs: text search alone would find nothing
        (pet,) = (await host.memories.search("puppy", **ALICE))[:1]
        assert pet.text == "The user has a dog called Rex"
        (best,) = (await host.memories.search("what should I cook for dinner", **ALICE))[:1]
        assert best.text == "The user is vegetarian"
        await host.run("Any tips for my new puppy?", **ALICE)
        memory = seen[-1].messages[0]
        assert memory.role == "system" and "dog called Rex" in memory.content
        assert "vegetarian" not in memory.content
    await embedder.aclose()


async def test_a_failing_embedder_falls_back_to_text_search(tmp_path: Path) -> None:
    def broken(texts: list[str]) -> list[list[float]]:
        raise RuntimeError("embedding service down")

    agent = Agent(long_term_memory=LongTermMemory(embedder=broken))
    async with Host(agent, store=make_store("sqlite", tmp_path)) as host:
        stored = await host.memories.add("The user's name is Alice.", **ALICE)
        assert stored.text == "The user's name is Alice."  # kept, without a vector
        assert [m.text for m in await host.memories.search("name", **ALICE)] == [
            "The user's name is Alice."
        ]
        result = await host.run("What is my name?", **ALICE)
        assert result.reply == "Your name is Alice."


async def test_function_embedders_and_resolution() -> None:
    async def vectors(texts: list[str]) -> list[list[float]]:
        return [[float(len(t)), 1.0] for t in texts]

    embedder = resolve_embedder(vectors)
    assert isinstance(embedder, FunctionEmbedder) and embedder.name == "vectors"
    assert await embedder.embed(["ab", "abcd"]) == [[2.0, 1.0], [4.0, 1.0]]
    assert resolve_embedder(embedder) is embedder
    with pytest.raises(ConfigError):
        resolve_embedder("cohere:embed")
