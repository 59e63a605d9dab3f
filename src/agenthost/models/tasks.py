"""Work the host gives a model besides a user's turn: summaries and memory extraction.

Both are ordinary model requests whose instructions start with a marker, so any
model can serve them (the session's, or a cheaper one configured for the job),
and the offline model can recognise them and answer deterministically:

- a **summary** request carries the current summary and the messages that fell
  out of the window since; the answer is the new summary (it never needs the
  whole history again);
- an **extraction** request carries a turn's user messages and the facts already
  known; the answer is new facts about the user, one per line, or ``NONE``.

The offline model keeps facts such as names ("The user's name is Alice.") and
what users say about themselves, so tests and the demo show what a real model's
summary or memory would give.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from agenthost.messages import Message
from agenthost.models.base import ModelRequest

SUMMARY_MARK = "[agenthost:summary]"
EXTRACTION_MARK = "[agenthost:memory]"
MAX_MESSAGE_CHARS = 2000
"""One message's share of a summary or extraction request (longer ones are cut)."""

SUMMARY_INSTRUCTIONS = (
    SUMMARY_MARK + " You keep the running summary of a conversation between a user and an "
    "assistant. You get the current summary and the messages that follow it. Reply with the "
    "updated summary only, as short lines starting with '- ': keep every durable fact (names, "
    "preferences, decisions, numbers, open tasks), drop small talk, write in the third person, "
    "at most {max_chars} characters."
)
EXTRACTION_INSTRUCTIONS = (
    EXTRACTION_MARK + " From the user's messages below, list the facts about the user worth "
    "remembering in later conversations (name, preferences, circumstances), one per line "
    "starting with '- ', in the third person (\"The user's name is Alice.\"). Leave out facts "
    "already known. Reply NONE if there is nothing new."
)


def transcript(messages: Iterable[Message]) -> str:
    lines = []
    for m in messages:
        text = m.content if len(m.content) <= MAX_MESSAGE_CHARS else m.content[:MAX_MESSAGE_CHARS]
        if m.role == "tool":
            lines.append(f"tool {m.name or ''}: {text}")
        elif m.tool_calls:
            calls = ", ".join(f"{c.name}({c.arguments[:200]})" for c in m.tool_calls)
            lines.append(f"assistant: {text} [called {calls}]".replace(":  [", ": ["))
        else:
            lines.append(f"{m.role}: {text}")
    return "\n".join(lines)


def summary_request(previous: str, messages: Sequence[Message], max_chars: int) -> ModelRequest:
    first, last = messages[0].seq, messages[-1].seq
    body = (
        f"Current summary:\n{previous or '(none yet)'}\n\n"
        f"Messages {first}-{last}:\n{transcript(messages)}"
    )
    instructions = SUMMARY_INSTRUCTIONS.format(max_chars=max_chars)
    return ModelRequest(instructions, [Message("user", body)])


def extraction_request(messages: Sequence[Message], known: Sequence[str]) -> ModelRequest:
    facts = "\n".join(f"- {k}" for k in known) or "(none)"
    body = f"Known facts:\n{facts}\n\nMessages:\n{transcript(messages)}"
    return ModelRequest(EXTRACTION_INSTRUCTIONS, [Message("user", body)])


def parse_facts(reply: str, *, limit: int = 10) -> list[str]:
    """The facts in an extraction answer: its ``- `` lines (``NONE``: none)."""
    facts = []
    for line in reply.splitlines():
        line = line.strip()
        if line.startswith(("- ", "* ")) and len(line) > 2:
            facts.append(line[2:].strip())
    return [f for f in facts if f and f.upper() != "NONE"][:limit]


# -- the offline model's answers --------------------------------------------------------

_NAME = re.compile(r"\b(?:my name is|call me|the user's name is)\s+([^\s,.!?;:\"]+)", re.IGNORECASE)
_ABOUT_ME = re.compile(
    r"\b(?:i like|i love|i prefer|i live in|i work (?:at|as|for)|i am allergic to|"
    r"my favou?rite \w+ is)\b[^.!?\n]*",
    re.IGNORECASE,
)
_COUNT = re.compile(r"^- (\d+) messages so far\.$")
_MAX_CHARS = re.compile(r"at most (\d+) characters")


def _user_lines(body: str, header: str) -> list[str]:
    _, _, section = body.partition(header)
    return [line[6:] for line in section.splitlines() if line.startswith("user: ")]


def _facts_of(text: str) -> list[str]:
    facts = [f"The user's name is {m.group(1)}." for m in _NAME.finditer(text)]
    for match in _ABOUT_ME.finditer(text):
        statement = match.group(0).strip()
        facts.append(f"The user said: {statement[0].upper()}{statement[1:]}.")
    return facts


def _merge(facts: list[str], new: Iterable[str]) -> list[str]:
    """Add ``new`` facts; a newer name replaces an older one."""
    for fact in new:
        if fact.startswith("The user's name is "):
            facts = [f for f in facts if not f.startswith("The user's name is ")]
        if fact in facts:
            facts.remove(fact)
        facts.append(fact)
    return facts


def offline_answer(request: ModelRequest) -> str | None:
    """The offline model's deterministic answer to a task request; None for a user's turn."""
    instructions = request.instructions
    if not instructions.startswith((SUMMARY_MARK, EXTRACTION_MARK)) or not request.messages:
        return None
    body = request.messages[-1].content
    if instructions.startswith(EXTRACTION_MARK):
        known_section, _, _ = body.partition("\n\nMessages:\n")
        known = {line[2:] for line in known_section.splitlines() if line.startswith("- ")}
        found: list[str] = []
        for line in _user_lines(body, "\n\nMessages:\n"):
            found = _merge(found, _facts_of(line))
        new = [f for f in found if f not in known]
        return "\n".join(f"- {f}" for f in new) if new else "NONE"
    current, _, new_section = body.partition("\n\nMessages ")
    facts: list[str] = []
    count = 0
    for line in current.splitlines():
        counted = _COUNT.match(line)
        if counted:
            count = int(counted.group(1))
        elif line.startswith("- "):
            facts.append(line[2:])
    for line in _user_lines(new_section, "\n"):
        facts = _merge(facts, _facts_of(line))
    span = re.match(r"(\d+)-(\d+):", new_section)
    count += int(span.group(2)) - int(span.group(1)) + 1 if span else 0
    limit = int(m.group(1)) if (m := _MAX_CHARS.search(instructions)) else 2000
    lines = [f"- {f}" for f in facts] + [f"- {count} messages so far."]
    while len("\n".join(lines)) > limit and len(lines) > 1:
        oldest = next((i for i, line in enumerate(lines) if "name is" not in line), 0)
        lines.pop(oldest)
    return "\n".join(lines)
