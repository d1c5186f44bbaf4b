"""The deployed functions of the vectorize project.

- ``embed-text``: MiniLM (ONNX artifact), batched on the server side, on the gpu pool.
- ``embed-image``: the image descriptor, batched.
- ``ocr-text``: text of an image (RapidOCR, ONNX models inside the wheel).
- ``vector-store``: the one process that owns the Milvus Lite file (a server URI allows more).
- ``vector-ingest``: runs a pipeline over a batch of items and stores them; reports every item.
- ``vector-search``: ``POST /search/<collection>`` with a text query or an image upload.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
from typing import Annotated, Any

from pydantic import Field

import fn

from .milvus_store import Collection, StoreError, VectorStore, filter_expression
from .ops import check_text, decode_image
from .pipeline import Item, ItemError, Report
from .pipelines import KINDS, chunk_stats, embed_image_bytes, image_pipeline, text_pipeline

TOKENIZER = {"minilm-tokenizer": "models/minilm-l6-v2.tokenizer.json"}
MODELS = {"minilm": "models/minilm-l6-v2.onnx", **TOKENIZER}
MAX_ITEMS_PER_CALL = 256
MAX_ID_CHARS = 256


@fn.model(name="embed-text", pool="gpu", cpus=1, memory_mb=1024, artifacts=MODELS, max_batch_size=64, max_wait_ms=10,
          min_replicas=0, max_replicas=2, target_concurrency=64, max_concurrency=512, idle_timeout_s=120)
class EmbedText:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalized). onnxruntime on the CPU here."""

    def setup(self) -> None:
        from .minilm_onnx import MiniLM

        self.model = MiniLM(fn.artifact("minilm"), fn.artifact("minilm-tokenizer"))

    def __call__(self, text: list[str]) -> list[list[float]]:
        return self.model.embed(text).tolist()  # type: ignore[no-any-return]


@fn.function(name="embed-image", pool="gpu", cpus=0.5, max_batch_size=16, max_wait_ms=10, max_replicas=2,
             target_concurrency=16, max_concurrency=256, idle_timeout_s=120)
def embed_image(image: list[bytes]) -> list[list[float]]:
    """A 256-d near-duplicate descriptor per image (not semantic: see ops.image_descriptor)."""
    return [embed_image_bytes(data) for data in image]


@fn.model(name="ocr-text", pool="gpu", cpus=0.5, memory_mb=1024, max_replicas=2, idle_timeout_s=120,
          requirements=["rapidocr==3.10.0", "opencv-python-headless==4.13.0.92"])
class OcrText:
    """The text lines of an image, top to bottom, joined by newlines."""

    def setup(self) -> None:
        from rapidocr import RapidOCR

        self.engine = RapidOCR(params={"Global.use_cls": False})

    def __call__(self, image: bytes) -> str:
        import numpy as np

        from .ops import decode_image

        result = self.engine(np.asarray(decode_image(image))[:, :, ::-1])
        return "\n".join(str(line) for line in (result.txts or ()))


@fn.model(name="vector-store", pool="cpu", cpus=0.5, memory_mb=1024, min_replicas=0, max_replicas=1,
          max_concurrency=64, idle_timeout_s=300, timeout_s=120)
class VectorStoreFunction:
    """Owns the Milvus connection. One replica: Milvus Lite lets one process open its file."""

    def setup(self) -> None:
        self.store = VectorStore()

    def __call__(self, op: str, collection: str, rows: list[dict[str, Any]] | None = None,
                 keys: list[str] | None = None, vector: list[float] | None = None, top_k: int = 10,
                 expression: str = "", sink: dict[str, Any] | None = None) -> Any:
        if op == "upsert":
            if sink is None or sink.get("name") != collection:
                raise fn.BadRequest(f"upsert into {collection!r} needs its pipeline's sink (the collection's declaration)",
                                    status=400)
            self.store.ensure(Collection(**sink))
            return self.store.replace_items(collection, rows or [])
        if op == "known":
            return self.store.known(collection, keys or [])
        if op == "search":
            return self.store.search(collection, vector or [], top_k, expression)
        if op == "stats":
            return self.store.stats(collection)
        if op == "drop":
            return self.store.drop(collection)
        raise fn.BadRequest(f"op must be upsert, known, search, stats or drop; got {op!r}", status=400)


# ingest ------------------------------------------------------------------------------------------
_tokenizer: Any = None


def _text_tokenizer() -> Any:
    global _tokenizer
    if _tokenizer is None:  # chunking needs the tokenizer only, not the 90 MB model
        from .minilm_onnx import WordPieces

        _tokenizer = WordPieces(fn.artifact("minilm-tokenizer"))
    return _tokenizer


def _content(kind: str, raw: dict[str, Any]) -> bytes | str:
    if kind == "text":
        if "text" not in raw:
            raise ItemError("the item has no 'text' field")
        return check_text(raw["text"])
    encoded = raw.get("image_b64")
    if not isinstance(encoded, str):
        raise ItemError("the item has no 'image_b64' field (the image's bytes, base64-encoded)")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ItemError(f"image_b64 is not valid base64: {exc}") from None


def _item(kind: str, index: int, raw: Any, report: Report) -> tuple[Item, str] | None:
    try:
        if not isinstance(raw, dict):
            raise ItemError(f"an item must be a JSON object, got {type(raw).__name__}")
        content = _content(kind, raw)
        data = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
        sha = hashlib.sha256(data).hexdigest()
        given = raw.get("id")
        if given is not None and (not isinstance(given, str | int) or not str(given).strip()
                                  or len(str(given)) > MAX_ID_CHARS):
            raise ItemError(f"'id' must be a non-empty string of at most {MAX_ID_CHARS} characters")
        key = str(given) if given is not None else sha[:32]
        meta = {k: v for k, v in raw.items() if k not in {"text", "image_b64", "id"} and _storable(v)}
        meta["id"] = key
        meta.setdefault("source", "")
    except ItemError as exc:
        report.failed.append({"id": str(raw.get("id", f"#{index}")) if isinstance(raw, dict) else f"#{index}",
                              "source": raw.get("source", "") if isinstance(raw, dict) else "", "error": str(exc)})
        return None
    return Item(key, content, meta, index), sha


def _storable(value: Any) -> bool:
    try:
        return len(json.dumps(value)) <= 4096
    except (TypeError, ValueError):
        return False


@fn.function(name="vector-ingest", cpus=0.5, memory_mb=1024, max_replicas=2, timeout_s=900, idle_timeout_s=120,
             artifacts=TOKENIZER)
async def vector_ingest(pipeline: str, items: Annotated[list[Any], Field(max_length=MAX_ITEMS_PER_CALL)],
                        force: bool = False) -> dict[str, Any]:
    """Runs *pipeline* (``text`` or ``images``) over *items* and stores them; already-stored items are skipped.

    Text items: ``{"text": ..., "id"?: ..., "source"?: ..., other fields kept as metadata}``.
    Image items: ``{"image_b64": ..., "id"?: ..., "source"?: ...}``.
    """
    if pipeline not in KINDS:
        raise fn.BadRequest(f"pipeline must be one of {', '.join(KINDS)}, got {pipeline!r}", status=400)
    kind = KINDS[pipeline]
    report = Report()
    parsed = [p for p in (_item(kind, i, raw, report) for i, raw in enumerate(items)) if p is not None]
    flow = text_pipeline(_text_tokenizer()) if kind == "text" else image_pipeline()
    collection = flow.target.name
    known = await fn.acall("vector-store", op="known", collection=collection, keys=[item.key for item, _ in parsed])
    todo = []
    for item, sha in parsed:
        if known.get(item.key) == sha and not force:
            report.skipped += 1
        else:
            item.meta["_sha"] = sha
            todo.append(item)
    outputs = await flow.run(todo, report)
    failed = {entry["id"] for entry in report.failed}
    rows = [_row(item) for item in outputs if item.key not in failed]
    try:
        report.outputs = await fn.acall("vector-store", op="upsert", collection=collection, rows=rows,
                                        sink=dataclasses.asdict(flow.target))
    except (StoreError, fn.FnError) as exc:
        for key in sorted({row["item_key"] for row in rows}):
            report.failed.append({"id": key, "source": "", "error": f"not stored: {exc}"})
        rows = []
    report.stored = len({row["item_key"] for row in rows})
    return {**report.to_json(), "pipeline": pipeline, "replica_stats": chunk_stats.snapshot()}


def _row(item: Item) -> dict[str, Any]:
    meta = dict(item.meta)
    sha = meta.pop("_sha")
    position = int(meta.get("position", 0))
    if isinstance(item.value, list):
        vector = item.value
    else:
        raise ItemError("the pipeline did not end in a vector")
    row = {"pk": f"{item.key}#{position}", "item_key": item.key, "content_sha": sha, "vector": vector,
           "position": position, **{k: v for k, v in meta.items() if k not in {"pk", "vector", "item_key", "content_sha"}}}
    return row


# search ------------------------------------------------------------------------------------------
@fn.function(name="vector-search", cpus=0.25, max_replicas=2, timeout_s=60, idle_timeout_s=120,
             route="/search/{collection}")
async def vector_search(collection: str, query: str | None = None, image: bytes | None = None,
                        image_b64: str | None = None, top_k: Annotated[int, Field(ge=1, le=100)] = 5,
                        filter: str | dict[str, Any] | None = None,  # noqa: A002 - the HTTP API's field name
                        ) -> dict[str, Any]:
    """The *top_k* nearest items, best first: ``{"results": [{"id", "score", "metadata"}]}``."""
    if collection not in KINDS:
        raise fn.NotFound(f"no pipeline stores into {collection!r}; collections: {', '.join(KINDS)}", status=404)
    if image_b64 is not None:
        try:
            image = base64.b64decode(image_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise fn.BadRequest(f"image_b64 is not valid base64: {exc}", status=400) from None
    if KINDS[collection] == "text":
        if not isinstance(query, str) or not query.strip():
            raise fn.BadRequest("send a non-empty 'query' string to search the text collection", status=400)
        vector = await fn.acall("embed-text", text=query)
    else:
        if not image:
            raise fn.BadRequest(f"upload an 'image' (multipart) or send 'image_b64' to search {collection!r}", status=400)
        try:
            decode_image(image)
        except ItemError as exc:
            raise fn.BadRequest(str(exc), status=400) from None
        vector = await fn.acall("embed-image", image=image)
    try:
        expression = filter_expression(filter)
    except StoreError as exc:
        raise fn.BadRequest(exc.message, status=400) from None
    results = await fn.acall("vector-store", op="search", collection=collection, vector=vector, top_k=top_k,
                             expression=expression)
    return {"collection": collection, "results": results}
