"""Memory search, shared by every store: the terms of a text, and how stores index them.

Every backend ranks with its own full-text index (SQLite FTS5 and ``bm25``,
PostgreSQL ``tsvector`` with a GIN index and ``ts_rank``, a per-user inverted
index of sorted sets in Redis, dictionaries in the MemoryStore), but all of them
index the same *terms*, made here once, so a query means the same on each:

- Unicode text is NFKC-normalised and case-folded, then split into words;
- a run of CJK characters (no spaces between words) becomes its overlapping
  pairs of characters, so "我叫张三" matches "张三";
- common English function words are dropped, and a plural ``s`` is stripped
  ("names" matches "name").

A memory is indexed under its owner's token too (:func:`owner_token`, a hash of
tenant and user): a query asks for the owner *and* any of its terms, so the index
itself only ever walks one user's entries, however many users share it.
"""

from __future__ import annotations

import array
import hashlib
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence

MAX_QUERY_TERMS = 32
"""A long message is searched by its first this many distinct terms."""
MAX_TERM_CHARS = 64
"""Longer "words" (hashes, pasted blobs) are not terms: no index wants them."""

_WORD = re.compile(r"[^\W_]+")  # letters and digits: "snake_case" is two words
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")
_STOP_WORDS = frozenset(
    """a about after again all also am an and any are as at be been before being but by can
    could did do does doing done for from had has have having he her here hers him his how i
    if in into is it its just me more most my no nor not now of off on once only or other our
    ours out over own please same she should so some such than that the their theirs them then
    there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours""".split()  # noqa: SIM905
)


def _stem(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    """The index terms of ``text``, in order, with repeats (term frequency counts)."""
    out: list[str] = []
    for word in _WORD.findall(unicodedata.normalize("NFKC", text).casefold()):
        if len(word) > MAX_TERM_CHARS:
            continue
        if word.isascii():
            if len(word) > 1 and word not in _STOP_WORDS:
                out.append(_stem(word))
            continue
        last = 0
        for run in _CJK.finditer(word):
            if run.start() > last:
                out.append(word[last : run.start()])
            chars = run.group()
            out.extend(chars[i : i + 2] for i in range(max(1, len(chars) - 1)))
            last = run.end()
        if last < len(word):
            out.append(word[last:])
    return out


def document_terms(text: str, kind: str | None, tags: Iterable[str]) -> list[str]:
    """What a memory is found by: its text, its kind and its tags."""
    return terms(" ".join([text, kind or "", *tags]))


def query_terms(text: str) -> list[str]:
    """The distinct terms of a query, in order of first appearance, at most ``MAX_QUERY_TERMS``."""
    return list(dict.fromkeys(terms(text)))[:MAX_QUERY_TERMS]


def owner_token(tenant_id: str, user_id: str) -> str:
    """An index term naming one user of one tenant (letters and digits only)."""
    digest = hashlib.blake2b(f"{tenant_id}\x1f{user_id}".encode(), digest_size=10).hexdigest()
    return "o" + digest


# -- SQLite FTS5 ----------------------------------------------------------------------


def fts5_query(owner: str, query: Sequence[str]) -> str:
    """``owner:"o…" AND body:("t1" OR "t2")``: terms are quoted, so nothing is syntax."""
    alternatives = " OR ".join('"' + t.replace('"', '""') + '"' for t in query)
    return f'owner:"{owner}" AND body:({alternatives})'


# -- PostgreSQL -----------------------------------------------------------------------


def _lexeme(term: str) -> str:
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def tsvector_text(owner: str, document: Sequence[str]) -> str:
    """A ``tsvector`` literal of the owner token and the terms, with their positions.

    Given as literal lexemes (no text search configuration re-parses them), so
    PostgreSQL indexes exactly the terms every other store indexes.
    """
    positions: dict[str, list[int]] = {}
    for index, term in enumerate(document[:16_000], start=2):
        positions.setdefault(term, []).append(index)
    parts = [f"{_lexeme(owner)}:1"]
    parts += [f"{_lexeme(t)}:{','.join(map(str, p[:256]))}" for t, p in positions.items()]
    return " ".join(parts)


def tsquery_text(owner: str, query: Sequence[str]) -> str:
    return f"{_lexeme(owner)} & ({' | '.join(_lexeme(t) for t in query)})"


# -- the MemoryStore's and Redis's own ranking -----------------------------------------

BM25_K1 = 1.2
BM25_B = 0.75


def bm25(tf: float, df: int, total: int, length: int, average: float) -> float:
    """The Okapi BM25 weight of one term in one memory (what FTS5's ``bm25()`` computes)."""
    idf = math.log(1 + (total - df + 0.5) / (df + 0.5))
    norm = BM25_K1 * (1 - BM25_B + BM25_B * length / max(average, 1.0))
    return idf * tf * (BM25_K1 + 1) / (tf + norm)


# -- embeddings -----------------------------------------------------------------------


def pack_vector(vector: Sequence[float]) -> bytes:
    """A vector as little-endian float32 bytes (how every store keeps embeddings)."""
    packed = array.array("f", vector)
    if array.array("H", [1]).tobytes() != b"\x01\x00":  # pragma: no cover - big-endian
        packed.byteswap()
    return packed.tobytes()


def unpack_vector(data: bytes | None) -> list[float] | None:
    if not data:
        return None
    vector = array.array("f")
    vector.frombytes(data)
    if array.array("H", [1]).tobytes() != b"\x01\x00":  # pragma: no cover - big-endian
        vector.byteswap()
    return vector.tolist()


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b) or not a:
        return 0.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0
