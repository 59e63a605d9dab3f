"""A model-based test of the Host over one store shared by two Hosts ("processes").

Hypothesis drives random interleavings of turns, state patches, config changes,
evictions, erasures and restarts through either Host; after every step what the
store holds must equal a plain reference model of the sessions.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from agenthost import Agent, Host, MemoryStore, SQLiteStore
from agenthost.errors import NotFound
from agenthost.models import FunctionModel, ModelRequest

USERS = ("ann", "ben")
SESSIONS = ("s1", "s2")
HOSTS = st.integers(0, 1)
KEYS = st.sampled_from(("a", "b", "c"))


def _echo(request: ModelRequest) -> str:
    return "re: " + request.messages[-1].content


class HostsSharingAStore(RuleBasedStateMachine):
    backend = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.agent = Agent(name="m", model=FunctionModel(_echo), history_window=4)
        self.sessions: dict[tuple[str, str], dict[str, Any]] = {}
        self.hosts: list[Host] = []
        self.turns = 0

    def _store(self) -> Any:
        if self.backend == "memory":
            return self.memory
        return SQLiteStore(self.path)

    def _host(self) -> Host:
        return Host(self.agent, store=self._store(), cleanup_interval=None)

    @initialize(tmp=st.just(None))
    def start(self, tmp: None) -> None:
        import tempfile

        self.directory = tempfile.TemporaryDirectory()
        self.path = Path(self.directory.name) / "model.db"
        self.memory = MemoryStore(max_messages=None)
        self.hosts = [self._host(), self._host()]
        for host in self.hosts:
            self.loop.run_until_complete(host.start())

    def teardown(self) -> None:
        for host in self.hosts:
            self.loop.run_until_complete(host.close())
        self.loop.close()
        if hasattr(self, "directory"):
            self.directory.cleanup()

    def _run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def _entry(self, user: str, session: str) -> dict[str, Any]:
        return self.sessions.setdefault((user, session), {"texts": [], "state": {}, "config": {}})

    @rule(h=HOSTS, user=st.sampled_from(USERS), session=st.sampled_from(SESSIONS))
    def turn(self, h: int, user: str, session: str) -> None:
        self.turns += 1
        text = f"turn {self.turns}"
        result = self._run(self.hosts[h].run(text, user_id=user, session_id=session))
        assert result.reply == "re: " + text
        self._entry(user, session)["texts"].append(text)

    @rule(
        h=HOSTS,
        user=st.sampled_from(USERS),
        session=st.sampled_from(SESSIONS),
        key=KEYS,
        value=st.one_of(st.none(), st.integers(0, 9)),
    )
    def patch_state(self, h: int, user: str, session: str, key: str, value: int | None) -> None:
        state = self._run(
            self.hosts[h].update_state({key: value}, user_id=user, session_id=session)
        )
        model = self._entry(user, session)["state"]
        if value is None:
            model.pop(key, None)
        else:
            model[key] = value
        assert state == model

    @rule(
        h=HOSTS,
        user=st.sampled_from(USERS),
        session=st.sampled_from(SESSIONS),
        temperature=st.sampled_from((0.0, 0.5, 1.0, None)),
    )
    def patch_config(self, h: int, user: str, session: str, temperature: float | None) -> None:
        patch = {"temperature": temperature}
        exists = (user, session) in self.sessions
        try:
            self._run(self.hosts[h].update_session(user_id=user, session_id=session, config=patch))
        except NotFound:
            assert not exists
            return
        assert exists
        config = self.sessions[(user, session)]["config"]
        if temperature is None:
            config.pop("temperature", None)
        else:
            config["temperature"] = temperature

    @rule(h=HOSTS, user=st.sampled_from(USERS), session=st.sampled_from(SESSIONS))
    def evict(self, h: int, user: str, session: str) -> None:
        self.hosts[h].evict(user_id=user, session_id=session)

    @rule(h=HOSTS, user=st.sampled_from(USERS), session=st.sampled_from(SESSIONS))
    def erase_session(self, h: int, user: str, session: str) -> None:
        deleted = self._run(self.hosts[h].clear(user_id=user, session_id=session))
        assert deleted == (1 if self.sessions.pop((user, session), None) is not None else 0)

    @rule(h=HOSTS, user=st.sampled_from(USERS))
    def erase_user(self, h: int, user: str) -> None:
        self._run(self.hosts[h].erase_user(user_id=user))
        for key in [k for k in self.sessions if k[0] == user]:
            del self.sessions[key]

    @rule(h=HOSTS)
    def restart(self, h: int) -> None:
        self._run(self.hosts[h].close())
        self.hosts[h] = self._host()
        self._run(self.hosts[h].start())

    @invariant()
    def store_matches_the_model(self) -> None:
        if not self.hosts:
            return
        host = self.hosts[0]
        for user in USERS:
            for session in SESSIONS:
                record = self._run(host.get_session(user_id=user, session_id=session))
                model = self.sessions.get((user, session))
                if model is None:
                    assert record is None, (user, session)
                    continue
                assert record is not None, (user, session)
                assert record.state == model["state"]
                assert record.config == model["config"]
                history = self._run(host.history(user_id=user, session_id=session))
                texts = model["texts"]
                assert [m.content for m in history if m.role == "user"] == texts
                assert [m.role for m in history] == ["user", "assistant"] * len(texts)
                assert [m.seq for m in history] == list(range(1, len(history) + 1))


class OnSQLite(HostsSharingAStore):
    backend = "sqlite"


PROFILE = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOnMemory = HostsSharingAStore.TestCase
TestOnMemory.settings = PROFILE
TestOnSQLite = OnSQLite.TestCase
TestOnSQLite.settings = PROFILE
