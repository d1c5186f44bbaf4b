"""The store's writer thread (merging, ordering, errors) and the refusal of a node-local store on a cluster."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from vectorize.milvus_store import SHARED_STORAGE, StoreError, check_placement
from vectorize.writer import BatchWriter


def _rows(key: str, count: int) -> list[dict[str, Any]]:
    return [{"item_key": key, "position": p} for p in range(count)]


class Recorder:
    """An in-process stand-in for Milvus: records each batch; the first write waits until released."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[str]]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def write(self, collection: str, rows: list[dict[str, Any]]) -> None:
        self.started.set()
        self.release.wait(5)
        self.batches.append((collection, sorted({row["item_key"] for row in rows})))


def test_jobs_waiting_together_share_one_write_and_overlapping_items_do_not() -> None:
    store = Recorder()
    writer = BatchWriter(store.write, max_rows=10)
    first = writer.submit("text", _rows("a", 2))
    assert store.started.wait(5)  # the writer is busy with "a": the next jobs queue
    queued = [writer.submit("text", _rows("b", 3)), writer.submit("text", _rows("c", 3)),
              writer.submit("text", _rows("b", 1)),  # "b" again: its own write, after the first "b"
              writer.submit("images", _rows("d", 1)), writer.submit("text", _rows("e", 9))]
    store.release.set()
    assert [f.result(5) for f in (first, *queued)] == [2, 3, 3, 1, 1, 9]
    writer.close(5)
    assert store.batches == [("text", ["a"]), ("text", ["b", "c"]), ("text", ["b"]), ("images", ["d"]),
                             ("text", ["e"])]


def test_nothing_to_write_starts_no_write_and_a_failed_write_fails_its_callers_only() -> None:
    calls: list[int] = []

    def write(collection: str, rows: list[dict[str, Any]]) -> None:
        calls.append(len(rows))
        if rows[0]["item_key"] == "bad":
            raise StoreError("upsert failed: disk full", status=503)

    writer = BatchWriter(write)
    assert writer.submit("text", []).result(1) == 0
    assert calls == []
    with pytest.raises(StoreError, match="disk full"):
        writer.submit("text", _rows("bad", 1)).result(5)
    assert writer.submit("text", _rows("good", 2)).result(5) == 2  # the writer goes on
    writer.close(5)


def test_max_rows_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_rows must be >= 1, got 0"):
        BatchWriter(lambda collection, rows: None, max_rows=0)


CLUSTER = {"KUBERNETES_SERVICE_HOST": "10.100.0.1"}


@pytest.mark.parametrize("env", [
    {},  # fnctl up on one machine: the default file under FN_HOME
    {"FN_MILVUS_URI": "/data/milvus.db"},
    {**CLUSTER, "FN_MILVUS_URI": "http://milvus.vectors.svc:19530"},
    {**CLUSTER, "FN_MILVUS_URI": "https://in03-abc.api.gcp-us-west1.zillizcloud.com"},
    {**CLUSTER, "FN_MILVUS_URI": "/mnt/efs/milvus.db", SHARED_STORAGE: "1"},
])
def test_a_store_that_outlives_its_node_starts(env: dict[str, str]) -> None:
    check_placement(env)


@pytest.mark.parametrize("env", [CLUSTER, {**CLUSTER, "FN_MILVUS_URI": "/tmp/milvus.db"},
                                 {**CLUSTER, SHARED_STORAGE: "yes"}])
def test_a_node_local_file_on_a_cluster_is_refused_with_the_setting_to_use(env: dict[str, str]) -> None:
    with pytest.raises(StoreError) as caught:
        check_placement(env)
    assert "FN_MILVUS_URI" in str(caught.value) and f"{SHARED_STORAGE}=1" in str(caught.value)
    assert caught.value.status == 503


def test_the_store_function_refuses_to_start_on_a_cluster_without_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from vectorize.service import VectorStoreFunction

    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.100.0.1")
    monkeypatch.delenv("FN_MILVUS_URI", raising=False)
    monkeypatch.delenv(SHARED_STORAGE, raising=False)
    with pytest.raises(StoreError, match="Deploy with FN_MILVUS_URI set to a Milvus server"):
        VectorStoreFunction().setup()
    monkeypatch.setenv("FN_MILVUS_URI", "http://milvus:19530")
    VectorStoreFunction().setup()  # opens nothing yet: the deploy's check never takes Milvus Lite's file lock


def test_deploy_hands_the_store_settings_of_the_deploying_shell_to_the_replica(monkeypatch: pytest.MonkeyPatch) -> None:
    from vectorize.service import store_env

    monkeypatch.setenv("FN_MILVUS_URI", "http://milvus:19530")
    monkeypatch.delenv(SHARED_STORAGE, raising=False)
    assert store_env() == {"FN_MILVUS_URI": "http://milvus:19530"}
