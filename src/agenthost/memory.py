"""Long-term memory: what an agent remembers about each user, across their sessions.

A memory is a :class:`~agenthost.stores.base.MemoryRecord` owned by one
``(tenant_id, user_id)``; there is no shared bucket. The anonymous user
(``"default"``, who every caller without a user id is) gets no memory at all.

- :class:`Memories` (``host.memories``) is the one way in: add, read, page,
  update, delete and search a user's memories, and :meth:`Memories.relevant`,
  the memories put before the model on a turn (ranked by the store's own
  full-text search, or by an embedder's similarity; within a count and a
  character budget).
- ``Agent(long_term_memory=LongTermMemory(...))`` turns it on for an agent:
  ``recall`` (relevant memories each turn), ``tools`` (``remember``, ``forget``,
  ``search_memories`` for the model), ``extract`` (after each turn, off the
  user's wait, a model lists new facts about the user: opt-in).
- What a turn writes is fenced by the turn's session revision
  (:class:`~agenthost.stores.base.MemoryFence`): once the user or session is
  erased, nothing a running turn or a late extraction does can write it back.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from agenthost.errors import ConfigError, Conflict, InvalidInput, NotFound, SessionErased
from agenthost.keys import DEFAULT_ID, SessionKey, validate_id
from agenthost.models.embeddings import Embedder, EmbedFunction, resolve_embedder
from agenthost.stores.base import MemoryFence, MemoryRecord, SessionStore, new_revision
from agenthost.stores.search import cosine, query_terms
from agenthost.tools import Tool, ToolContext, tool

if TYPE_CHECKING:
    from agenthost.agent import Agent
    from agenthost.agents import AgentSet
    from agenthost.live import LiveSessionCache
    from agenthost.models.base import Model

log = logging.getLogger("agenthost.memory")

MAX_TEXT_CHARS = 4000
MAX_LABEL_CHARS = 64
MAX_TAGS = 20
_UNSET: Any = object()


@dataclass(frozen=True, slots=True, kw_only=True)
class LongTermMemory:
    """What an agent does with its users' long-term memory.

    ``recall``: put the memories most relevant to the new message before the
    model, at most ``max_items`` of them and ``max_chars`` characters in all.
    ``tools``: offer the model ``remember``, ``forget`` and ``search_memories``.
    ``extract``: after each turn, in the background, ask ``extract_model`` (default:
    the session's model) for new facts about the user and store them (off by
    default: it costs a model call per turn, though never in the user's wait).
    ``embedder``: ``"openai:<model>"``, an :class:`~agenthost.models.embeddings.Embedder`
    or a function; memories are then ranked by similarity among ``candidates`` found
    by text search and recency. ``max_per_user``: adding more is refused (429).
    """

    recall: bool = True
    tools: bool = True
    max_items: int = 5
    max_chars: int = 1500
    extract: bool = False
    extract_model: Model | str | None = None
    embedder: Embedder | EmbedFunction | str | None = None
    candidates: int = 50
    max_per_user: int | None = 10_000

    def __post_init__(self) -> None:
        if self.max_items < 1 or self.max_chars < 1 or self.candidates < 1:
            raise ConfigError("long-term memory max_items, max_chars and candidates must be >= 1")
        if self.max_per_user is not None and self.max_per_user < 1:
            raise ConfigError("long-term memory max_per_user must be at least 1 (or None)")


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("text must be a non-empty string", field="text")
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidInput(f"text is longer than {MAX_TEXT_CHARS} characters", field="text")
    if any(not (c.isprintable() or c in "\n\t") for c in value):
        raise InvalidInput("text must not contain control characters", field="text")
    return value.strip()


def _label(value: object, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_LABEL_CHARS:
        raise InvalidInput(f"{name} must be 1-{MAX_LABEL_CHARS} characters", field=name)
    if not value.isprintable():
        raise InvalidInput(f"{name} must not contain control characters", field=name)
    return value


def _tags(value: object) -> list[str]:
    if not isinstance(value, list | tuple):
        raise InvalidInput("tags must be a list of strings", field="tags")
    tags = list(dict.fromkeys(_label(t, "tags") for t in value))
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags", field="tags")
    return tags


def _owner(tenant_id: str, user_id: str) -> tuple[str, str]:
    validate_id(tenant_id, "tenant_id")
    validate_id(user_id, "user_id")
    if user_id == DEFAULT_ID:
        raise InvalidInput(
            f"long-term memory needs a named user: {DEFAULT_ID!r} is every anonymous caller, "
            "who gets no memory (name the user with user_id or X-User-Id)",
            field="user_id",
        )
    return tenant_id, user_id


def host_memory_options(agents: AgentSet) -> LongTermMemory | None:
    """The options of a host's memory store (embedder, cap): the default agent's long-term
    memory, else the first agent's that has one."""
    if agents.default.long_term_memory is not None:
        return agents.default.long_term_memory
    return next((a.long_term_memory for a in agents if a.long_term_memory is not None), None)


def normalised(text: str) -> str:
    return " ".join(text.casefold().split()).rstrip(".")


@dataclass(slots=True)
class Memories:
    """The users' long-term memory, through the Host (``host.memories``).

    ``options`` are the host's: its embedder and per-user cap (the default agent's
    long-term memory, else the first agent's that has one); each agent's own decide
    its recall budget, tools and extraction. ``start`` opens the store on first use;
    ``live`` is the host's live-session cache (what a turn's writes are fenced by).
    """

    store: SessionStore
    options: LongTermMemory | None
    clock: Callable[[], float]
    start: Callable[[], Awaitable[None]]
    live: LiveSessionCache | None = None
    embedder: Embedder | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        spec = self.options.embedder if self.options is not None else None
        self.embedder = resolve_embedder(spec) if spec is not None else None

    async def close(self) -> None:
        """Close the embedder's connections if it was made here from a name."""
        spec = self.options.embedder if self.options is not None else None
        aclose = getattr(self.embedder, "aclose", None)
        if isinstance(spec, str) and aclose is not None:
            await aclose()

    def fence_of(self, key: SessionKey) -> MemoryFence:
        """What a memory written from inside a turn of ``key`` is checked against: the
        session's revision now (0, which no session has, outside a turn)."""
        live = self.live.get(key, self.clock()) if self.live is not None else None
        return MemoryFence(key, live.revision if live is not None else 0)

    @property
    def cap(self) -> int | None:
        return self.options.max_per_user if self.options is not None else 10_000

    async def _embed(self, text: str) -> list[float] | None:
        if self.embedder is None:
            return None
        try:
            return (await self.embedder.embed([text]))[0]
        except Exception as exc:  # the text search still finds it
            log.warning(
                "embedder %s failed, memory kept without a vector: %s", self.embedder.name, exc
            )
            return None

    # -- the application's API ------------------------------------------------------

    async def add(
        self,
        text: str,
        *,
        user_id: str,
        tenant_id: str = DEFAULT_ID,
        kind: str | None = None,
        tags: Sequence[str] = (),
        session_id: str | None = None,
        run_id: str | None = None,
        fence: MemoryFence | None = None,
    ) -> MemoryRecord:
        """Remember ``text`` about a user; ``session_id``/``run_id`` say where it came from."""
        tenant_id, user_id = _owner(tenant_id, user_id)
        record = MemoryRecord(
            "mem_" + os.urandom(12).hex(),
            tenant_id,
            user_id,
            _text(text),
            None if kind is None else _label(kind, "kind"),
            _tags(list(tags)),
            session_id=None if session_id is None else validate_id(session_id, "session_id"),
            run_id=None if run_id is None else validate_id(run_id, "run_id"),
            revision=new_revision(),
        )
        await self.start()
        record.created_at = record.updated_at = self.clock()
        record.embedding = await self._embed(record.text)
        await self._fenced(self.store.add_memory(record, fence=fence, cap=self.cap), fence)
        record.embedding = None
        return record

    async def get(
        self, memory_id: str, *, user_id: str, tenant_id: str = DEFAULT_ID
    ) -> MemoryRecord:
        tenant_id, user_id = _owner(tenant_id, user_id)
        validate_id(memory_id, "memory_id")
        await self.start()
        record = await self.store.get_memory(tenant_id, user_id, memory_id)
        if record is None:
            raise NotFound(f"memory {memory_id!r} not found")
        return record

    async def page(
        self, *, user_id: str, tenant_id: str = DEFAULT_ID, limit: int = 50, offset: int = 0
    ) -> list[MemoryRecord]:
        """A user's memories, newest first."""
        tenant_id, user_id = _owner(tenant_id, user_id)
        if limit < 1 or offset < 0:
            raise InvalidInput("limit must be >= 1 and offset >= 0", field="limit")
        await self.start()
        return await self.store.list_memories(tenant_id, user_id, limit=limit, offset=offset)

    async def count(self, *, user_id: str, tenant_id: str = DEFAULT_ID) -> int:
        tenant_id, user_id = _owner(tenant_id, user_id)
        await self.start()
        return await self.store.count_memories(tenant_id, user_id)

    async def update(
        self,
        memory_id: str,
        *,
        user_id: str,
        tenant_id: str = DEFAULT_ID,
        text: str = _UNSET,
        kind: str | None = _UNSET,
        tags: Sequence[str] = _UNSET,
        revision: int | None = None,
        fence: MemoryFence | None = None,
    ) -> MemoryRecord:
        """Change a memory's text, kind and/or tags. With ``revision``, only if it is still
        at that revision (else ``Conflict``); without, a concurrent change is re-read and
        this one applied on top of it."""
        new_text = _UNSET if text is _UNSET else _text(text)
        new_kind = kind if kind is _UNSET or kind is None else _label(kind, "kind")
        new_tags: Any = _UNSET
        if tags is not _UNSET:
            new_tags = _tags(list(tags))
        for _attempt in range(5):
            current = await self.get(memory_id, user_id=user_id, tenant_id=tenant_id)
            if revision is not None and current.revision != revision:
                raise Conflict(
                    f"memory {memory_id!r} is at revision {current.revision}, not {revision}"
                )
            changed = replace(
                current,
                text=current.text if new_text is _UNSET else new_text,
                kind=current.kind if new_kind is _UNSET else new_kind,
                tags=current.tags if new_tags is _UNSET else new_tags,
                updated_at=self.clock(),
                revision=new_revision(),
            )
            changed.embedding = await self._embed(changed.text)
            stored = self.store.replace_memory(changed, base_revision=current.revision, fence=fence)
            if await self._fenced(stored, fence):
                changed.embedding = None
                return changed
            if revision is not None:
                raise Conflict(f"memory {memory_id!r} changed meanwhile")
        raise Conflict(f"memory {memory_id!r} keeps changing; try again")

    async def delete(
        self,
        memory_id: str,
        *,
        user_id: str,
        tenant_id: str = DEFAULT_ID,
        fence: MemoryFence | None = None,
    ) -> None:
        tenant_id, user_id = _owner(tenant_id, user_id)
        validate_id(memory_id, "memory_id")
        await self.start()
        deleted = self.store.delete_memory(tenant_id, user_id, memory_id, fence=fence)
        if not await self._fenced(deleted, fence):
            raise NotFound(f"memory {memory_id!r} not found")

    async def search(
        self, query: str, *, user_id: str, tenant_id: str = DEFAULT_ID, limit: int = 10
    ) -> list[MemoryRecord]:
        """A user's memories ranked by relevance to ``query`` (best first)."""
        tenant_id, user_id = _owner(tenant_id, user_id)
        if not isinstance(query, str):
            raise InvalidInput("query must be a string", field="q")
        if limit < 1:
            raise InvalidInput("limit must be at least 1", field="limit")
        await self.start()
        return [r for r, _ in await self._ranked(tenant_id, user_id, query, limit)]

    async def export(self, *, user_id: str, tenant_id: str = DEFAULT_ID) -> list[dict[str, Any]]:
        """Every memory of a user (none for the anonymous user), newest first."""
        if user_id == DEFAULT_ID:
            return []
        await self.start()
        return [r.to_dict() for r in await self.store.list_memories(tenant_id, user_id)]

    async def _fenced(self, write: Awaitable[Any], fence: MemoryFence | None) -> Any:
        try:
            return await write
        except Conflict:
            if fence is not None and await self.store.revision(fence.key) == 0:
                raise SessionErased(
                    f"session {fence.key.session_id!r} was erased; nothing was written"
                ) from None
            raise

    # -- what a turn sees ----------------------------------------------------------------

    async def _ranked(
        self, tenant_id: str, user_id: str, query: str, limit: int, candidates: int = 0
    ) -> list[tuple[MemoryRecord, float]]:
        terms = query_terms(query)
        vector = await self._embed(query) if self.embedder is not None and query.strip() else None
        if vector is None:
            return await self.store.search_memories(tenant_id, user_id, terms, limit=limit)
        default = self.options.candidates if self.options else 50
        pool = max(limit, candidates or default)
        lexical = await self.store.search_memories(
            tenant_id, user_id, terms, limit=pool, embeddings=True
        )
        recent = await self.store.list_memories(tenant_id, user_id, limit=pool, embeddings=True)
        matched = {r.memory_id for r, _ in lexical}
        found = {r.memory_id: r for r, _ in lexical} | {r.memory_id: r for r in recent}
        scored = [
            (r, cosine(vector, r.embedding or ()) + (0.1 if r.memory_id in matched else 0.0))
            for r in found.values()
        ]
        scored.sort(key=lambda item: (-item[1], -item[0].updated_at, item[0].memory_id))
        for record, _ in scored:
            record.embedding = None
        return scored[:limit]

    async def relevant(
        self, key: SessionKey, text: str, options: LongTermMemory | None = None
    ) -> list[MemoryRecord]:
        """The memories to put before the model for this message, within the budget of
        ``options`` (the speaking agent's; default: the host's)."""
        options = options or self.options
        if options is None or key.user_id == DEFAULT_ID or not text.strip():
            return []
        ranked = await self._ranked(
            key.tenant_id, key.user_id, text, options.max_items * 3, options.candidates
        )
        chosen: list[MemoryRecord] = []
        used = 0
        for record, _ in ranked:
            if used + len(record.text) > options.max_chars:
                continue
            chosen.append(record)
            used += len(record.text)
            if len(chosen) == options.max_items:
                break
        return chosen

    # -- the model's tools -----------------------------------------------------------------

    def tools(self) -> tuple[Tool, ...]:
        """``remember``, ``forget`` and ``search_memories``, acting for the turn's user."""

        def anonymous(context: ToolContext) -> bool:
            return context.user_id == DEFAULT_ID

        async def remember(text: str, context: ToolContext, kind: str | None = None) -> str:
            """Remember a fact about the user for later conversations.

            Args:
                text: the fact, in the third person ("The user's name is Alice.")
                kind: an optional category, e.g. "preference"
            """
            if anonymous(context):
                return "not remembered: this user is anonymous, and anonymous users get no memory"
            key = SessionKey(context.tenant_id, context.user_id, context.session_id)
            fence = self.fence_of(key)
            if not fence.revision:
                return "not remembered: this turn stores nothing"
            record = await self.add(
                text,
                user_id=context.user_id,
                tenant_id=context.tenant_id,
                kind=kind,
                session_id=context.session_id,
                run_id=context.run_id,
                fence=fence,
            )
            return f"remembered (id {record.memory_id})"

        async def forget(memory_id: str, context: ToolContext) -> str:
            """Forget one memory about the user.

            Args:
                memory_id: the id shown with the memory
            """
            if anonymous(context):
                return "nothing to forget: anonymous users have no memory"
            key = SessionKey(context.tenant_id, context.user_id, context.session_id)
            fence = self.fence_of(key)
            if not fence.revision:
                return "not forgotten: this turn stores nothing"
            try:
                await self.delete(
                    memory_id, user_id=context.user_id, tenant_id=context.tenant_id, fence=fence
                )
            except NotFound:
                return f"no memory with id {memory_id}"
            return f"forgotten ({memory_id})"

        async def search_memories(query: str, context: ToolContext) -> str:
            """Search what you remember about the user.

            Args:
                query: words to look for
            """
            if anonymous(context):
                return "nothing found: anonymous users have no memory"
            found = await self.search(
                query, user_id=context.user_id, tenant_id=context.tenant_id, limit=10
            )
            return "\n".join(f"- {r.text} (id {r.memory_id})" for r in found) or "nothing found"

        return (tool(remember), tool(forget), tool(search_memories))

    def for_agent(self, agent: Agent) -> Agent:
        """``agent`` with the memory tools added, if its long-term memory offers them."""
        options = agent.long_term_memory
        if options is None or not options.tools:
            return agent
        return replace(agent, tools=(*agent.tools, *self.tools()))

    def for_agents(self, agents: AgentSet) -> AgentSet:
        """The set with each agent's memory tools added (the same set if none has any)."""
        changed = [self.for_agent(a) for a in agents]
        if all(new is old for new, old in zip(changed, agents, strict=True)):
            return agents
        return type(agents)(changed, default=agents.default.name)  # (agents imports agent)

    # -- extraction (after a turn, off the user's wait) ------------------------------------

    async def extract(
        self, key: SessionKey, messages: Sequence[Any], model: Model, fence: MemoryFence
    ) -> int:
        """Ask ``model`` for new facts in a turn's user ``messages``; store them; count them."""
        from agenthost.models.base import complete
        from agenthost.models.tasks import extraction_request, parse_facts

        if key.user_id == DEFAULT_ID or not messages:
            return 0
        text = "\n".join(m.content for m in messages)
        known = [r.text for r, _ in await self._ranked(key.tenant_id, key.user_id, text, 20)]
        reply = await complete(model, extraction_request(messages, known))
        seen = {normalised(k) for k in known}
        added = 0
        for fact in parse_facts(reply.text):
            if normalised(fact) in seen or len(fact) > MAX_TEXT_CHARS:
                continue
            similar = await self._ranked(key.tenant_id, key.user_id, fact, 5)
            if any(normalised(r.text) == normalised(fact) for r, _ in similar):
                continue
            await self.add(
                fact,
                user_id=key.user_id,
                tenant_id=key.tenant_id,
                tags=["extracted"],
                session_id=key.session_id,
                run_id=messages[-1].run_id,
                fence=fence,
            )
            seen.add(normalised(fact))
            added += 1
        return added
