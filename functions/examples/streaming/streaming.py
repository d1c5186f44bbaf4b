"""Streams between functions: text -> sentences -> one vector per sentence, streamed end to end.

``sentences`` yields each sentence as it finds it; ``embed-sentences`` reads a stream of sentences as an
argument and yields a vector for each while the sentences are still being produced; ``embed-text`` plugs one
into the other and streams the vectors to its caller. The sentences flow from ``sentences`` to
``embed-sentences`` directly (through the platform's stream broker, with back-pressure): ``embed-text`` passes
the stream, it never relays a sentence. The "embedding" is a deliberately tiny hashing of character trigrams so
the example runs anywhere; swap in a real model (functions/vectorize) and nothing else changes.

    fnctl deploy functions/examples/streaming
    curl -N -H "Authorization: Bearer $KEY" -H "Accept: text/event-stream" \\
         -d '{"text": "One sentence. Another one! A third?"}' http://127.0.0.1:8000/embed-text
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator

import fn


@fn.function(cpus=0.1)
def sentences(text: str) -> Iterator[str]:
    """Each sentence of *text*, as it is found."""
    for match in re.finditer(r"[^.!?]+[.!?]*", text):
        sentence = match.group().strip()
        if sentence:
            yield sentence


def _embed(sentence: str, dims: int) -> list[float]:
    vector = [0.0] * dims
    padded = f"  {sentence.lower()} "
    for i in range(len(padded) - 2):
        digest = hashlib.blake2b(padded[i:i + 3].encode(), digest_size=4).digest()
        vector[int.from_bytes(digest, "big") % dims] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [round(v / norm, 6) for v in vector]


@fn.function(cpus=0.1)
def embed_sentences(sentences: Iterator[str], dims: int = 64) -> Iterator[dict[str, object]]:
    """A vector per sentence of a stream, yielded as each sentence arrives."""
    for sentence in sentences:
        yield {"sentence": sentence, "vector": _embed(sentence, dims)}


@fn.function(cpus=0.1)
def embed_text(text: str, dims: int = 64) -> Iterator[dict[str, object]]:
    """text -> sentences -> vectors: passes the sentences' stream on, unread, and streams the vectors."""
    yield from fn.ref("embed-sentences").stream(sentences=fn.ref("sentences").stream(text=text), dims=dims)
