"""Calls past timeout_s whose thread keeps running: counted, logged with the 504, and a replica whose workers they
all hold fails ``check_health`` (Serve then replaces it). In-process through ``FunctionReplica.around``; no Ray."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

import fn
from fnplatform.serving.hub import Hub
from fnplatform.serving.logs import LogShipper
from fnplatform.serving.overrun import OverrunCalls, Unhealthy
from fnplatform.serving.replica import FunctionReplica, Loaded
from fnplatform.serving.signature import Signature

from .test_gateway import InProcessActor, serve_like

release = threading.Event()


@pytest.fixture(autouse=True)
def _release_stuck_threads() -> Iterator[None]:
    release.clear()
    yield
    release.set()  # the pool's threads are not daemons: never leave one waiting


def stuck(x: int) -> int:
    release.wait(10)
    return x


async def stuck_async(x: int) -> int:
    await asyncio.sleep(10)
    return x


class RecordingShipper(LogShipper):
    def __init__(self, function: str) -> None:
        super().__init__(function, "r1", None)
        self.recorded: list[str] = []

    def line(self, level: str, message: str, request_id: str | None = None) -> None:
        self.recorded.append(f"{level} {message}")


def replica(target: Callable[..., Any], **options: Any) -> tuple[FunctionReplica, RecordingShipper]:
    spec = fn.FunctionSpec(name=target.__name__.replace("_", "-"), public=True, **options)
    loaded = Loaded(target=target, signature=Signature(target, spec.name, batched=False),
                    is_async=inspect.iscoroutinefunction(target))
    shipper = RecordingShipper(spec.name)
    return FunctionReplica.around(spec, loaded, InProcessActor(Hub()), shipper), shipper


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_timed_out_sync_calls_holding_every_worker_fail_the_health_check_until_they_return() -> None:
    function, shipper = replica(stuck, max_concurrency=2, timeout_s=0.1)
    client = TestClient(serve_like(function))
    function.check_health()  # a fresh replica is healthy

    assert client.post("/", json={"x": 1}).status_code == 504
    assert "WARNING stuck ran past timeout_s: 1 timed-out calls still running of 2 workers" in shipper.recorded
    function.check_health()  # one worker of two still answers

    assert client.post("/", json={"x": 2}).status_code == 504
    with pytest.raises(Unhealthy, match="stuck: 2 timed-out calls still running of 2 workers"):
        function.check_health()
    # Queued behind the held workers, this call never starts: it is not counted and will not run later.
    assert client.post("/", json={"x": 3}).status_code == 504
    assert function._overrun.running == 2

    release.set()
    wait_until(lambda: function._overrun.running == 0)
    function.check_health()
    assert client.post("/", json={"x": 4}).json() == 4


def test_a_timed_out_async_call_is_cancelled_and_holds_no_worker() -> None:
    function, shipper = replica(stuck_async, max_concurrency=2, timeout_s=0.1)
    client = TestClient(serve_like(function))
    assert [client.post("/", json={"x": x}).status_code for x in (1, 2)] == [504, 504]
    function.check_health()
    assert not any("still running" in line for line in shipper.recorded)


def test_a_call_that_returns_before_its_caller_gives_up_is_never_counted() -> None:
    overrun = OverrunCalls(1)
    run, ticket = overrun.track(lambda: 7)
    assert run() == 7
    assert overrun.abandon(ticket) == 0  # finished just as its caller timed out
    overrun.check("add")


@pytest.mark.parametrize(("workers", "limit"), [(1, 1), (4, 4), (10, 9), (64, 58)])
def test_the_health_check_fails_from_ninety_percent_of_the_workers(workers: int, limit: int) -> None:
    assert OverrunCalls(workers).limit == limit
