"""The vectorize project deployed with fnctl: ingest through the CLI, search over HTTP, batching, bad input."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from harness import Platform, wait_for

import fn

VECTORIZE = Path(__file__).resolve().parents[2] / "functions" / "vectorize"
QUERIES = Path(__file__).resolve().parents[2] / "functions" / "vectorize" / "tests" / "data" / "queries.jsonl"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vectorize(platform: Platform) -> Platform:
    subprocess.run([sys.executable, str(VECTORIZE / "build_models.py")], check=True, capture_output=True)
    job = platform.deploy(VECTORIZE)
    assert job["exit_code"] == 0, job["output"]
    assert {r["status"] for r in job["results"].values()} <= {"deployed", "unchanged"}
    return platform


def _ingest(platform: Platform, *args: str) -> tuple[int, dict[str, Any]]:
    result = platform.fnctl("vectorize", "ingest", *args, "--json")
    start = result.output.find("{")
    assert start >= 0, f"no JSON report (exit {result.exit_code}): {result.output}"
    report: dict[str, Any] = json.JSONDecoder().raw_decode(result.output[start:])[0]
    return result.exit_code, report


def test_text_corpus_is_ingested_once_then_skipped_and_searchable(vectorize: Platform) -> None:
    code, report = _ingest(vectorize, "text", str(VECTORIZE / "samples" / "docs.jsonl"))
    assert code == 0, report
    assert (report["stored"], report["failed"]) == (80, 0)
    # ChunkStats counts every replica's chunks in one shared fn.Dict (read here from outside the cluster)
    shared = fn.Dict("vectorize-stats")
    chunks, chars = shared["chunks"], shared["chars"]
    assert chunks >= 80 and 50 < chars / chunks < 2000, (chunks, chars)
    again_code, again = _ingest(vectorize, "text", str(VECTORIZE / "samples" / "docs.jsonl"))
    assert again_code == 0
    assert (again["stored"], again["skipped"]) == (0, 80)  # resumable: content hashes already stored
    assert shared["chunks"] == chunks  # nothing chunked again, nothing counted twice
    with vectorize.client() as client:
        query = json.loads(QUERIES.read_text().splitlines()[0])
        response = client.post("/search/text", json={"query": query["query"], "top_k": 5})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert len(results) == 5
        assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
        assert results[0]["metadata"]["id"] in query["relevant"]
        assert results[0]["metadata"]["source"].endswith("docs.jsonl:" + str(_line_of(results[0]["metadata"]["id"])))
        assert {"text", "position", "topic"} <= set(results[0]["metadata"])
        filtered = client.post("/search/text", json={"query": "volcano", "top_k": 3, "filter": {"topic": "music"}})
        assert {r["metadata"]["topic"] for r in filtered.json()["results"]} == {"music"}
        ranged = client.post("/search/text", json={"query": "volcano", "top_k": 5,
                                                   "filter": {"topic": {"in": ["music", "geology"]}, "position": {"lt": 1}}})
        assert ranged.status_code == 200, ranged.text
        assert {r["metadata"]["topic"] for r in ranged.json()["results"]} <= {"music", "geology"}
        assert {r["metadata"]["position"] for r in ranged.json()["results"]} == {0}
        raw = client.post("/search/text", json={"query": "volcano", "filter": 'topic == "x" or 1 == 1'})
        assert raw.status_code == 400, raw.text
        assert "a Milvus expression string is not accepted" in raw.json()["error"]["message"]
        injected = client.post("/search/text", json={"query": "volcano", "filter": {"topic": 'x" or 1==1 or topic == "'}})
        assert injected.status_code == 200 and injected.json()["results"] == [], injected.text  # matched as one string
        undeclared = client.post("/search/text", json={"query": "volcano", "filter": {"text": "x"}})
        assert undeclared.status_code == 400 and "not a declared field of 'text'" in undeclared.text
        bad_k = client.post("/search/text", json={"query": "volcano", "top_k": 0})
        assert bad_k.status_code == 422, bad_k.text
        assert "top_k" in bad_k.text
        unknown = client.post("/search/nope", json={"query": "x"})
        assert unknown.status_code == 404 and "collections: text, images" in unknown.text
    cli = vectorize.fnctl("vectorize", "search", "text", "how do vaccines train the immune system", "--json")
    assert cli.exit_code == 0, cli.output
    assert len(json.loads(cli.output[cli.output.find("["):])) == 5
    stats = vectorize.fnctl("vectorize", "stats", "text", "--json")  # through vector-admin: vector-store is internal
    assert stats.exit_code == 0, stats.output
    assert int(json.loads(stats.output[stats.output.find("{"):])["row_count"]) >= 80


def test_the_operators_and_the_store_are_not_on_http(vectorize: Platform) -> None:
    with vectorize.client() as client:
        missing = client.post("/no-such-function", json={})
        for name in ("vector-store", "embed-text", "embed-image", "ocr-text"):
            response = client.post(f"/{name}", json={"op": "drop", "collection": "text"})
            assert response.status_code == 404, (name, response.text)
            assert response.json()["error"]["message"] == missing.json()["error"]["message"].replace(
                "no-such-function", name)
    assert vectorize.fnctl("vectorize", "stats", "text").exit_code == 0  # the drop above did nothing
    listed = {row["name"]: row for row in json.loads(vectorize.fnctl("ls", "--json").output)}
    assert listed["vector-store"]["internal"] is True and listed["vector-store"]["endpoint"] is None
    assert listed["vector-search"]["internal"] is False
    invoked = vectorize.fnctl("invoke", "vector-store", "-d", '{"op": "stats", "collection": "text"}')
    assert invoked.exit_code == 1 and "vector-store is internal" in invoked.output


def _line_of(item_id: str) -> int:
    lines = (VECTORIZE / "samples" / "docs.jsonl").read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if json.loads(line)["id"] == item_id)


def test_concurrent_embedding_calls_are_batched_on_the_server(vectorize: Platform) -> None:
    logs = wait_for(lambda: [line for line in vectorize.fnctl("logs", "embed-text").output.splitlines()
                             if "batch of" in line] or None, timeout=30)
    sizes = [int(m.group(1)) for line in logs if (m := re.search(r"batch of (\d+)", line))]
    assert max(sizes) > 1, sizes


def test_bad_items_fail_alone_with_reasons(vectorize: Platform, tmp_path: Path) -> None:
    lines = [json.dumps({"id": "good-1", "text": "Glaciers carve U-shaped valleys as they move downhill."}),
             json.dumps({"id": "empty", "text": "   "}),
             json.dumps({"id": "binary", "text": "\u0000\u0001\u0002" * 20}),
             json.dumps({"id": "huge", "text": "word " * 250_000}),
             json.dumps({"id": "no-text", "title": "nothing to embed"}),
             "{not json",
             json.dumps({"id": "good-2", "text": "Tides rise and fall twice a day because of the moon."})]
    source = tmp_path / "mixed.jsonl"
    source.write_text("\n".join(lines) + "\n")
    code, report = _ingest(vectorize, "text", str(source))
    assert code == 1
    assert report["stored"] == 2
    reasons = {e["id"]: e["error"] for e in report["errors"]}
    assert "text is empty" in reasons["empty"]
    assert "binary" in reasons["binary"]
    assert "over the limit" in reasons["huge"]
    assert "no 'text' field" in reasons["no-text"]
    assert any("invalid JSON" in error for error in reasons.values())
    assert report["failed"] == 5


def test_images_are_searchable_by_a_near_duplicate_and_broken_files_are_reported(vectorize: Platform,
                                                                                  tmp_path: Path) -> None:
    folder = tmp_path / "images"
    subprocess.run([sys.executable, str(VECTORIZE / "samples" / "make_images.py"), str(folder)], check=True,
                   capture_output=True)
    query = folder / "hopper__dup_cropped.jpg"
    query_bytes = query.read_bytes()
    query.unlink()  # search with a copy that is not in the collection
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 this is not really a jpeg")
    code, report = _ingest(vectorize, "images", str(folder))
    assert code == 1
    assert [e["id"] for e in report["errors"]] == ["broken.jpg"]
    assert "cannot decode the image" in report["errors"][0]["error"]
    with vectorize.client() as client:
        response = client.post("/search/images", files={"image": ("q.jpg", query_bytes, "image/jpeg")},
                               data={"top_k": "4"})
        assert response.status_code == 200, response.text
        top = [r["metadata"]["id"] for r in response.json()["results"]]
        assert top[0].startswith("hopper"), top
        assert sum(name.startswith("hopper") for name in top) >= 3, top
        garbage = client.post("/search/images", json={"image_b64": base64.b64encode(b"nope").decode()})
        assert garbage.status_code == 400 and "cannot decode" in garbage.text
        huge = client.post("/search/images", json={"image_b64": "A" * 28_000_000})  # 21 MB once decoded
        assert huge.status_code == 400 and "over the limit of 20,000,000" in huge.text


def test_ocr_operator_reads_the_text_of_an_image(vectorize: Platform) -> None:
    import io

    from PIL import Image, ImageDraw, ImageFont

    from fnplatform.serving.handles import HandleTransport

    image = Image.new("RGB", (900, 200), "white")
    ImageDraw.Draw(image).text((40, 60), "INVOICE 4711 PAID", fill="black", font=ImageFont.load_default(size=64))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    transport = HandleTransport()  # ocr-text is internal: called through its handle, as a function in the cluster does
    # may wait for other functions on the gpu node to scale down
    text = transport.result(transport.submit("ocr-text", {"image": buffer.getvalue()}), 300)
    assert "4711" in text and "INVOICE" in text.upper(), text


def test_searches_answer_while_the_corpus_is_ingested_again(vectorize: Platform) -> None:
    """Searches once stalled into 504s right after a re-ingest where every item was skipped."""
    from concurrent.futures import ThreadPoolExecutor

    docs = [json.loads(line) for line in (VECTORIZE / "samples" / "docs.jsonl").read_text().splitlines()[:40]]
    query = json.loads(QUERIES.read_text().splitlines()[0])["query"]
    with vectorize.client() as client, ThreadPoolExecutor(max_workers=6) as pool:
        def ingest(round_: int) -> Any:
            new = [{**doc, "id": f"{doc['id']}-r{round_}", "text": f"{doc['text']} (revision {round_})"} for doc in docs[:3]]
            return client.post("/vector-ingest", json={"pipeline": "text", "items": docs + new}, timeout=300)

        assert ingest(-1).status_code == 200  # the 40 documents are stored before the rounds

        def search(_: int) -> Any:
            return client.post("/search/text", json={"query": query, "top_k": 5}, timeout=30)

        for round_ in range(20):  # each round: one ingest (40 items skipped, 3 new) and 5 searches at once
            ingested = pool.submit(ingest, round_)
            searches = list(pool.map(search, range(5)))
            assert [(r.status_code, len(r.json()["results"])) for r in searches] == [(200, 5)] * 5, \
                [r.text for r in searches if r.status_code != 200]
            report = ingested.result()
            assert report.status_code == 200, report.text
            assert (report.json()["stored"], report.json()["skipped"], report.json()["failed"]) == (3, 40, 0), report.json()
