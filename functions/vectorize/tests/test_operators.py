"""The vectorize operators, the pipeline runner and the Milvus store, in one process (no Ray)."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from vectorize.milvus_store import Collection, StoreError, VectorStore, milvus
from vectorize.ops import ItemError, check_text, chunker, decode_image, image_descriptor, l2_normalize
from vectorize.pipeline import Item, Pipeline, Report
from vectorize_paths import DATA, VECTORIZE


def test_onnx_minilm_matches_sentence_transformers_golden_vectors(minilm: Any) -> None:
    golden = json.loads((DATA / "minilm_golden.json").read_text())
    texts = [entry["text"] for entry in golden["cases"]]
    vectors = minilm.embed(texts)
    for entry, vector in zip(golden["cases"], vectors, strict=True):
        expected = np.asarray(entry["embedding"], dtype=np.float32)
        assert float(vector @ expected) > 0.9999, entry["text"][:40]
        assert np.abs(vector - expected).max() < 1e-4


def test_chunks_are_token_windows_that_overlap(minilm: Any) -> None:
    text = (VECTORIZE / "samples" / "notes" / "bicycle-maintenance.md").read_text()
    chunks = list(chunker(minilm.count_tokens, minilm.token_spans, max_tokens=128, overlap=32)(text, {}))
    assert len(chunks) > 5
    assert all(minilm.count_tokens(chunk) <= 128 for chunk, _ in chunks)
    assert [meta["position"] for _, meta in chunks] == list(range(len(chunks)))
    for (_, first), (_, second) in itertools.pairwise(chunks):
        assert second["start"] < first["end"]  # the overlap
    assert chunks[-1][1]["end"] == len(text.rstrip())  # nothing at the end is lost
    short = list(chunker(minilm.count_tokens, minilm.token_spans)("A short note.", {}))
    assert short == [("A short note.", {"text": "A short note.", "position": 0, "start": 0, "end": 13})]
    assert all(meta["text"] == chunk for chunk, meta in chunks)


@pytest.mark.parametrize(("value", "message"), [
    ("", "text is empty"), ("   \n", "text is empty"), (42, "must be a string"),
    ("ab\x00cd" * 10, "looks binary"), ("x" * 1_000_001, "over the limit"),
])
def test_bad_text_is_refused_with_the_reason(value: object, message: str) -> None:
    with pytest.raises(ItemError, match=message):
        check_text(value)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"), (b"not an image at all", "cannot decode"), ("text", "must be bytes"),
])
def test_bad_images_are_refused_with_the_reason(data: object, message: str) -> None:
    with pytest.raises(ItemError, match=message):
        decode_image(data)


def test_descriptor_ranks_near_duplicates_above_other_images(sample_images: Path) -> None:
    files = sorted(p for p in sample_images.iterdir() if p.suffix in {".jpg", ".png"})
    vectors = {p.name: np.asarray(image_descriptor(decode_image(p.read_bytes()))) for p in files}
    originals = [name for name in vectors if "__dup_" not in name and not name.startswith("synthetic")]
    assert len(originals) >= 1
    for name in vectors:
        if "__dup_" not in name:
            continue
        stem = name.split("__dup_")[0]
        best = max((other for other in vectors if other != name and "__dup_" not in other),
                   key=lambda other: float(vectors[name] @ vectors[other]))
        assert best.split(".")[0] == stem, f"{name}: nearest original is {best}"


def test_l2_normalize_refuses_zero_vectors() -> None:
    assert l2_normalize([3, 4]) == pytest.approx([0.6, 0.8])
    with pytest.raises(ItemError, match="zero"):
        l2_normalize([0, 0])


def test_pipeline_fails_bad_items_and_keeps_the_rest() -> None:
    def explode(value: str) -> str:
        if value == "bad":
            raise ItemError("this one is bad")
        return value.upper()

    pipe = Pipeline("t").map(explode).flat_map(lambda v, meta: [(c, {"position": i}) for i, c in enumerate(v)])
    pipe = pipe.filter(lambda v: v != "B").batch(lambda values: [v * 2 for v in values], size=2)
    report = Report()
    items = [Item("a", "ab", {"source": "s"}), Item("b", "bad", {"source": "s"}), Item("c", "", {"source": "s"})]
    out = asyncio.run(pipe.run(items, report))
    assert [(i.key, i.value, i.meta["position"]) for i in out] == [("a", "AA", 0)]
    assert (report.filtered, report.skipped) == (1, 0)  # "B" filtered out
    assert {e["id"]: e["error"] for e in report.failed} == {
        "b": "this one is bad", "c": "produced nothing to store (no text left after chunking)"}


def test_collection_declaration_is_checked() -> None:
    with pytest.raises(ValueError, match="metric must be one of"):
        Collection("x", 4, metric="HAMMING")
    with pytest.raises(ValueError, match="dim must be"):
        milvus("x", dim=0)
    with pytest.raises(ValueError, match="type must be one of str, int, float"):
        milvus("x", dim=2, fields={"topic": "text"})
    for name in ("Topic", "a b", "pk", 'x" or 1==1'):
        with pytest.raises(ValueError, match="lowercase letters"):
            milvus("x", dim=2, fields={name: "str"})


@pytest.fixture
def store(tmp_path: Path) -> VectorStore:
    return VectorStore(str(tmp_path / "milvus.db"))


def _rows(key: str, vectors: list[list[float]], sha: str = "s1") -> list[dict[str, Any]]:
    return [{"pk": f"{key}#{i}", "item_key": key, "content_sha": sha, "vector": v, "position": i, "text": f"{key} {i}",
             "topic": "t"} for i, v in enumerate(vectors)]


def test_store_upserts_by_content_key_and_trims_rows_of_a_shorter_new_version(store: VectorStore) -> None:
    store.ensure(milvus("c", dim=2, index="FLAT"))
    assert store.replace_items("c", _rows("doc", [[1, 0], [0, 1], [1, 1]])) == 3
    assert store.replace_items("c", _rows("doc", [[1, 0], [0, 1], [1, 1]])) == 3
    assert store.stats("c")["row_count"] == 3  # same item again: updated, not duplicated
    store.replace_items("c", _rows("doc", [[1, 0]], sha="s2"))
    assert store.stats("c")["row_count"] == 1
    assert store.known("c", ["doc", "other"]) == {"doc": "s2"}
    hits = store.search("c", [1, 0.1], 5, 'topic == "t"')
    assert hits[0]["id"] == "doc#0" and hits[0]["metadata"]["text"] == "doc 0"
    assert "vector" not in hits[0]["metadata"]


def test_store_refuses_a_dimension_mismatch_and_unknown_collections(store: VectorStore) -> None:
    store.ensure(milvus("c", dim=2, index="FLAT"))
    fresh = VectorStore(store.uri)  # another replica's view: it must read the existing schema
    store.client.close()
    with pytest.raises(StoreError, match="holds 2-d vectors but the pipeline makes 3-d ones") as info:
        fresh.ensure(milvus("c", dim=3, index="FLAT"))
    assert info.value.status == 409
    with pytest.raises(StoreError, match="no collection named 'nope'") as missing:
        fresh.search("nope", [1, 0], 3, "")
    assert missing.value.status == 404
    with pytest.raises(StoreError, match="search in 'c' failed"):
        fresh.search("c", [1, 0], 3, "topic ==")


def test_unreachable_milvus_server_is_a_503_naming_it() -> None:
    store = VectorStore("http://127.0.0.1:9")
    with pytest.raises(StoreError, match=r"127\.0\.0\.1:9") as info:
        store.known("c", ["a"])
    assert info.value.status == 503
