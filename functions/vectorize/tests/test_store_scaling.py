"""vector-store beyond one replica (a Milvus server): the setting and its checks, an item left mixed by two writers
is written again, and BM25 indexes that age out (each replica sees only its own writes). No Milvus server here:
the store's side runs on Milvus Lite, which the replicas setting itself refuses."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from vectorize.hybrid import LexicalIndexes
from vectorize.milvus_store import REPLICAS, VectorStore, milvus, store_replicas

import fn

SERVER = {"FN_MILVUS_URI": "http://milvus.vectors.svc:19530"}


@pytest.mark.parametrize(("env", "replicas"), [({}, 1), (SERVER, 4), ({**SERVER, REPLICAS: "1"}, 1),
                                               ({REPLICAS: "1"}, 1), ({**SERVER, REPLICAS: " 16 "}, 16),
                                               ({"FN_MILVUS_URI": "/mnt/efs/milvus.db"}, 1)])
def test_the_store_scales_out_only_on_a_milvus_server_by_default(env: dict[str, str], replicas: int) -> None:
    assert store_replicas(env) == replicas


@pytest.mark.parametrize(("env", "message"), [
    ({REPLICAS: "2"}, "VECTORIZE_STORE_REPLICAS=2 needs FN_MILVUS_URI set to a Milvus server"),
    ({REPLICAS: "3", "FN_MILVUS_URI": "/mnt/efs/milvus.db"}, "a Milvus Lite file is opened by one process"),
    ({**SERVER, REPLICAS: "0"}, "must be a whole number from 1 to 16, got '0'"),
    ({**SERVER, REPLICAS: "17"}, "got '17'"),
    ({**SERVER, REPLICAS: "many"}, "got 'many'"),
])
def test_a_replicas_setting_the_store_cannot_honour_stops_the_deploy(env: dict[str, str], message: str) -> None:
    with pytest.raises(fn.SpecError, match=message):
        store_replicas(env)


def test_deploy_hands_the_replicas_setting_to_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    from vectorize.service import VectorStoreFunction, store_env

    monkeypatch.setenv("FN_MILVUS_URI", SERVER["FN_MILVUS_URI"])
    monkeypatch.setenv(REPLICAS, "4")
    assert store_env()[REPLICAS] == "4"  # the replica's own indexes then age out (below)
    assert VectorStoreFunction.__fn_spec__.max_replicas == 1  # read when the module was imported: unset here


def _rows(key: str, sha: str, positions: range, total: int | None) -> list[dict[str, Any]]:
    extra = {} if total is None else {"item_rows": total}
    return [{"pk": f"{key}#{p}", "item_key": key, "content_sha": sha, "position": p, "vector": [1.0, float(p)],
             **extra} for p in positions]


def test_an_item_two_writers_left_mixed_or_short_is_not_known_so_it_is_written_again(tmp_path: Path) -> None:
    from milvus_lite.server_manager import server_manager_instance  # type: ignore[import-untyped]

    store = VectorStore(str(tmp_path / "milvus.db"))
    store.ensure(milvus("c", dim=2, index="FLAT"))
    try:
        store.client.upsert("c", _rows("whole", "s1", range(3), 3) + _rows("legacy", "s1", range(2), None)
                            + _rows("mixed", "s1", range(2), 3) + _rows("mixed", "s2", range(2, 3), 3)
                            + _rows("short", "s2", range(2), 3))
        store.client.flush("c")
        assert store.known("c", ["whole", "legacy", "mixed", "short", "absent"]) == {"whole": "s1", "legacy": "s1"}
        hit = store.search("c", [1.0, 0.0], 1, "")[0]
        assert "item_rows" not in hit["metadata"]
    finally:
        store.close()
        server_manager_instance.release_server(store.uri)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_with_several_replicas_an_old_index_is_rebuilt_while_the_old_one_serves() -> None:
    clock = Clock()
    texts = {"a#0": "lava"}
    started, release = threading.Event(), threading.Event()
    builds: list[int] = []

    def load(collection: str) -> Any:
        builds.append(1)
        if len(builds) == 2:  # the rebuild: another replica has written b#0 meanwhile
            started.set()
            release.wait(5)
        yield from list(texts.items())

    indexes = LexicalIndexes(load, max_age_s=30, clock=clock)
    assert [key for key, _ in indexes.search("text", "lava", 5)] == ["a#0"]
    texts["b#0"] = "more lava"  # written through another replica: this one does not see it
    clock.now = 10
    assert [key for key, _ in indexes.search("text", "lava", 5)] == ["a#0"] and len(builds) == 1
    clock.now = 31
    found: list[Any] = []
    rebuild = threading.Thread(target=lambda: found.append(indexes.search("text", "lava", 5)))
    rebuild.start()
    assert started.wait(5)
    assert [key for key, _ in indexes.search("text", "lava", 5)] == ["a#0"]  # served by the old one meanwhile
    indexes.written("text", [{"pk": "c#0", "text": "lava flows"}])  # this replica's own write, mid-rebuild
    release.set()
    rebuild.join(5)
    assert sorted(key for key, _ in found[0]) == ["a#0", "b#0", "c#0"] and len(builds) == 2
    assert sorted(key for key, _ in indexes.search("text", "lava", 5)) == ["a#0", "b#0", "c#0"]


def test_a_failed_rebuild_keeps_the_old_index() -> None:
    clock = Clock()
    calls: list[int] = []

    def load(collection: str) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionError("milvus is restarting")
        yield "a#0", "lava"

    indexes = LexicalIndexes(load, max_age_s=30, clock=clock)
    indexes.search("text", "lava", 5)
    clock.now = 60
    assert [key for key, _ in indexes.search("text", "lava", 5)] == ["a#0"]  # the rebuild failed: the old one
    assert [key for key, _ in indexes.search("text", "lava", 5)] == ["a#0"] and len(calls) == 3  # tried again
