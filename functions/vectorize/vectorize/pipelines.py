"""The shipped pipelines, by name: ``text``, ``images`` and ``documents``. Each sinks into its own collection."""

from __future__ import annotations

import threading
from typing import Any

import fn

from .documents import has_text, needs_ocr, pages
from .milvus_store import milvus
from .ops import DESCRIPTOR_DIM, check_text, chunker, decode_image, image_descriptor, resize
from .pipeline import Pipeline

TEXT_DIM = 384
CHUNK_TOKENS = 128
CHUNK_OVERLAP = 32
# Each pipeline's collection, with the metadata fields a search may filter on (filters.build_filter); the
# other metadata is stored and returned, not filtered on. Declare a field here to make it filterable.
COLLECTIONS = {
    "text": milvus("text", dim=TEXT_DIM, metric="COSINE", index="HNSW",
                   fields={"id": "str", "source": "str", "topic": "str", "position": "int"}),
    "images": milvus("images", dim=DESCRIPTOR_DIM, metric="COSINE", index="FLAT", fields={"id": "str", "source": "str"}),
    "documents": milvus("documents", dim=TEXT_DIM, metric="COSINE", index="HNSW",
                        fields={"id": "str", "source": "str", "page": "int", "position": "int"}),
}


class ChunkStats:
    """A stateful operator: how many chunks every replica made and their mean length, in one shared ``fn.Dict``.

    Counting in a replica would give each replica its own numbers and lose them at scale-to-zero; a shared-state
    call per chunk would cost a hop per chunk. So each call counts here, and ``flush`` (once per ingest) adds what
    this replica counted to the shared totals with two atomic ``incr`` and answers the totals of all replicas."""

    DICT = "vectorize-stats"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chunks = 0
        self._chars = 0

    def __call__(self, text: str) -> str:
        with self._lock:
            self._chunks += 1
            self._chars += len(text)
        return text

    async def flush(self) -> dict[str, Any]:
        with self._lock:
            chunks, chars, self._chunks, self._chars = self._chunks, self._chars, 0, 0
        shared = fn.Dict(self.DICT)
        try:
            total_chars = await shared.aincr("chars", chars)
            total = await shared.aincr("chunks", chunks)
        except fn.FnError:
            with self._lock:  # kept for the next flush: the counts are not lost with a busy state server
                self._chunks += chunks
                self._chars += chars
            raise
        return {"chunks_seen": total, "mean_chunk_chars": round(total_chars / total, 1) if total else 0.0}


chunk_stats = ChunkStats()


def text_pipeline(tokenizer: Any) -> Pipeline:
    """text -> token chunks (128 with 32 overlap) -> MiniLM (remote, batched) -> Milvus ``text``."""
    chunk = chunker(tokenizer.count_tokens, tokenizer.token_spans, max_tokens=CHUNK_TOKENS, overlap=CHUNK_OVERLAP)
    return (Pipeline("text")
            .map(check_text)
            .flat_map(chunk)
            .map(chunk_stats)
            .map(remote="embed-text", arg="text")
            .sink(COLLECTIONS["text"]))


def documents_pipeline(tokenizer: Any) -> Pipeline:
    """PDF or scan -> pages (text layer, or rendered) -> OCR (remote, rendered pages only) -> token chunks -> MiniLM
    (remote, batched) -> Milvus ``documents``; every chunk keeps its page number. Blank pages are filtered out."""
    chunk = chunker(tokenizer.count_tokens, tokenizer.token_spans, max_tokens=CHUNK_TOKENS, overlap=CHUNK_OVERLAP)
    return (Pipeline("documents")
            .flat_map(pages)
            .map(remote="ocr-text", arg="image", when=needs_ocr)
            .filter(has_text)
            .flat_map(chunk)
            .map(chunk_stats)
            .map(remote="embed-text", arg="text")
            .sink(COLLECTIONS["documents"]))


def image_pipeline() -> Pipeline:
    """bytes -> decoded RGB -> fit in 256 px -> descriptor (remote, batched) -> Milvus ``images``."""
    return (Pipeline("images")
            .map(decode_image)
            .map(resize(256))
            .map(_png)
            .map(remote="embed-image", arg="image")
            .sink(COLLECTIONS["images"]))


def _png(image: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def embed_image_bytes(data: bytes) -> list[float]:
    return image_descriptor(decode_image(data))


KINDS = {"text": "text", "images": "image", "documents": "document"}  # what each pipeline's items carry
TEXT_KINDS = {"text", "document"}  # searched with a text query (and hybrid search: their chunks have text)
