"""The shared-state server (fnplatform.state.server) in-process over a real SQLite file, and fn.Dict / fn.Queue
through it: values come back as stored, incr is atomic under concurrency, a queue is FIFO with waits and a bound,
limits and bad input are clear errors, and a new server (a restart) reads back everything that was acknowledged."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

import fn
from fn._platform import install_state
from fnplatform.state.server import StateServer


class InProcess:
    """The SDK's backend shape over a server object, on one event loop of its own (as the actor has)."""

    opened: list[InProcess] = []

    def __init__(self, server: StateServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        InProcess.opened.append(self)

    def op(self, method: str, *args: Any) -> Any:
        result = getattr(self.server, method)(*args)
        return self.loop.run_until_complete(result) if asyncio.iscoroutine(result) else result

    async def aop(self, method: str, *args: Any) -> Any:
        return await getattr(self.server, method)(*args)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
def backend(url: str) -> Any:
    backend = InProcess(StateServer(url))
    install_state(backend)
    yield backend
    install_state(None)
    for each in InProcess.opened:
        each.loop.close()
        each.server._store.engine.dispose()
    InProcess.opened.clear()


def test_a_dict_stores_json_values_and_survives_a_new_server(backend: InProcess, url: str) -> None:
    d = fn.Dict("weights")
    d["a"] = {"w": [0.5, 1.5], "n": 3}
    d["none"] = None
    assert d["a"] == {"w": [0.5, 1.5], "n": 3} and d.get("none", "x") is None and "none" in d
    assert d.get("missing", 7) == 7 and "missing" not in d
    with pytest.raises(KeyError):
        d["missing"]
    assert d.incr("hits") == 1 and d.incr("hits", by=41) == 42
    del d["none"]
    with pytest.raises(KeyError):
        del d["none"]
    assert d.keys() == ["a", "hits"] and len(d) == 2 and d.keys(prefix="h") == ["hits"]
    install_state(InProcess(StateServer(url)))  # what a restarted server sees: the database only
    assert fn.Dict("weights")["a"]["n"] == 3 and fn.Dict("weights")["hits"] == 42 and "none" not in fn.Dict("weights")


def test_incr_is_atomic_when_many_arrive_together(backend: InProcess) -> None:
    async def many() -> list[int]:
        return list(await asyncio.gather(*(backend.server.dict_incr("c", "k", 1) for _ in range(200))))

    results = backend.loop.run_until_complete(many())
    assert sorted(results) == list(range(1, 201)) and fn.Dict("c")["k"] == 200


def test_a_queue_is_fifo_bounded_and_waits(backend: InProcess, url: str) -> None:
    q = fn.Queue("feedback", maxsize=3)
    for item in ({"r": 1}, {"r": 2}, [3]):
        q.put(item)
    assert len(q) == 3
    with pytest.raises(fn.TooManyRequests, match="is full"):
        q.put({"r": 4})
    assert q.get(timeout=0) == {"r": 1}
    install_state(InProcess(StateServer(url)))  # restarted: the two left, in order
    assert q.get_many(10) == [{"r": 2}, [3]] and q.get(timeout=0.2) is None

    async def later_put() -> Any:
        server = StateServer(url)
        waiter = asyncio.ensure_future(server.queue_get("late", 5.0))
        await asyncio.sleep(0.1)
        await server.queue_put("late", '"here"', 10, 0)
        return await waiter

    assert asyncio.run(later_put()) == '"here"'


def test_bad_names_keys_values_and_limits_are_clear_errors(backend: InProcess) -> None:
    with pytest.raises(fn.BadRequest, match="state name 'Bad Name' is invalid"):
        fn.Dict("Bad Name")
    d = fn.Dict("d")
    with pytest.raises(fn.BadRequest, match="must be a str"):
        d[3] = 1  # type: ignore[index]
    with pytest.raises(fn.BadRequest, match="1 to 512 bytes"):
        d["k" * 513] = 1
    with pytest.raises(fn.BadRequest, match="JSON-serialisable"):
        d["k"] = {1, 2}
    with pytest.raises(fn.PayloadTooLarge, match="over the limit of 1,048,576"):
        d["k"] = "x" * (1024 * 1024)
    d["s"] = "text"
    with pytest.raises(fn.Conflict, match="holds a str, not a whole number"):
        d.incr("s")
    with pytest.raises(fn.BadRequest, match=r"by=1\.5"):
        d.incr("n", by=1.5)  # type: ignore[arg-type]
    with pytest.raises(fn.BadRequest, match="does not hold None"):
        fn.Queue("q").put(None)
    with pytest.raises(fn.BadRequest, match="maxsize=0"):
        fn.Queue("q", maxsize=0)
    with pytest.raises(fn.BadRequest, match=r"control characters: '\\x00' at position 1"):
        d["a\x00"] = 1  # PostgreSQL refuses NUL in text: it would fail every write committed with it
    with pytest.raises(fn.BadRequest, match="lone surrogate"):
        d["\ud800"] = 1
    with pytest.raises(fn.BadRequest, match="prefix must be a str"):
        d.keys(prefix=5)  # type: ignore[arg-type]
    with pytest.raises(fn.BadRequest, match="prefix must be a str"):  # straight to the server, as a replica may
        backend.op("dict_keys", "d", 10, 5)


def test_a_failed_commit_is_not_acknowledged_and_the_copy_is_read_again(backend: InProcess) -> None:
    d = fn.Dict("d")
    d["kept"] = 1
    store = backend.server._store
    original = store.apply

    def broken(writes: Any) -> None:
        raise OSError("disk gone")

    store.apply = broken  # type: ignore[method-assign]
    with pytest.raises(fn.Unavailable, match="did not take the change"):
        d["lost"] = 2
    store.apply = original  # type: ignore[method-assign]
    assert "lost" not in d and d["kept"] == 1  # the memory copy was dropped and read back from the database


def test_a_failed_commit_never_loses_or_repeats_what_later_commits_hold(url: str) -> None:
    """One transaction fails while the next is still committing: what reads see afterwards is the database."""
    server = StateServer(url)
    original = server._store.apply
    batches: list[list[Any]] = []

    def first_fails_next_slow(writes: Any) -> None:
        batches.append(list(writes))
        if len(batches) == 1:
            time.sleep(0.1)  # so the next writes gather behind it, in a transaction of their own
            raise OSError("database is locked")
        time.sleep(0.2)  # long enough that a read arrives while it is in flight
        original(writes)

    async def scenario() -> tuple[Any, ...]:
        await server.dict_set("d", "before", '"x"')
        await server.queue_put("q", '"one"', 10, 0)
        await server.queue_put("q", '"two"', 10, 0)
        server._store.apply = first_fails_next_slow  # type: ignore[method-assign]
        failing = asyncio.ensure_future(server.dict_set("d", "a", "1"))
        await asyncio.sleep(0.02)
        acked = asyncio.ensure_future(server.dict_set("d", "b", "2"))
        taken = asyncio.ensure_future(server.queue_get("q", 0))
        await asyncio.sleep(0.15)  # the first transaction has failed, the second is committing
        seen_b, other_get = await server.dict_get("d", "b"), await server.queue_get("q", 0)
        results = await asyncio.gather(failing, acked, taken, return_exceptions=True)
        return results, seen_b, other_get, await server.dict_get("d", "a"), await server.queue_len("q")

    (failed, acked, taken), seen_b, other_get, a, left = asyncio.run(scenario())
    assert isinstance(failed, fn.Unavailable) and acked is None  # a's write was refused, b's acknowledged
    assert seen_b == "2" and a is None  # the read waited for b's commit instead of reading the database before it
    assert {taken, other_get} == {'"one"', '"two"'} and left == 0  # each item handed out once
    server._store.engine.dispose()


def test_async_twins(backend: InProcess) -> None:
    async def use() -> tuple[Any, ...]:
        d, q = fn.Dict("a"), fn.Queue("aq")
        await d.aput("k", [1])
        await q.aput("x")
        return await d.aget("k"), await d.aincr("n", 2), await q.aget(timeout=1), await d.adelete("k")

    assert backend.loop.run_until_complete(use()) == ([1], 2, "x", True)


def test_a_put_longer_than_one_server_wait_asks_again_until_its_own_timeout() -> None:
    class Full:
        def __init__(self, refusals: int) -> None:
            self.refusals, self.waits = refusals, []

        def op(self, method: str, *args: Any) -> Any:
            self.waits.append(args[3])
            if len(self.waits) <= self.refusals:
                raise fn.TooManyRequests("queue 'q' is full", status=429)
            return None

    room_later = Full(refusals=2)
    install_state(room_later)  # type: ignore[arg-type]
    try:
        fn.Queue("q").put(1, timeout=3600)
        assert len(room_later.waits) == 3 and all(0 < w <= 20 for w in room_later.waits)
        never = Full(refusals=10**6)
        install_state(never)  # type: ignore[arg-type]
        with pytest.raises(fn.TooManyRequests):
            fn.Queue("q").put(1, timeout=0.05)
        assert 1 <= len(never.waits) < 10**6 and max(never.waits) <= 0.05
    finally:
        install_state(None)
