"""The deployed functions of the vectorize project.

Internal (no HTTP endpoint; only the functions here, and other functions of the cluster, call them):

- ``embed-text``: MiniLM (ONNX artifact), batched on the server side, on the gpu pool.
- ``embed-image``: the image descriptor, batched.
- ``ocr-text``: text of an image (RapidOCR, ONNX models inside the wheel): the ``documents`` pipeline's scanned pages.
- ``vector-store``: the one process that owns the Milvus Lite file (a server URI allows more).

On HTTP, with an API key (``fnctl vectorize`` calls them):

- ``vector-ingest``: runs a pipeline (``text``, ``images``, ``documents``) over a batch of items and stores them;
  reports every item (and every failed page of a document).
- ``vector-search``: ``POST /search/<collection>`` with a text query or an image upload, and a structured filter.
- ``vector-admin``: a pipeline's collection's row count, or dropping it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import Field

import fn

from .documents import MAX_DOCUMENT_BYTES, kind_of
from .filters import MAX_STRING_CHARS, FilterError, build_filter, plain_text
from .milvus_store import (
    RESERVED_FIELDS,
    STORE_SETTINGS,
    Collection,
    StoreError,
    VectorStore,
    check_placement,
    store_replicas,
)
from .ops import b64_image, check_text, decode_image
from .pipeline import Item, ItemError, Pipeline, Report
from .pipelines import (
    COLLECTIONS,
    KINDS,
    TEXT_KINDS,
    chunk_stats,
    documents_pipeline,
    embed_image_bytes,
    image_pipeline,
    text_pipeline,
)

TOKENIZER = {"minilm-tokenizer": "models/minilm-l6-v2.tokenizer.json"}
MODELS = {"minilm": "models/minilm-l6-v2.onnx", **TOKENIZER}
MAX_ITEMS_PER_CALL = 256
MAX_ID_CHARS = 256
MAX_META_FIELDS = 32
MAX_NAME_CHARS = 64
MAX_QUERY_CHARS = 4000
PIPELINE_FIELDS = {"position", "start", "end"}  # set by the pipeline for every row, never by an item
FIELD_TYPES = {"str": (str,), "int": (int,), "float": (int, float)}


@fn.model(name="embed-text", pool="gpu", cpus=1, memory_mb=1024, artifacts=MODELS, max_batch_size=64, max_wait_ms=10,
          min_replicas=0, max_replicas=2, target_concurrency=64, max_concurrency=512, idle_timeout_s=120, internal=True)
class EmbedText:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalized). onnxruntime on the CPU here."""

    def setup(self) -> None:
        from .minilm_onnx import MiniLM

        self.model = MiniLM(fn.artifact("minilm"), fn.artifact("minilm-tokenizer"))

    def __call__(self, text: list[str]) -> list[list[float]]:
        return self.model.embed(text).tolist()  # type: ignore[no-any-return]


@fn.function(name="embed-image", pool="gpu", cpus=0.5, max_batch_size=16, max_wait_ms=10, max_replicas=2,
             target_concurrency=16, max_concurrency=256, idle_timeout_s=120, internal=True)
def embed_image(image: list[bytes]) -> list[list[float]]:
    """A 256-d near-duplicate descriptor per image (not semantic: see ops.image_descriptor)."""
    return [embed_image_bytes(data) for data in image]


@fn.model(name="ocr-text", pool="gpu", cpus=0.5, memory_mb=1024, max_replicas=2, idle_timeout_s=120, internal=True,
          requirements=["rapidocr==3.10.0", "opencv-python-headless==4.13.0.92"])
class OcrText:
    """The text lines of an image, top to bottom, joined by newlines."""

    def setup(self) -> None:
        from rapidocr import RapidOCR

        self.engine = RapidOCR(params={"Global.use_cls": False, "Global.log_level": "warning"})
        self.lock = threading.Lock()  # RapidOCR keeps per-call state: concurrent calls (a document's pages) take turns

    def __call__(self, image: bytes) -> str:
        import numpy as np

        from .ops import decode_image

        pixels = np.asarray(decode_image(image))[:, :, ::-1]
        with self.lock:
            result = self.engine(pixels)
        return "\n".join(str(line) for line in (result.txts or ()))


def store_env() -> dict[str, str]:
    """The store's settings as the deploying shell has them (``FN_MILVUS_URI=http://milvus:19530 fnctl deploy
    functions/vectorize``): decorator options are read when deploy packages the project, so they reach the replica."""
    return {name: os.environ[name] for name in STORE_SETTINGS if os.environ.get(name)}


# Sync __call__: each call runs on one of the replica's max_concurrency threads, so searches run beside an ingest;
# writes queue for the store's one writer thread (milvus_store.VectorStore), which no search waits for.
@fn.model(name="vector-store", pool="cpu", cpus=0.5, memory_mb=1024, min_replicas=0, max_replicas=store_replicas(),
          max_concurrency=64, idle_timeout_s=300, timeout_s=120, internal=True, env=store_env())
class VectorStoreFunction:
    """Owns the Milvus connection. One replica with Milvus Lite, which lets one process open its file; up to
    VECTORIZE_STORE_REPLICAS with a Milvus server. Internal: its callers (ingest, search, admin) check what
    reaches it; *expression* is built by filters.build_filter."""

    def setup(self) -> None:
        check_placement()  # the deploy's setup() check fails with the setting to use
        self.store = VectorStore()  # opened on first use: the deploy's check must not take Milvus Lite's file lock

    def __call__(self, op: str, collection: str, rows: list[dict[str, Any]] | None = None,
                 keys: list[str] | None = None, vector: list[float] | None = None, top_k: int = 10,
                 expression: str = "", sink: dict[str, Any] | None = None, mode: str = "dense", query: str = "") -> Any:
        if op == "upsert":
            if sink is None or sink.get("name") != collection:
                raise fn.BadRequest(f"upsert into {collection!r} needs its pipeline's sink (the collection's declaration)",
                                    status=400)
            if not rows:
                return 0  # an ingest whose items were all skipped writes nothing
            self.store.ensure(Collection(**sink))
            return self.store.replace_items(collection, rows)
        if op == "known":
            return self.store.known(collection, keys or [])
        if op == "search":
            return self.store.search(collection, vector or [], top_k, expression, mode, query)
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
    if kind == "document":
        if "document_b64" not in raw:
            raise ItemError("the item has no 'document_b64' field (a PDF, PNG or JPEG file's bytes, base64-encoded)")
        page = raw.get("page", 1)
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            raise ItemError(f"'page' is the number of the document's first page, a whole number >= 1; got {page!r}")
        data = b64_image(raw["document_b64"], "document_b64", MAX_DOCUMENT_BYTES)
        kind_of(data)  # not a PDF or an image: refused before any work
        return data
    if "image_b64" not in raw:
        raise ItemError("the item has no 'image_b64' field (the image's bytes, base64-encoded)")
    return b64_image(raw["image_b64"])


def _key(raw: dict[str, Any], sha: str) -> str:
    given = raw.get("id")
    if given is None:
        return sha[:32]
    if isinstance(given, bool) or not isinstance(given, str | int) or not str(given).strip() \
            or len(str(given)) > MAX_ID_CHARS or not plain_text(str(given)):
        raise ItemError(f"'id' must be a non-empty string of at most {MAX_ID_CHARS} characters, without control "
                        f"characters")
    return str(given)


def _metadata(raw: dict[str, Any], collection: Collection) -> dict[str, Any]:
    """The item's other fields, stored beside its vectors; the collection's declared ones (searches filter on them)
    must have their declared type."""
    meta = {k: v for k, v in raw.items() if k not in {"text", "image_b64", "document_b64", "id"}}
    if len(meta) > MAX_META_FIELDS:
        raise ItemError(f"the item has {len(meta)} metadata fields, over the limit of {MAX_META_FIELDS}")
    owned = RESERVED_FIELDS | PIPELINE_FIELDS
    for name, value in meta.items():
        if not 0 < len(name) <= MAX_NAME_CHARS or name.startswith("$") or not plain_text(name) or name in owned:
            raise ItemError(f"metadata field {name[:MAX_NAME_CHARS]!r}: a name is 1 to {MAX_NAME_CHARS} characters, not "
                            f"starting with '$', and not one the pipeline sets ({', '.join(sorted(owned))})")
        declared = collection.fields.get(name)
        if declared is not None and (isinstance(value, bool) or not isinstance(value, FIELD_TYPES[declared])):
            raise ItemError(f"metadata field {name!r} is a {declared} field of {collection.name!r} (searches filter on "
                            f"it), got {type(value).__name__}")
        if declared == "str" and (len(value) > MAX_STRING_CHARS or not plain_text(value)):
            raise ItemError(f"metadata field {name!r}: at most {MAX_STRING_CHARS} characters, without control characters")
    return {k: v for k, v in meta.items() if _storable(v)}


def _item(kind: str, collection: Collection, index: int, raw: Any, report: Report) -> tuple[Item, str] | None:
    try:
        if not isinstance(raw, dict):
            raise ItemError(f"an item must be a JSON object, got {type(raw).__name__}")
        content = _content(kind, raw)
        data = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
        sha = hashlib.sha256(data).hexdigest()
        key = _key(raw, sha)
        meta = _metadata(raw, collection)
        meta["id"] = key
        meta.setdefault("source", "")
    except ItemError as exc:
        where = raw.get("source", "") if isinstance(raw, dict) else ""
        report.failed.append({"id": str(raw.get("id", f"#{index}"))[:MAX_ID_CHARS] if isinstance(raw, dict) else f"#{index}",
                              "source": where if isinstance(where, str) else "", "error": str(exc)})
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
    """Runs *pipeline* (``text``, ``images`` or ``documents``) over *items* and stores them; already-stored items are
    skipped.

    Text items: ``{"text": ..., "id"?: ..., "source"?: ..., other fields kept as metadata}``.
    Image items: ``{"image_b64": ..., "id"?: ..., "source"?: ...}``.
    Document items: ``{"document_b64": PDF | PNG | JPEG, "id"?: ..., "source"?: ..., "page"?: its first page's number}``;
    a page that fails is reported with its number and the rest of the document is stored (and redone next time).
    """
    if pipeline not in KINDS:
        raise fn.BadRequest(f"pipeline must be one of {', '.join(KINDS)}, got {pipeline!r}", status=400)
    kind = KINDS[pipeline]
    report = Report()
    parsed = [p for p in (_item(kind, COLLECTIONS[pipeline], i, raw, report) for i, raw in enumerate(items)) if p is not None]
    flow = _pipeline(kind)
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
    by_page = kind == "document"  # a document's failure with a page is that page's; elsewhere `page` is metadata
    failed = {entry["id"] for entry in report.failed if not (by_page and "page" in entry)}  # whole items
    partial = {entry["id"] for entry in report.failed if by_page and "page" in entry}  # some pages: store the rest
    outputs = [item for item in outputs if item.key not in failed]
    produced = {item.key for item in outputs}
    for item in todo:
        if item.key not in produced and item.key not in failed | partial:
            report.failed.append({"id": item.key, "source": item.meta.get("source", ""),
                                  "error": "nothing to store: no page has text (blank, or OCR read nothing)"})
    counts = Counter(item.key for item in outputs)
    rows = [_row(item, position, counts[item.key], item.key in partial) for item, position in _positions(outputs)]
    try:
        report.outputs = 0 if not rows else await fn.acall(
            "vector-store", op="upsert", collection=collection, rows=rows, sink=dataclasses.asdict(flow.target))
    except (StoreError, fn.FnError) as exc:
        for key in sorted({row["item_key"] for row in rows}):
            report.failed.append({"id": key, "source": "", "error": f"not stored: {exc}"})
        rows = []
    report.stored = len({row["item_key"] for row in rows})
    report.partial = len({row["item_key"] for row in rows} & partial)
    try:
        stats: dict[str, Any] | None = await chunk_stats.flush()  # across every replica, kept through scale-to-zero
    except fn.FnError:
        stats = None  # the ingest itself is done; the counts go with the next one
    return {**report.to_json(), "pipeline": pipeline, "chunk_stats": stats}


def _pipeline(kind: str) -> Pipeline:
    if kind == "text":
        return text_pipeline(_text_tokenizer())
    if kind == "document":
        return documents_pipeline(_text_tokenizer())
    return image_pipeline()


def _positions(outputs: list[Item]) -> list[tuple[Item, int]]:
    """Each output with its position among its item's rows, in order: a document's chunks are numbered across its
    pages (the chunker numbers them per page), so its row ids never collide. The text pipeline's are unchanged."""
    seen: dict[str, int] = {}
    numbered = []
    for item in outputs:
        seen[item.key] = seen.get(item.key, -1) + 1
        numbered.append((item, seen[item.key]))
    return numbered


def _row(item: Item, position: int, rows: int, partial: bool = False) -> dict[str, Any]:
    """A Milvus row, one of its item's *rows*. A partial document's rows carry a content hash no item has, so its
    next ingest redoes it."""
    meta = dict(item.meta)
    sha = meta.pop("_sha")
    if partial:
        sha = f"partial:{sha[:56]}"
    meta["position"] = position
    if isinstance(item.value, list):
        vector = item.value
    else:
        raise ItemError("the pipeline did not end in a vector")
    row = {"pk": f"{item.key}#{position}", "item_key": item.key, "content_sha": sha, "vector": vector, "item_rows": rows,
           "position": position, **{k: v for k, v in meta.items() if k not in RESERVED_FIELDS}}
    return row


# search ------------------------------------------------------------------------------------------
@fn.function(name="vector-search", cpus=0.25, max_replicas=2, timeout_s=60, idle_timeout_s=120,
             route="/search/{collection}")
async def vector_search(collection: str, query: str | None = None, image: bytes | None = None,
                        image_b64: str | None = None, top_k: Annotated[int, Field(ge=1, le=100)] = 5,
                        filter: dict[str, Any] | str | None = None,  # noqa: A002 - the HTTP API's field name
                        mode: Literal["dense", "hybrid"] = "dense") -> dict[str, Any]:
    """The *top_k* nearest items, best first: ``{"results": [{"id", "score", "metadata"}]}``.

    *filter* is structured (see filters.py), on the collection's declared fields; in a multipart form, the same
    object as JSON text. A Milvus expression string is refused. ``mode="hybrid"`` (text and documents): BM25 over the
    chunks' texts and the dense ranking fused by reciprocal rank fusion (k=60); scores are then fused scores and each
    result has ``ranks`` (its place in each ranking)."""
    if collection not in COLLECTIONS:
        raise fn.NotFound(f"no pipeline stores into {collection!r}; collections: {', '.join(COLLECTIONS)}", status=404)
    try:  # checked before any model runs
        expression = build_filter(_form_json(filter), collection, COLLECTIONS[collection].fields)
    except FilterError as exc:
        raise fn.BadRequest(str(exc), status=400) from None
    if mode == "hybrid" and KINDS[collection] not in TEXT_KINDS:
        raise fn.BadRequest(f"hybrid search needs text; {collection!r} holds images: search it with mode 'dense'",
                            status=400)
    if KINDS[collection] in TEXT_KINDS:
        if not isinstance(query, str) or not query.strip():
            raise fn.BadRequest("send a non-empty 'query' string to search the text collection", status=400)
        if len(query) > MAX_QUERY_CHARS:
            raise fn.BadRequest(f"query is {len(query):,} characters, over the limit of {MAX_QUERY_CHARS:,} (the model "
                                f"reads the first 256 tokens)", status=400)
        vector = await fn.acall("embed-text", text=query)
    else:
        try:
            if image_b64 is not None:
                image = b64_image(image_b64)
            if not image:
                raise fn.BadRequest(f"upload an 'image' (multipart) or send 'image_b64' to search {collection!r}",
                                    status=400)
            decode_image(image)
        except ItemError as exc:
            raise fn.BadRequest(str(exc), status=400) from None
        vector = await fn.acall("embed-image", image=image)
    results = await fn.acall("vector-store", op="search", collection=collection, vector=vector, top_k=top_k,
                             expression=expression, mode=mode, query=query if mode == "hybrid" else "")
    return {"collection": collection, "mode": mode, "results": results}


def _form_json(value: Any) -> Any:
    """A multipart form sends the filter as text: a JSON object there is the structured filter; other text stays
    text, which build_filter refuses."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# admin -------------------------------------------------------------------------------------------
@fn.function(name="vector-admin", cpus=0.25, max_replicas=1, timeout_s=120, idle_timeout_s=60)
async def vector_admin(op: Literal["stats", "drop"], collection: str) -> Any:
    """``fnctl vectorize stats|drop``: the row count of a pipeline's collection, or drop it (True if it existed)."""
    if collection not in COLLECTIONS:
        raise fn.NotFound(f"no pipeline stores into {collection!r}; collections: {', '.join(COLLECTIONS)}", status=404)
    return await fn.acall("vector-store", op=op, collection=collection)
