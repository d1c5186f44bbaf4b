"""The shipped pipelines, by name: ``text``, ``images`` and ``documents``. Each sinks into its own collection."""

from __future__ import annotations

from typing import Any

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
    """A stateful operator: running counts and the mean chunk length, kept in the replica that runs it."""

    def __init__(self) -> None:
        self.chunks = 0
        self.mean_chars = 0.0

    def __call__(self, text: str) -> str:
        self.chunks += 1
        self.mean_chars += (len(text) - self.mean_chars) / self.chunks
        return text

    def snapshot(self) -> dict[str, Any]:
        return {"chunks_seen": self.chunks, "mean_chunk_chars": round(self.mean_chars, 1)}


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
