"""Hybrid search: reciprocal rank fusion on hand-made rankings, BM25 scores on a tiny corpus worked out by hand, the
store's BM25 index kept current by its writes, and hybrid search through the real store and the functions."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from documents_helpers import ingest, local_functions, search
from vectorize.hybrid import BM25, LexicalIndexes, rrf, stem, tokens
from vectorize.milvus_store import StoreError, VectorStore, milvus
from vectorize_paths import VECTORIZE

import fn


def test_rrf_sums_one_over_k_plus_rank() -> None:
    fused = rrf([["a", "b", "c"], ["c", "a", "d"]], k=60)
    expected = {"a": 1 / 61 + 1 / 62, "b": 1 / 62, "c": 1 / 63 + 1 / 61, "d": 1 / 63}
    assert [key for key, _ in fused] == ["a", "c", "b", "d"]
    assert dict(fused) == pytest.approx(expected)
    assert rrf([["x", "y"]], k=0) == [("x", 1.0), ("y", 0.5)]
    assert rrf([]) == [] and rrf([[], ["z"]]) == [("z", 1 / 61)]


def test_rrf_breaks_ties_by_best_rank_then_by_ranking_order() -> None:
    assert [key for key, _ in rrf([["a", "b"], ["b", "a"]])] == ["a", "b"]  # equal sums: both best at 1, a first
    # q is in both (1/62 + 1/63); p and s tie at 1/61, each first in its ranking: p's ranking comes first
    assert [key for key, _ in rrf([["p", "q", "r"], ["s", "t", "q"]])] == ["q", "p", "s", "t", "r"]


def test_rrf_puts_a_document_both_rankings_agree_on_above_one_only_a_single_ranking_tops() -> None:
    dense = ["d1", "d2", "d3", "d4"]
    lexical = ["l1", "d3", "l2", "d2"]
    assert [key for key, _ in rrf([dense, lexical])][:4] == ["d3", "d2", "d1", "l1"]


def test_tokens_drop_stop_words_and_fold_plurals() -> None:
    assert tokens("The volcanoes of Hawaii, and their ERUPTIONS!") == ["volcanoe", "hawaii", "eruption"]
    assert [stem(w) for w in ("bodies", "churches", "glass", "virus", "basis", "cats", "gas")] == \
        ["body", "church", "glass", "virus", "basis", "cat", "gas"]


def bm25_by_hand(tf: int, length: int, average: float, documents: int, having: int) -> float:
    idf = math.log(1 + (documents - having + 0.5) / (having + 0.5))
    return idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / average))


def test_bm25_scores_a_tiny_corpus_as_worked_out_by_hand() -> None:
    index = BM25()
    index.add("d1", "The cat sat on the mat.")  # cat sat mat
    index.add("d2", "A dog sat there.")  # dog sat
    index.add("d3", "Cats and dogs, dogs and cats, cats.")  # cat dog dog cat cat
    average = (3 + 2 + 5) / 3
    assert index.scores("cat") == pytest.approx({"d1": bm25_by_hand(1, 3, average, 3, 2),
                                                 "d3": bm25_by_hand(3, 5, average, 3, 2)})
    both = index.scores("the dog on the mat")  # stop words count for nothing
    assert both == pytest.approx({"d1": bm25_by_hand(1, 3, average, 3, 1), "d2": bm25_by_hand(1, 2, average, 3, 2),
                                  "d3": bm25_by_hand(2, 5, average, 3, 2)})
    assert [key for key, _ in index.top("cats", 2)] == ["d3", "d1"]
    assert index.scores("giraffe") == {} and index.scores("cat cat") == index.scores("cat")

    index.add("d3", "A bird.")  # replaced: the statistics follow
    index.remove("d2")
    assert len(index) == 2
    assert index.scores("cat") == pytest.approx({"d1": bm25_by_hand(1, 3, (3 + 1) / 2, 2, 1)})
    assert index.scores("dog") == {}


def test_the_lexical_index_is_built_once_and_kept_current_by_writes_even_during_its_build() -> None:
    loading = threading.Event()
    release = threading.Event()
    loads: list[str] = []

    def load(collection: str) -> Any:
        loads.append(collection)
        yield "a#0", "volcanoes erupt lava"
        loading.set()
        release.wait(5)
        yield "b#0", "glaciers carve valleys"

    indexes = LexicalIndexes(load)
    found: list[Any] = []
    builder = threading.Thread(target=lambda: found.append(indexes.search("text", "lava rivers", 5)))
    builder.start()
    assert loading.wait(5)
    indexes.written("text", [{"pk": "c#0", "text": "rivers of lava"}, {"pk": "img#0"}])  # flushed mid-build
    indexes.deleted("text", ["a#0"])
    release.set()
    builder.join(5)
    assert [key for key, _ in found[0]] == ["c#0"]  # a#0 was deleted, c#0 written while the rows were read
    assert [key for key, _ in indexes.search("text", "valleys", 5)] == ["b#0"] and loads == ["text"]
    indexes.written("text", [{"pk": "b#0", "text": "a quiet lake"}])
    assert indexes.search("text", "valleys", 5) == []
    indexes.drop("text")  # the collection was dropped: the next search builds the index again from the store
    release.set()
    assert [key for key, _ in indexes.search("text", "valleys", 5)] == ["b#0"] and loads == ["text", "text"]


def test_a_failed_build_is_not_kept() -> None:
    attempts = []

    def load(collection: str) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise StoreError("the store is unavailable", status=503)
        yield "a#0", "lava"

    indexes = LexicalIndexes(load)
    with pytest.raises(StoreError):
        indexes.search("text", "lava", 3)
    assert [key for key, _ in indexes.search("text", "lava", 3)] == ["a#0"]


def _unit(values: list[float]) -> list[float]:
    array = np.asarray(values, dtype=np.float32)
    return (array / np.linalg.norm(array)).tolist()  # type: ignore[no-any-return]


def test_hybrid_search_in_the_store_fuses_both_rankings_and_keeps_filters(tmp_path: Path) -> None:
    from milvus_lite.server_manager import server_manager_instance  # type: ignore[import-untyped]

    store = VectorStore(str(tmp_path / "milvus.db"))
    store.ensure(milvus("c", dim=3, index="FLAT", fields={"topic": "str"}))
    texts = {"near": ("the query's meaning, other words", [1, 0, 0], "a"),
             "term": ("mentions zirconium once", [0, 0, 1], "b"),
             "both": ("zirconium and the meaning", [0.9, 0.1, 0], "a"),
             "none": ("unrelated", [-1, 0.1, 0], "b")}
    rows = [{"pk": f"{key}#0", "item_key": key, "content_sha": "s", "position": 0, "vector": _unit(vector),
             "text": text, "topic": topic} for key, (text, vector, topic) in texts.items()]
    store.replace_items("c", rows)
    try:
        dense = store.search("c", _unit([1, 0, 0]), 4, "")
        assert [r["id"] for r in dense][:2] == ["near#0", "both#0"]
        hybrid = store.search("c", _unit([1, 0, 0]), 3, "", mode="hybrid", query="zirconium")
        assert [(r["id"], r["ranks"]) for r in hybrid] == [("both#0", {"dense": 2, "bm25": 1}),
                                                           ("term#0", {"dense": 3, "bm25": 2}),
                                                           ("near#0", {"dense": 1, "bm25": None})]
        assert [r["score"] for r in hybrid] == pytest.approx([1 / 62 + 1 / 61, 1 / 63 + 1 / 62, 1 / 61])
        assert hybrid[1]["metadata"] == {"text": "mentions zirconium once", "topic": "b", "position": 0}
        filtered = store.search("c", _unit([1, 0, 0]), 5, 'topic == "b"', mode="hybrid", query="zirconium")
        assert [(r["id"], r["ranks"]["bm25"]) for r in filtered] == [("term#0", 1), ("none#0", None)]
        store.replace_items("c", [{**rows[1], "text": "now about tin"}])  # the index follows the write
        assert [r["id"] for r in store.search("c", _unit([0, 1, 0]), 1, "", mode="hybrid", query="tin")] == ["term#0"]
        with pytest.raises(StoreError, match="mode must be one of dense, hybrid"):
            store.search("c", _unit([1, 0, 0]), 3, "", mode="sparse")
        with pytest.raises(StoreError, match="hybrid search needs the query's text"):
            store.search("c", _unit([1, 0, 0]), 3, "", mode="hybrid")
    finally:
        store.close()
        server_manager_instance.release_server(store.uri)


def test_hybrid_search_through_the_functions(models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv("FN_HOME", str(tmp_path))
    monkeypatch.delenv("FN_MILVUS_URI", raising=False)
    docs = [json.loads(line) for line in (VECTORIZE / "samples" / "docs.jsonl").read_text().splitlines()[:16]]
    with local_functions(tmp_path):
        assert ingest("text", docs)["stored"] == 16
        hits = search("text", "Mauna Loa", top_k=3, mode="hybrid")
        assert hits[0]["metadata"]["id"] == "shield-volcano" and hits[0]["ranks"]["bm25"] == 1
        with pytest.raises(fn.BadRequest, match="hybrid search needs text; 'images' holds images"):
            search("images", "x", mode="hybrid")
