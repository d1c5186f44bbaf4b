"""The vectorize flow's figures, each against a baseline measured in the same run.

    python functions/vectorize/bench/vectors.py   # about 12 minutes on 2 cores; a table, and bench/results/vectors.json
    python functions/vectorize/bench/vectors.py --in-process   # 4 and 5 only, no platform (about 5 minutes)

1. Text ingestion throughput (items/s): through the platform (vector-ingest -> chunking -> embed-text,
   batched on the server -> Milvus Lite), against the same ONNX model called in this process on the
   same texts in batches of 64 (the model-only limit; one thread as the replica has, and all threads),
   and against per-item calls (one item per call, so every model call sees one text).
2. Search latency (median, p90) and recall@10 of Milvus Lite's HNSW index at 10k and 100k vectors,
   against exact brute-force search over the same vectors. The vectors are synthetic (a mixture of
   384-d Gaussian clusters, L2-normalized): embedding 100k real texts would take most of an hour here.
3. Retrieval quality on the labelled set (functions/vectorize/tests/data/queries.jsonl, 40 queries over the 80
   sample passages): recall@5 and MRR through ``POST /search/text``, plus the same search's latency.
4. Dense against hybrid search (BM25 + dense, reciprocal rank fusion): recall@5 and MRR on three labelled sets,
   all in this process (fn.testing.local(): the real functions, MiniLM, RapidOCR and Milvus Lite, no Ray):
   the 80 passages (text pipeline); the same passages on 40 generated scanned pages, two a page
   (samples/make_documents.py: rendered with Pillow at 150 dpi, turned 0.6 degrees, grey noise; an image-only
   PDF, split a page per item as fnctl does, rendered again by PDFium and read by OCR), where a query's answer
   is the page of its passage; and the same pages as a PDF with a text layer. Two kinds of query on each: the
   40 labelled questions (queries.jsonl, paraphrases) and keyword queries: every proper name (a capitalised word
   inside a sentence) that occurs in exactly one passage, that word alone (26). Top 5 chunks; a hit is a chunk
   of a relevant passage (page).
5. Documents pipeline throughput (pages/s) in this process, scanned pages and text-layer pages, 8 pages a call,
   against OCR alone (RapidOCR on the same pages rendered as the pipeline renders them: the floor for a scanned
   page; 2 pages after each call, so both see the same machine) and its character accuracy. In-process calls
   are not batched on the server (fn.testing.local() sends a batched function one item per call), so this is
   the pipeline's cost on one process, not the platform's throughput.
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
ROOT = PROJECT.parents[1]
QUERIES = PROJECT / "tests" / "data" / "queries.jsonl"
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(ROOT / "bench"))  # the suite's harness: the platform under test, the table, results

from _procs import local_platform  # noqa: E402 - found through the path above
from _report import Row, percentile, print_table, save  # noqa: E402

SCANNED_PAGES = 40  # two passages a page
OCR_ONLY_PAGES = 10  # OCR alone, a few pages after each call of the scanned run
PAGES_PER_CALL = 8
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


def _labelled() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    docs = [json.loads(line) for line in (PROJECT / "samples" / "docs.jsonl").read_text().splitlines()]
    return docs, [json.loads(line) for line in QUERIES.read_text().splitlines()]


def keyword_queries(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A name (a capitalised word inside a sentence) that occurs in one passage only, as the query for it: the first
    such word of each passage that has one."""
    queries: dict[int, dict[str, Any]] = {}
    for index, doc in enumerate(docs):
        for word in re.findall(r"(?<=[a-z,] )[A-Z][a-zA-Z]{3,}", doc["text"]):
            holders = [other["id"] for other in docs if re.search(rf"\b{word}\b", other["text"], re.IGNORECASE)]
            if holders == [doc["id"]] and index not in queries:
                queries[index] = {"query": word, "relevant": holders}
    return list(queries.values())


def _scores(queries: list[dict[str, Any]], search: Callable[[str], list[Any]],
            relevant: Callable[[dict[str, Any]], set[Any]]) -> dict[str, float]:
    """recall@5 and MRR: *search* gives the top 5 results' labels (a passage id, a page), best first."""
    recall, reciprocal = [], []
    for query in queries:
        found, wanted = search(query["query"]), relevant(query)
        recall.append(len(wanted & set(found)) / len(wanted))
        rank = next((i + 1 for i, label in enumerate(found) if label in wanted), None)
        reciprocal.append(1 / rank if rank else 0.0)
    return {"recall_at_5": statistics.mean(recall), "mrr": statistics.mean(reciprocal), "queries": len(queries)}


def _ingest_timed(pipeline: str, items: list[dict[str, Any]], per_call: int) -> tuple[float, dict[str, int]]:
    import fn

    totals = {"stored": 0, "failed": 0, "rows": 0}
    started = time.perf_counter()
    for start in range(0, len(items), per_call):
        report = fn.call("vector-ingest", pipeline=pipeline, items=items[start:start + per_call])
        for key in totals:
            totals[key] += int(report[key])
        for error in report["errors"]:
            print(f"  {pipeline}: {error}", file=sys.stderr)
    return time.perf_counter() - started, totals


def _both_modes(collection: str, queries: list[dict[str, Any]], label: Callable[[dict[str, Any]], Any],
                relevant: Callable[[dict[str, Any]], set[Any]], where: dict[str, Any] | None = None,
                ) -> dict[str, dict[str, float]]:
    """recall@5 and MRR of dense and of hybrid search; *label* names a hit (its passage, its page)."""
    import fn

    def searcher(mode: str) -> Callable[[str], list[Any]]:
        def search(query: str) -> list[Any]:
            hits = fn.call("vector-search", collection=collection, query=query, top_k=5, mode=mode, filter=where)
            return [label(hit["metadata"]) for hit in hits["results"]]
        return search

    return {mode: _scores(queries, searcher(mode), relevant) for mode in ("dense", "hybrid")}


def _page_items(pdf: bytes, name: str, folder: Path) -> list[dict[str, Any]]:
    """The PDF split a page per item, as `fnctl vectorize ingest documents` sends it."""
    from fnctl_vectorize.documents import pdf_entries

    path = folder / name
    path.write_bytes(pdf)
    return [load() for _, load in pdf_entries(path, name, name)]


class OcrAlone:
    """The baseline for a scanned page: RapidOCR alone on pages rendered as the pipeline renders them, timed, with its
    character accuracy against the text drawn on each page (difflib's ratio, whitespace folded)."""

    def __init__(self, pdf: bytes, truths: list[str]) -> None:
        import numpy as np
        import pypdfium2 as pdfium
        from rapidocr import RapidOCR

        self.engine = RapidOCR(params={"Global.use_cls": False, "Global.log_level": "warning"})
        self.engine(np.zeros((64, 256, 3), dtype=np.uint8))
        self.document = pdfium.PdfDocument(pdf)
        self.truths = truths
        self.seconds, self.accuracy = 0.0, []

    def run(self, indices: range) -> None:
        import numpy as np
        from PIL import Image
        from vectorize.documents import RENDER_DPI

        for index in indices:
            png = io.BytesIO()
            self.document[index].render(scale=RENDER_DPI / 72, grayscale=True).to_pil().save(png, "PNG", compress_level=1)
            started = time.perf_counter()  # OCR only: decoded as the ocr-text function decodes it, and read
            result = self.engine(np.asarray(Image.open(io.BytesIO(png.getvalue())).convert("RGB"))[:, :, ::-1])
            self.seconds += time.perf_counter() - started
            read = " ".join(" ".join(result.txts or ()).split())
            self.accuracy.append(difflib.SequenceMatcher(None, read, " ".join(self.truths[index].split())).ratio())

    def figures(self) -> dict[str, float]:
        return {"pages_per_s": len(self.accuracy) / self.seconds, "char_accuracy": statistics.mean(self.accuracy),
                "pages": len(self.accuracy)}


def in_process() -> dict[str, Any]:
    """4 and 5: dense against hybrid on three labelled sets, and the documents pipeline's pages/s, in this process."""
    sys.path.insert(0, str(PROJECT / "samples"))
    sys.path.insert(0, str(PROJECT / "tests"))
    import make_documents as samples
    from documents_helpers import local_functions

    docs, questions = _labelled()
    query_sets = {"questions": questions, "keywords": keyword_queries(docs)}
    page_of = {doc["id"]: index // 2 + 1 for index, doc in enumerate(docs)}
    texts = [doc["text"] for doc in docs]
    scans = [samples.scanned_page(texts[2 * p:2 * p + 2], seed=p) for p in range(SCANNED_PAGES)]
    scanned_pdf = samples.text_pdf(scans)
    text_pdf = samples.text_pdf([[*samples.wrap(texts[2 * p]), "", *samples.wrap(texts[2 * p + 1])]
                                 for p in range(SCANNED_PAGES)])
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        os.environ["FN_HOME"] = str(home)
        os.environ.pop("FN_MILVUS_URI", None)
        with local_functions(home):
            _ingest_timed("text", docs, 64)
            for kind, queries in query_sets.items():
                results[f"passages_{kind}"] = _both_modes("text", queries, lambda meta: meta["id"],
                                                          lambda q: set(q["relevant"]))

            ocr = OcrAlone(scanned_pdf, ["\n".join(texts[2 * p:2 * p + 2]) for p in range(SCANNED_PAGES)])
            for name, pdf in (("text-layer.pdf", text_pdf), ("scanned.pdf", scanned_pdf)):
                items = _page_items(pdf, name, home)
                elapsed, totals = 0.0, {"stored": 0, "failed": 0, "rows": 0}
                for start in range(0, len(items), PAGES_PER_CALL):  # rounds: drift on a shared machine hits both
                    seconds, counts = _ingest_timed("documents", items[start:start + PAGES_PER_CALL], PAGES_PER_CALL)
                    elapsed += seconds
                    totals = {key: totals[key] + counts[key] for key in totals}
                    if name == "scanned.pdf":
                        ocr.run(range(start, start + OCR_ONLY_PAGES * PAGES_PER_CALL // len(items)))
                results[f"documents_{name}"] = {"pages_per_s": len(items) / elapsed, "seconds": elapsed,
                                                "pages": len(items), **totals}
                print(f"  {name}: {len(items)} pages in {elapsed:.1f} s ({totals})", file=sys.stderr)
                for kind, queries in query_sets.items():  # each PDF's own pages: the two hold the same text
                    results[f"pages_{name}_{kind}"] = _both_modes(
                        "documents", queries, lambda meta: meta["page"],
                        lambda q: {page_of[item] for item in q["relevant"]}, where={"source": name})
            results["ocr_only"] = ocr.figures()
    return results


def in_process_rows(results: dict[str, Any]) -> list[Row]:
    rows = []
    sets = [(f"{key}_{kind}", f"{what}, {kind}") for key, what in (
        ("passages", "80 passages"), ("pages_scanned.pdf", f"{SCANNED_PAGES} scanned pages"),
        ("pages_text-layer.pdf", f"{SCANNED_PAGES} text-layer pages")) for kind in ("questions", "keywords")]
    for key, what in sets:
        dense, hybrid = results[key]["dense"], results[key]["hybrid"]
        for mode, scores in (("dense", dense), ("hybrid", hybrid)):
            base = mode == "hybrid"
            rows.append(Row("search", f"{what}, {mode}", "recall@5", scores["recall_at_5"], "",
                            ratio=scores["recall_at_5"] / dense["recall_at_5"] if base else None,
                            note=f"recall@5 {scores['recall_at_5']:.3f}, MRR {scores['mrr']:.3f}"
                                 + (f" (dense: {dense['mrr']:.3f})" if base else "") + f"; {scores['queries']} queries"))
    ocr = results["ocr_only"]
    for name, what in (("scanned.pdf", "scanned pages (render + OCR)"), ("text-layer.pdf", "text-layer pages")):
        run = results[f"documents_{name}"]
        rows.append(Row("documents", what, "pages/s", run["pages_per_s"], "",
                        ratio=run["pages_per_s"] / ocr["pages_per_s"] if name == "scanned.pdf" else None,
                        note=f"{run['pages']} pages, {run['rows']} chunks, {run['failed']} failed; in-process"))
    rows.append(Row("documents", "OCR alone (baseline)", "pages/s", ocr["pages_per_s"], "",
                    note=f"RapidOCR on {ocr['pages']} rendered pages; character accuracy {ocr['char_accuracy']:.3f}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--in-process", action="store_true", help="only 4 and 5: no platform, no Ray")
    options = parser.parse_args()
    subprocess.run([sys.executable, str(PROJECT / "build_models.py")], check=True)
    if options.in_process:
        results = in_process()
        print_table(in_process_rows(results))
        save("vectors-in-process", results)
        return
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
    results["in_process"] = in_process()
    rows.extend(in_process_rows(results["in_process"]))
    print_table(rows)
    save("vectors", results)


if __name__ == "__main__":
    main()
