"""The Milvus side: collections declared by pipelines, content-hash ids, upsert, search.

Milvus Lite (a local file, one process may open it at a time) is the default, under the
platform's home; set ``FN_MILVUS_URI`` to a Milvus server (``http://host:19530``) in production.
Every row's primary key is ``<item key>#<position>``: ingesting the same item again overwrites its
rows instead of adding new ones, and each row keeps the sha256 of its item's content, so an
unchanged item is recognised and skipped.

Reads never wait behind writes: searches call Milvus directly and take no lock of this module,
while writes go to one writer thread (writer.BatchWriter), which upserts, deletes leftovers and
flushes a batch at a time. An ingest returns once its batch is flushed, so a search that starts
after it returns sees its rows; a search running during it sees the collection before or after.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import fn

from .filters import FIELD_TYPES, string_literal
from .hybrid import RRF_K, LexicalIndexes, rrf
from .writer import BatchWriter

METRICS = ("COSINE", "IP", "L2")
INDEXES = ("FLAT", "IVF_FLAT", "HNSW", "AUTOINDEX")
RESERVED_FIELDS = {"pk", "vector", "item_key", "content_sha", "item_rows"}
FIELD_NAME = r"[a-z_][a-z0-9_]{0,63}"
MAX_EXPRESSION_CHARS = 256 * 1024  # search filters are built by filters.build_filter, below this
WRITE_BATCH_ROWS = 2048  # ingests merged into one write (one flush) up to this many rows
SERVER_SCHEMES = ("http://", "https://", "tcp://", "grpc://")
SHARED_STORAGE = "VECTORIZE_SHARED_STORAGE"  # "1": the Lite file is on storage that follows the replica
REPLICAS = "VECTORIZE_STORE_REPLICAS"  # vector-store's max_replicas: more than 1 only with a Milvus server
MAX_REPLICAS = 16
SERVER_REPLICAS = 4  # with a Milvus server and no VECTORIZE_STORE_REPLICAS: reads scale out by default
STORE_SETTINGS = ("FN_MILVUS_URI", SHARED_STORAGE, REPLICAS)  # read by the vector-store replica (service.store_env)
LEXICAL_MAX_AGE_S = 30.0  # with several store replicas: a BM25 index is rebuilt when older (others' writes)
KEYS_PER_QUERY = 100  # item keys per leftover-rows query: keeps each filter expression short
WRITE_WAIT_S = 100.0  # an ingest waits this long for its write, below vector-store's timeout_s (120)
HYBRID_CANDIDATES = 100  # each ranking's depth before fusion (dense hits, BM25 keys)
FILTERED_CANDIDATES = 1000  # BM25 keys checked against a filter (the index itself knows no metadata)
SEARCH_MODES = ("dense", "hybrid")


class StoreError(fn.ClientError):
    """The vector store refused or could not do something; the message says what."""


@dataclass(frozen=True)
class Collection:
    """What a pipeline's sink declares; the collection is created from it on first use."""

    name: str
    dim: int
    metric: str = "COSINE"
    index: str = "HNSW"
    fields: dict[str, str] = field(default_factory=dict)  # metadata a search may filter on: name -> str | int | float

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.index not in INDEXES:
            raise ValueError(f"index must be one of {', '.join(INDEXES)}, got {self.index!r}")
        if not 1 <= self.dim <= 32768:
            raise ValueError(f"dim must be 1 to 32768, got {self.dim}")
        for name, kind in self.fields.items():
            if not re.fullmatch(FIELD_NAME, name) or name in RESERVED_FIELDS:
                raise ValueError(f"field {name!r} must be lowercase letters, digits and '_' (not {sorted(RESERVED_FIELDS)})")
            if kind not in FIELD_TYPES:
                raise ValueError(f"field {name!r}: type must be one of {', '.join(FIELD_TYPES)}, got {kind!r}")


def milvus(name: str, *, dim: int, metric: str = "COSINE", index: str = "HNSW",
           fields: dict[str, str] | None = None) -> Collection:
    """A sink: the Milvus collection *name* with vectors of *dim* floats; *fields* are the metadata a search may
    filter on (name -> "str" | "int" | "float"), e.g. ``fields={"topic": "str"}``."""
    return Collection(name, dim, metric, index, dict(fields or {}))


def default_uri(env: Mapping[str, str] = os.environ) -> str:
    uri = env.get("FN_MILVUS_URI", "")
    if uri:
        return uri
    folder = fn.fn_home() / "vectors"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / "milvus.db")


def is_server(uri: str) -> bool:
    return uri.startswith(SERVER_SCHEMES)


def check_placement(env: Mapping[str, str] = os.environ) -> None:
    """Refuses a node-local Milvus Lite file on a cluster: after scale-to-zero the replica may start on another
    node and find an empty store. A cluster is a Kubernetes pod (Kubernetes sets KUBERNETES_SERVICE_HOST in every
    container; the shipped cluster is terraform's EKS); ``fnctl up`` on one machine keeps its file."""
    uri = env.get("FN_MILVUS_URI", "")
    if is_server(uri) or not env.get("KUBERNETES_SERVICE_HOST") or env.get(SHARED_STORAGE) == "1":
        return
    where = repr(uri) if uri else "under FN_HOME/vectors (the default)"
    raise StoreError(f"vector-store runs on a cluster (Kubernetes) with a Milvus Lite file {where} on this node's own "
                     f"disk: after scale-to-zero it may start on another node and find the store empty. Deploy with "
                     f"FN_MILVUS_URI set to a Milvus server (e.g. FN_MILVUS_URI=http://milvus:19530 fnctl deploy "
                     f"functions/vectorize), or, if that file is on a volume every node mounts, with "
                     f"{SHARED_STORAGE}=1", status=503)


def store_replicas(env: Mapping[str, str] = os.environ) -> int:
    """vector-store's max_replicas: 1 with Milvus Lite (one process may open its file); with a Milvus server
    ``SERVER_REPLICAS`` unless ``VECTORIZE_STORE_REPLICAS`` says otherwise (1 to 16)."""
    raw = env.get(REPLICAS, "").strip()
    if not raw:
        return SERVER_REPLICAS if is_server(env.get("FN_MILVUS_URI", "")) else 1
    try:
        replicas = int(raw)
    except ValueError:
        replicas = 0
    if not 1 <= replicas <= MAX_REPLICAS:
        raise fn.SpecError(f"{REPLICAS} must be a whole number from 1 to {MAX_REPLICAS}, got {raw!r}")
    if replicas > 1 and not is_server(env.get("FN_MILVUS_URI", "")):
        raise fn.SpecError(f"{REPLICAS}={replicas} needs FN_MILVUS_URI set to a Milvus server (e.g. "
                           f"http://milvus:19530): a Milvus Lite file is opened by one process, so vector-store keeps "
                           f"one replica with it")
    return replicas


def quote(value: str) -> str:
    return string_literal(value)  # item keys: ingestion refuses ids with control characters


class VectorStore:
    def __init__(self, uri: str | None = None, *, write_batch_rows: int = WRITE_BATCH_ROWS) -> None:
        self.uri = uri or default_uri()
        self._client: Any = None
        self._ready: dict[str, Collection] = {}
        self._lock = threading.Lock()  # collection creation only; never taken by a read
        self._open_lock = threading.Lock()
        self._writer = BatchWriter(self._write, max_rows=write_batch_rows)
        # One replica sees every write, so its BM25 indexes stay current; with several (a Milvus server), each sees
        # only its own, so an index older than LEXICAL_MAX_AGE_S is rebuilt from the collection.
        self.lexical = LexicalIndexes(self._texts, max_age_s=LEXICAL_MAX_AGE_S if store_replicas() > 1 else None)

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._open_lock:
                if self._client is None:
                    self._client = self._open()
        return self._client

    def _open(self) -> Any:
        from pymilvus import MilvusClient

        try:
            client = MilvusClient(self.uri, timeout=10)
            # A reopened Milvus Lite holds its indexed collections released: without a load every search and query
            # fails ("call load() before search") until something loads them. Loading once here, as the store opens,
            # keeps load off every later read.
            for name in client.list_collections():
                client.load_collection(name)
        except Exception as exc:  # noqa: BLE001 - pymilvus raises several types for the same outage
            raise StoreError(f"the vector store {self.uri} is unavailable: {exc}", status=503) from None
        return client

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        from pymilvus.exceptions import MilvusException

        try:
            return getattr(self.client, method)(*args, **kwargs)
        except MilvusException as exc:
            status = 400 if what.startswith("search") else 503
            raise StoreError(f"{what} failed: {exc.message}", status=status) from None
        except (ConnectionError, OSError, TimeoutError) as exc:
            raise StoreError(f"the vector store {self.uri} is unavailable ({what}): {exc}", status=503) from None

    def ensure(self, collection: Collection) -> None:
        """Creates the collection, or checks that an existing one has the declared dimension."""
        with self._lock:
            if self._ready.get(collection.name) == collection:
                return
            from pymilvus import DataType, MilvusClient

            if self._call("has_collection", "has_collection", collection.name):
                fields = self._call("describe", "describe_collection", collection.name)["fields"]
                dim = next((int(f["params"]["dim"]) for f in fields if f["name"] == "vector"), None)
                if dim != collection.dim:
                    raise StoreError(f"collection {collection.name!r} holds {dim}-d vectors but the pipeline makes "
                                     f"{collection.dim}-d ones; ingest into another collection or drop it "
                                     f"('fnctl vectorize drop {collection.name}')", status=409)
            else:
                schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
                schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=600)
                schema.add_field("item_key", DataType.VARCHAR, max_length=512)
                schema.add_field("content_sha", DataType.VARCHAR, max_length=64)
                schema.add_field("vector", DataType.FLOAT_VECTOR, dim=collection.dim)
                index = self.client.prepare_index_params()
                params = {"M": 16, "efConstruction": 200} if collection.index == "HNSW" else {}
                index.add_index("vector", index_type=collection.index, metric_type=collection.metric, params=params)
                self._call("create collection", "create_collection", collection.name, schema=schema, index_params=index)
            self._ready[collection.name] = collection

    def known(self, collection: str, keys: list[str]) -> dict[str, str]:
        """item key -> content sha of the items already stored whole: an item whose rows disagree on the sha, or
        fewer than its rows say it has (``item_rows``), is left out, so its next ingest writes it again. (With one
        writer that cannot happen; two store replicas writing one item at the same moment can leave a mix.)"""
        if not keys or not self._call("has_collection", "has_collection", collection):
            return {}
        shas: dict[str, set[str]] = {}
        counts: dict[str, list[int]] = {}
        for start in range(0, len(keys), 500):
            expression = f"item_key in [{', '.join(quote(k) for k in keys[start:start + 500])}]"
            rows = self._call("query", "query", collection, filter=expression,
                              output_fields=["item_key", "content_sha", "item_rows"])
            for row in rows:
                shas.setdefault(row["item_key"], set()).add(row["content_sha"])
                declared = row.get("item_rows")
                counts.setdefault(row["item_key"], [0, 0])[0] += 1
                if isinstance(declared, int):  # rows written before item_rows existed have none: not checked
                    counts[row["item_key"]][1] = max(counts[row["item_key"]][1], declared)
        return {key: next(iter(found)) for key, found in shas.items()
                if len(found) == 1 and counts[key][0] >= counts[key][1]}

    def replace_items(self, collection: str, rows: list[dict[str, Any]], timeout: float | None = None) -> int:
        """Upserts *rows* and deletes rows left over from an earlier, longer version of the same items; returns once
        they are flushed (searches meanwhile go on). Nothing to write writes nothing."""
        try:
            return self._writer.submit(collection, rows).result(WRITE_WAIT_S if timeout is None else timeout)
        except FutureTimeout:
            raise StoreError(f"the write into {collection!r} is still queued behind other ingests after "
                             f"{WRITE_WAIT_S:g} s; it will be written: ingest again later to see it skipped",
                             status=503) from None

    def _write(self, collection: str, rows: list[dict[str, Any]]) -> None:
        """The writer thread's batch: one upsert, one leftover query per KEYS_PER_QUERY items, one delete, one flush."""
        self._call("upsert", "upsert", collection, rows)
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["item_key"]] = max(counts.get(row["item_key"], 0), int(row["position"]) + 1)
        # A delete by filter is a full scan in Milvus Lite: one per item made a 60-item ingest into 500 stored items
        # take 7.8 s of deletes (searches slowed 6x meanwhile). The leftovers are found by one query and deleted by id.
        keys = sorted(counts)
        stale: list[str] = []
        for start in range(0, len(keys), KEYS_PER_QUERY):
            expression = " or ".join(f"(item_key == {quote(key)} and position >= {counts[key]})"
                                     for key in keys[start:start + KEYS_PER_QUERY])
            found = self._call("query", "query", collection, filter=expression, output_fields=["pk"])
            stale.extend(row["pk"] for row in found)
        if stale:
            self._call("delete", "delete", collection, ids=stale)
        # Milvus Lite searches unflushed rows by brute force and re-checks every upserted key on each search:
        # 10k upserted rows left unflushed made a search take 250-350 ms instead of 11-35 ms.
        self._call("flush", "flush", collection)
        self.lexical.written(collection, rows)  # after the flush: a BM25 hit is a row a query can fetch
        self.lexical.deleted(collection, stale)

    def _texts(self, collection: str) -> Iterator[tuple[str, str]]:
        """(pk, text) of every row of *collection* that has a text, 1000 rows a query: builds its BM25 index."""
        from pymilvus.exceptions import MilvusException

        try:
            rows = self.client.query_iterator(collection, batch_size=1000, filter="", output_fields=["pk", "text"])
            while batch := rows.next():
                yield from ((str(row["pk"]), row["text"]) for row in batch if isinstance(row.get("text"), str))
            rows.close()
        except MilvusException as exc:
            raise StoreError(f"reading {collection!r}'s texts for hybrid search failed: {exc.message}", status=503) \
                from None

    def search(self, collection: str, vector: list[float], top_k: int, expression: str, mode: str = "dense",
               query: str = "") -> list[dict[str, Any]]:
        """*expression* comes from filters.build_filter (callers inside the cluster only: this store is internal).

        ``mode="hybrid"``: the HYBRID_CANDIDATES best by vector and by BM25 over the rows' ``text`` (*query*), fused by
        reciprocal rank fusion; each result's score is its fused score and ``ranks`` its rank in each list (None:
        not in it). With a filter, the FILTERED_CANDIDATES best BM25 keys are checked against it."""
        if len(expression) > MAX_EXPRESSION_CHARS:
            raise StoreError(f"the filter expression is {len(expression):,} characters, over {MAX_EXPRESSION_CHARS:,}",
                             status=400)
        if mode not in SEARCH_MODES:
            raise StoreError(f"mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}", status=400)
        if not self._call("has_collection", "has_collection", collection):
            names = ", ".join(self._call("list collections", "list_collections")) or "none"
            raise StoreError(f"no collection named {collection!r}; collections: {names}", status=404)
        if mode == "dense":
            return self._dense(collection, vector, top_k, expression)
        if not query.strip():
            raise StoreError("hybrid search needs the query's text", status=400)
        dense = self._dense(collection, vector, max(top_k, HYBRID_CANDIDATES), expression)
        lexical = [key for key, _ in self.lexical.search(collection, query, FILTERED_CANDIDATES if expression
                                                         else max(top_k, HYBRID_CANDIDATES))]
        found = {result["id"]: result for result in dense}
        missing = [key for key in lexical if key not in found]
        if missing or expression:  # the BM25 hits' metadata (and, with a filter, whether they pass it)
            found.update(self._rows(collection, missing, expression))
        lexical = [key for key in lexical if key in found][:max(top_k, HYBRID_CANDIDATES)]
        dense_ranks = {result["id"]: rank for rank, result in enumerate(dense, 1)}
        lexical_ranks = {key: rank for rank, key in enumerate(lexical, 1)}
        return [{**found[key], "score": score, "ranks": {"dense": dense_ranks.get(key), "bm25": lexical_ranks.get(key)}}
                for key, score in rrf([list(dense_ranks), lexical], k=RRF_K)[:top_k]]

    def _dense(self, collection: str, vector: list[float], top_k: int, expression: str) -> list[dict[str, Any]]:
        hits = self._call(f"search in {collection!r}", "search", collection, data=[vector], limit=top_k,
                          filter=expression, output_fields=["*"])[0]
        return [_result(dict(hit["entity"]), float(hit["distance"])) for hit in hits]

    def _rows(self, collection: str, keys: list[str], expression: str) -> dict[str, dict[str, Any]]:
        """The rows of *keys* that pass *expression*, as results (score 0), by key; 500 keys a query."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):
            where = f"pk in [{', '.join(quote(k) for k in keys[start:start + 500])}]"
            if expression:
                where = f"({where}) and ({expression})"
            for row in self._call(f"search in {collection!r}", "query", collection, filter=where, output_fields=["*"]):
                result = _result(dict(row), 0.0)
                found[result["id"]] = result
        return found

    def stats(self, collection: str) -> dict[str, Any]:
        if not self._call("has_collection", "has_collection", collection):
            raise StoreError(f"no collection named {collection!r}", status=404)
        return {"collection": collection, **self._call("stats", "get_collection_stats", collection)}

    def close(self) -> None:
        """Writes what is queued and stops the writer thread."""
        self._writer.close()

    def drop(self, collection: str) -> bool:
        existed = bool(self._call("has_collection", "has_collection", collection))
        if existed:
            self._call("drop", "drop_collection", collection)
        self._ready.pop(collection, None)
        self.lexical.drop(collection)
        return existed


def _result(entity: dict[str, Any], score: float) -> dict[str, Any]:
    """A search result from a stored row: its id, the score, and the metadata without the store's own fields."""
    for name in ("vector", "content_sha", "item_key", "item_rows"):
        entity.pop(name, None)
    return {"id": entity.pop("pk"), "score": score, "metadata": entity}
