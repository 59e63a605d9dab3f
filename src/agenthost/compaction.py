"""Context compaction: what falls out of a long session's window is summarised, not lost.

With ``Agent(compaction=Compaction())`` the model sees, on every turn, the
session's summary and then the messages after it (at most ``history_window``).
After a turn that leaves ``threshold`` or more messages outside the summary,
:class:`Compactor` folds the older ones into a new summary, leaving the last
``keep`` or so (the cut is always just before a user message, so a turn, and
with it every tool exchange, stays whole on one side):

- **Incremental**: the model gets the previous summary and only the messages
  since it, never the whole history; the messages come from the live window (or,
  if a long turn pushed some out of it, from the store by seq range).
- **Ordered**: it runs after the turn, as the next holder of the session's lock
  (:class:`~agenthost.upkeep.Upkeep`), so no two compactions of one session run
  at once, here or in another process, and none runs during a turn.
- **Checked**: the summary is appended through the session runtime's write, a
  compare-and-set on the session's revision like every other session write.
- **Safe to fail**: a model error leaves the history and the previous summary as
  they were; the failure is logged, counted, and appended as a summary record
  with ``error`` set (what ``GET /v1/sessions/{id}`` shows), and retried after
  ``retry_after`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from agenthost.errors import ConfigError, Conflict, ModelError
from agenthost.messages import Message
from agenthost.models.base import complete
from agenthost.models.tasks import summary_request
from agenthost.stores.base import SessionSummary

if TYPE_CHECKING:
    from agenthost.live import LiveSession
    from agenthost.models.base import Model
    from agenthost.session import Sessions

log = logging.getLogger("agenthost.compaction")

MAX_MESSAGES = 200
"""At most this many messages are folded into a summary at once (a backlog takes rounds)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Compaction:
    """How an agent compacts long sessions (see the module docstring).

    ``threshold``: compact after a turn that leaves this many messages outside the
    summary (default: ``history_window - 4``, room for one more tool-using turn
    before the window overflows). ``keep``: about how many recent messages stay
    verbatim (default: half the window). ``max_summary_chars``: the size the
    summary is asked to stay within. ``model``: the model that writes summaries
    (default: the session's own). ``timeout``: seconds one summary may take.
    """

    threshold: int | None = None
    keep: int | None = None
    max_summary_chars: int = 2000
    model: Model | str | None = None
    timeout: float = 120.0
    retry_after: float = 60.0

    def resolved(self, history_window: int) -> Compaction:
        """These options with their defaults filled in for a window, or ``ConfigError``."""
        threshold = self.threshold if self.threshold is not None else max(2, history_window - 4)
        threshold = min(threshold, history_window) if self.threshold is None else threshold
        keep = self.keep if self.keep is not None else min(history_window // 2, threshold - 1)
        if not 0 <= keep < threshold <= history_window:
            raise ConfigError(
                f"compaction needs 0 <= keep < threshold <= history_window; got keep={keep}, "
                f"threshold={threshold}, history_window={history_window}"
            )
        if self.max_summary_chars < 100:
            raise ConfigError("compaction max_summary_chars must be at least 100")
        if self.timeout <= 0 or self.retry_after < 0:
            raise ConfigError("compaction timeout must be positive and retry_after not negative")
        return replace(self, threshold=threshold, keep=keep)


def covered(live: LiveSession) -> int:
    """The last seq the session's summary covers (0: none)."""
    return live.summary.to_seq if live.summary is not None else 0


class Compactor:
    """Compacts sessions of one agent; :meth:`run` is called holding the session's lock."""

    def __init__(
        self,
        options: Compaction,
        runtime: Sessions,
        *,
        model_for: Callable[[dict[str, Any]], Model],
        clock: Callable[[], float],
        observer: Any = None,
    ) -> None:
        assert options.threshold is not None and options.keep is not None, "resolve it first"
        self.options = options
        self.threshold = options.threshold
        self.keep = options.keep
        self.runtime = runtime
        self.model_for = model_for
        self.clock = clock
        self.observer = observer
        self.succeeded = 0
        self.failed = 0

    def due(self, live: LiveSession) -> bool:
        if live.last_seq - covered(live) < self.threshold:
            return False
        summary = live.summary
        if summary is not None and summary.error is not None:
            return self.clock() - summary.created_at >= self.options.retry_after
        return True

    def cut(self, live: LiveSession) -> int | None:
        """The last seq to summarise: just before a user message, leaving about ``keep``."""
        start = covered(live)
        window = [m for m in live.window if m.seq > start]
        if not window:
            return None
        users = [m.seq for m in window if m.role == "user"]
        target = live.last_seq - self.keep + 1
        later = [seq for seq in users if seq >= target]
        earlier = [seq for seq in users if seq < target]
        if later:  # keep from the first user message among the last ``keep``
            cut = later[0] - 1
        elif earlier:  # one long turn: keep it whole
            cut = earlier[-1] - 1
        else:
            cut = live.last_seq - self.keep
        if window[0].seq > start + 1:  # a long turn pushed messages out of the window:
            first_user = users[0] if users else live.last_seq + 1  # fold in all of it
            cut = max(cut, first_user - 1)
        return cut if cut > start else None

    async def dropped(self, live: LiveSession, cut: int) -> list[Message]:
        """Messages after the summary up to ``cut``, whole turns, at most ``MAX_MESSAGES``:
        from the window, or from the store when a long turn pushed them out of it."""
        start = covered(live)
        end = min(cut, start + MAX_MESSAGES)
        window = live.window
        if window and window[0].seq <= start + 1:
            messages = [m for m in window if start < m.seq <= end]
        else:
            messages = await self.runtime.store.messages(
                live.key, after_seq=start, limit=end - start
            )
        if end < cut:  # a backlog: fold it in whole turns, a piece at a time
            users = [i for i, m in enumerate(messages) if m.role == "user" and i > 0]
            messages = messages[: users[-1]] if users else messages
        return messages

    async def run(self, live: LiveSession) -> bool:
        """Compact ``live`` once if it is due; True if a new summary was stored."""
        if not self.due(live):
            return False
        cut = self.cut(live)
        if cut is None:
            return False
        messages = await self.dropped(live, cut)
        if not messages:
            return False
        previous = live.summary
        model = self.model_for(live.config)
        began = time.perf_counter()
        try:
            text = await self._summarise(model, previous.text if previous else "", messages)
        except Exception as exc:  # a provider or adapter failure must not lose anything
            await self._failed(live, model.name, exc, time.perf_counter() - began)
            return False
        summary = SessionSummary(
            (previous.version if previous else 0) + 1,
            text,
            1,
            messages[-1].seq,
            self.clock(),
            model.name,
        )
        await self.runtime.commit(live, summary=summary)
        self.succeeded += 1
        self._observe("completed", time.perf_counter() - began)
        log.debug("compacted %s up to seq %d", live.key, summary.to_seq)
        return True

    async def _summarise(self, model: Model, previous: str, messages: Sequence[Message]) -> str:
        options = self.options
        request = summary_request(previous, messages, options.max_summary_chars)
        async with asyncio.timeout(options.timeout):
            reply = await complete(model, request)
        text = reply.text.strip()
        if not text:
            raise ModelError("the model returned an empty summary")
        limit = 2 * options.max_summary_chars  # a model that ignores the size still fits
        return text if len(text) <= limit else text[: limit - 1] + "…"

    async def _failed(self, live: LiveSession, model: str, exc: BaseException, took: float) -> None:
        self.failed += 1
        self._observe("failed", took)
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        log.warning("compaction of %s failed (history and summary kept): %s", live.key, error)
        previous = live.summary
        record = SessionSummary(
            (previous.version if previous else 0) + 1,
            previous.text if previous else "",
            previous.from_seq if previous else 1,
            covered(live),
            self.clock(),
            model,
            error[:500],
        )
        try:
            await self.runtime.commit(live, summary=record)
        except Conflict:
            raise
        except Exception as store_error:
            log.warning("could not record the failed compaction of %s: %s", live.key, store_error)

    def _observe(self, status: str, seconds: float) -> None:
        hook = getattr(self.observer, "compaction_finished", None)
        if hook is not None:
            hook(status, seconds)
