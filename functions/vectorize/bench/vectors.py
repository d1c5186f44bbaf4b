"""The vectorize flow's figures, each against a baseline measured in the same run.

    python functions/vectorize/bench/vectors.py   # about 6 minutes on 2 cores; a table, and bench/results/vectors.json

1. Text ingestion throughput (items/s): through the platform (vector-ingest -> chunking -> embed-text,
   batched on the server -> Milvus Lite), against the same ONNX model called in this process on the
   same texts in batches of 64 (the model-only limit; one thread as the replica has, and all threads),
   and against per-item calls (one item per call, so every model call sees one text).
2. Search latency (median, p90) and recall@10 of Milvus Lite's HNSW index at 10k and 100k vectors,
   against exact brute-force search over the same vectors. The vectors are synthetic (a mixture of
   384-d Gaussian clusters, L2-normalized): embedding 100k real texts would take most of an hour here.
3. Retrieval quality on the labelled set (functions/vectorize/tests/data/queries.jsonl, 40 queries over the 80
   sample passages): recall@5 and MRR through ``POST /search/text``, plus the same search's latency.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from _procs import local_platform
from _report import Row, percentile, print_table, save

PROJECT = Path(__file__).resolve().parents[1]
ROOT = PROJECT.parents[1]
QUERIES = PROJECT / "tests" / "data" / "queries.jsonl"
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(ROOT / "bench"))  # the suite's harness: the platform under test, the table, results
INGEST_ITEMS = 320  # sample passages, varied so each one is new to the store
PER_ITEM_ITEMS = 40
REPEATS = 3


def corpus(n: int, salt: str) -> list[dict[str, Any]]:
    docs = [json.loads(line) for line in (PROJECT / "samples" / "docs.jsonl").read_text().splitlines()]
    return [{"id": f"{salt}-{i}", "text": f"{docs[i % len(docs)]['text']} ({salt} {i})", "source": "bench"}
            for i in range(n)]


def model_only(texts: list[str], threads: int) -> float:
    from vectorize.minilm_onnx import MiniLM

    models = PROJECT / "vectorize" / "models"
    model = MiniLM(models / "minilm-l6-v2.onnx", models / "minilm-l6-v2.tokenizer.json", threads=threads)
    model.embed(texts[:64])
    started = time.perf_counter()
    for start in range(0, len(texts), 64):
        model.embed(texts[start:start + 64])
    return len(texts) / (time.perf_counter() - started)


def ingest_rate(env: dict[str, str], items: list[dict[str, Any]], per_call: int) -> float:
    code = (
        "import json, sys, time, fn\n"
        "items = json.load(sys.stdin); per_call = int(sys.argv[1])\n"
        "started = time.perf_counter()\n"
        "for s in range(0, len(items), per_call):\n"
        "    r = fn.call('vector-ingest', pipeline='text', items=items[s:s+per_call], force=True)\n"
        "    assert r['failed'] == 0, r\n"
        "print(len(items) / (time.perf_counter() - started))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(per_call)], input=json.dumps(items), env=env,
                          capture_output=True, text=True, check=True)
    return float(proc.stdout.strip().splitlines()[-1])


def search_scenario(n: int, index: str, rng: np.random.Generator) -> dict[str, float]:
    from vectorize.milvus_store import VectorStore, milvus

    centers = rng.standard_normal((200, 384)).astype(np.float32)
    data = centers[rng.integers(0, 200, n)] + 0.6 * rng.standard_normal((n, 384)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    queries = centers[rng.integers(0, 200, 100)] + 0.6 * rng.standard_normal((100, 384)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory() as folder:
        store = VectorStore(f"{folder}/bench.db")
        store.ensure(milvus("bench", dim=384, index=index))
        started = time.perf_counter()
        for start in range(0, n, 2000):
            rows = [{"pk": f"v{i}#0", "item_key": f"v{i}", "content_sha": "-", "position": 0,
                     "vector": data[i].tolist()} for i in range(start, min(n, start + 2000))]
            store.client.upsert("bench", rows)
        store.client.flush("bench")
        insert_s = time.perf_counter() - started
        store.search("bench", queries[0].tolist(), 10, "")
        latencies, recalls = [], []
        for query in queries:
            t0 = time.perf_counter()
            hits = store.search("bench", query.tolist(), 10, "")
            latencies.append((time.perf_counter() - t0) * 1000)
            exact = {f"v{i}#0" for i in np.argsort(-(data @ query))[:10]}
            recalls.append(len(exact & {h["id"] for h in hits}) / 10)
        brute = []
        for query in queries[:30]:
            t0 = time.perf_counter()
            np.argsort(-(data @ query))[:10]
            brute.append((time.perf_counter() - t0) * 1000)
        store.client.close()
    return {"insert_s": insert_s, "p50_ms": statistics.median(latencies), "p90_ms": percentile(latencies, 0.9),
            "recall_at_10": statistics.mean(recalls), "brute_p50_ms": statistics.median(brute)}


def quality(http_url: str, key: str) -> dict[str, float]:
    queries = [json.loads(line) for line in QUERIES.read_text().splitlines()]
    recall, reciprocal, latencies = [], [], []
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        client.post(f"{http_url}/search/text", json={"query": "warm up", "top_k": 5}).raise_for_status()
        for query in queries:
            t0 = time.perf_counter()
            response = client.post(f"{http_url}/search/text", json={"query": query["query"], "top_k": 5})
            latencies.append((time.perf_counter() - t0) * 1000)
            ids = [r["metadata"]["id"] for r in response.json()["results"]]
            relevant = set(query["relevant"])
            recall.append(len(relevant & set(ids)) / len(relevant))
            rank = next((i + 1 for i, item in enumerate(ids) if item in relevant), None)
            reciprocal.append(1 / rank if rank else 0.0)
    return {"recall_at_5": statistics.mean(recall), "mrr": statistics.mean(reciprocal),
            "p50_ms": statistics.median(latencies), "p90_ms": percentile(latencies, 0.9), "queries": len(queries)}


def main() -> None:
    subprocess.run([sys.executable, str(PROJECT / "build_models.py")], check=True)
    results: dict[str, Any] = {}
    rng = np.random.default_rng(0)
    for n in (10_000, 100_000):
        for index in ("FLAT", "HNSW"):
            results[f"search_{n}_{index}"] = search_scenario(n, index, rng)
    with local_platform("--cpus", "4") as platform:
        platform.fnctl("deploy", str(PROJECT))
        platform.fnctl("vectorize", "ingest", "text", str(PROJECT / "samples" / "docs.jsonl"))
        results["quality"] = quality(platform.http_url, platform.key)
        texts = [item["text"] for item in corpus(INGEST_ITEMS, "m")]
        ingest_rate(platform.env, corpus(64, "warm"), 64)
        runs: dict[str, list[float]] = {"platform": [], "model_1_thread": [], "model_all_threads": [], "per_item": []}
        for repeat in range(REPEATS):  # interleaved, so drift on a shared machine hits all alike
            runs["platform"].append(ingest_rate(platform.env, corpus(INGEST_ITEMS, f"p{repeat}"), 64))
            runs["model_1_thread"].append(model_only(texts, 1))
            runs["model_all_threads"].append(model_only(texts, 0))
            runs["per_item"].append(ingest_rate(platform.env, corpus(PER_ITEM_ITEMS, f"s{repeat}"), 1))
        results["ingest"] = {name: statistics.median(values) for name, values in runs.items()}
        results["ingest_runs"] = runs
    ingest = results["ingest"]
    note = f"median of {REPEATS}, {INGEST_ITEMS} items"
    rows = [
        Row("ingest", "platform (batched)", "items/s", ingest["platform"], "", note=note),
        Row("ingest", "model only, 1 thread (baseline)", "items/s", ingest["model_1_thread"], "",
            ratio=ingest["model_1_thread"] / ingest["platform"], note="same texts, in this process"),
        Row("ingest", "model only, all threads", "items/s", ingest["model_all_threads"], "",
            ratio=ingest["model_all_threads"] / ingest["platform"]),
        Row("ingest", "per-item calls", "items/s", ingest["per_item"], "", ratio=ingest["per_item"] / ingest["platform"],
            note="one item per call"),
    ]
    for key in (k for k in results if k.startswith("search_")):
        _, n, index = key.split("_")
        s = results[key]
        rows.append(Row("search", f"Milvus Lite {index}, {int(n) // 1000}k vectors", "latency", s["p50_ms"], "ms",
                        p99=s["p90_ms"], ratio=s["p50_ms"] / s["brute_p50_ms"],
                        note=f"p90 in the p99 column; vs numpy brute force; recall@10 {s['recall_at_10']:.3f}; "
                             f"insert {s['insert_s']:.0f} s"))
    q = results["quality"]
    rows.append(Row("quality", "labelled set over HTTP /search/text", "recall@5", q["recall_at_5"], "",
                    note=f"MRR {q['mrr']:.3f}; {q['queries']} queries, 80 passages; p50 {q['p50_ms']:.1f} ms"))
    print_table(rows)
    save("vectors", results)


if __name__ == "__main__":
    main()
