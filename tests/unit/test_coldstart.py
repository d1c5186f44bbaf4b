"""A call that waited for its replica says why: phases that add up to the wait, in its header, its log line and
``fn_cold_start_seconds``; a warm call carries nothing. The replica runs in-process (no Ray); Serve's proxy
stamp runs as the ASGI middleware Serve loads."""

from __future__ import annotations

import asyncio
import os
import time
import warnings
from typing import Any

import pytest

from fnplatform.serving import coldstart
from fnplatform.serving.arrival import StampArrival, middlewares
from fnplatform.serving.coldstart import PHASES, ColdStarts, ReplicaStart, parse_arrived, parse_breakdown
from fnplatform.serving.metrics import Recorder

from .test_replica import AUTH, add, replica, serve_like

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient


def a_start(at: float) -> ReplicaStart:
    """A replica asked for at *at*, its process up 0.2 s later, then 0.1 s per step until ready."""
    return ReplicaStart(scheduled=at, process=at + 0.2, init=at + 0.3, fetched=at + 0.4, imported=at + 0.5,
                        set_up=at + 0.6, ready=at + 0.65)


def test_the_phases_follow_one_another_and_add_up_to_the_wait() -> None:
    start = a_start(1000.0)
    cold = start.breakdown(arrived=999.5, routed=1001.0)
    assert list(cold.phases) == list(PHASES)
    assert cold.phases["scale"] == pytest.approx(0.5) and cold.phases["place"] == pytest.approx(0.2)
    assert cold.phases["route"] == pytest.approx(0.4)  # set up at 1000.6, reached the replica at 1001.0
    assert cold.total == pytest.approx(1.5)  # routed - arrived, exactly


def test_a_call_that_arrived_while_the_replica_was_starting_counts_from_its_arrival() -> None:
    cold = a_start(1000.0).breakdown(arrived=1000.35, routed=1000.8)
    assert cold.total == pytest.approx(0.45)
    assert cold.phases["scale"] == cold.phases["place"] == cold.phases["start"] == 0.0
    assert cold.phases["fetch"] == pytest.approx(0.05)  # the part of the fetch it waited for


def test_an_unknown_or_out_of_order_moment_gives_its_time_to_the_next_phase() -> None:
    start = a_start(1000.0)
    start.scheduled = None  # the controller did not answer
    start.process = 990.0  # a worker Ray had started long before
    cold = start.breakdown(arrived=999.0, routed=1001.0)
    assert cold.phases["scale"] == 0.0 and cold.phases["place"] == 0.0
    assert cold.phases["start"] == pytest.approx(1.3)  # arrival to the constructor
    assert cold.total == pytest.approx(2.0)


def test_the_replicas_own_start_is_known_without_a_waiting_call() -> None:
    startup = a_start(1000.0).startup()
    assert list(startup.phases) == ["place", "start", "fetch", "import", "setup"]
    assert startup.total == pytest.approx(0.6)
    no_controller = ReplicaStart(process=None, init=5.0, fetched=6.0, imported=6.5, set_up=6.5)
    assert no_controller.startup().phases == {"place": 0.0, "start": 0.0, "fetch": 1.0, "import": 0.5, "setup": 0.0}


def test_the_header_text_reads_back_and_other_text_does_not() -> None:
    cold = a_start(1000.0).breakdown(arrived=999.5, routed=1001.0)
    assert cold.header().startswith("total=1.50, scale=0.50, place=0.20, start=0.10, fetch=0.10")
    assert parse_breakdown(cold.header()) == pytest.approx({"total": 1.5, **cold.phases}, abs=0.005)
    for text in ("", "total=x", "warmth=1.0", "total=1.0, cold", "it was a cold start: 5 s"):
        assert parse_breakdown(text) == {}


@pytest.mark.parametrize("value", [None, "", "abc", "-5", "1.5", "9" * 17])
def test_an_arrival_stamp_that_is_not_milliseconds_is_ignored(value: str | None) -> None:
    assert parse_arrived(value, 1000.0) is None


def test_an_arrival_stamp_far_in_the_past_or_in_the_future_is_not_believed() -> None:
    now = 1_800_000_000.0
    assert parse_arrived(str(int((now - 2) * 1000)), now) == pytest.approx(now - 2)
    assert parse_arrived(str(int((now - coldstart.MAX_WAIT_S - 5) * 1000)), now) is None
    assert parse_arrived(str(int((now + 60) * 1000)), now) is None


def test_this_process_started_before_now_according_to_proc() -> None:
    started = coldstart.process_started_at()
    assert started is not None and started <= time.time()
    assert time.time() - started < 24 * 3600  # a test process, not the machine's boot


class Lines:
    """Stands in for the replica's log shipper: keeps the text of each line."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, level: str, text: str, request_id: str | None = None) -> None:
        self.lines.append(text)

    def stop(self) -> None:
        pass


def stamp(at: float) -> dict[str, str]:
    return {coldstart.ARRIVED_HEADER: str(int(at * 1000))}


def cold_replica(arrived_before_ready_s: float) -> tuple[Any, Recorder, list[str], float]:
    target = replica(add)
    now = time.time()
    start = a_start(now - 1.0)  # ready at now - 0.35
    recorder = Recorder()
    shipper: Any = Lines()
    target._cold = ColdStarts("add", start, recorder, shipper)
    target._shipper = shipper
    return target, recorder, shipper.lines, start.ready - arrived_before_ready_s  # type: ignore[operator]


def test_a_call_that_waited_carries_its_breakdown_in_its_header_log_line_and_metric() -> None:
    target, recorder, lines, arrived = cold_replica(arrived_before_ready_s=0.5)
    web = TestClient(serve_like(target))
    first = web.post("/", json={"a": 1}, headers={**AUTH, **stamp(arrived)})
    assert first.status_code == 200 and first.json() == 11
    phases = parse_breakdown(first.headers["fn-cold-start"])
    assert list(phases) == ["total", *PHASES]
    assert sum(v for k, v in phases.items() if k != "total") == pytest.approx(phases["total"], abs=0.02)
    assert phases["total"] == pytest.approx(time.time() - arrived, abs=0.5)
    assert any(f"cold start: {first.headers['fn-cold-start']}" in line for line in lines)
    second = web.post("/", json={"a": 2}, headers={**AUTH, **stamp(arrived + 0.1)})  # it waited too
    assert "fn-cold-start" in second.headers
    histograms = recorder.drain().histograms
    # one sample per phase for the replica's start, however many calls waited for it
    assert {labels[1] for (name, labels) in histograms if name == coldstart.METRIC} == {"scale", "route", "total"}
    assert all(sum(counts[:-1]) == 1 for (name, _), counts in histograms.items() if name == coldstart.METRIC)


def test_a_warm_call_carries_no_breakdown() -> None:
    target, _, lines, _ = cold_replica(arrived_before_ready_s=0.5)
    web = TestClient(serve_like(target))
    warm = web.post("/", json={"a": 1}, headers={**AUTH, **stamp(time.time())})  # arrived after the replica was ready
    unstamped = web.post("/", json={"a": 1}, headers=AUTH)  # a handle call or another ingress: nothing known
    assert "fn-cold-start" not in warm.headers and "fn-cold-start" not in unstamped.headers
    assert not any("cold start:" in line for line in lines)


def test_the_startup_phases_are_recorded_once_when_the_controller_answers() -> None:
    recorder, shipper = Recorder(), Lines()
    lines = shipper.lines
    start = a_start(1000.0)
    start.scheduled = None
    cold = ColdStarts("add", start, recorder, shipper)  # type: ignore[arg-type]
    cold.learn_schedule(lambda: 999.0)
    assert cold._scheduled_known.wait(5)
    deadline = time.monotonic() + 5
    while not lines and time.monotonic() < deadline:
        time.sleep(0.01)
    assert start.scheduled == 999.0
    assert lines == ["replica started: place=1.20, start=0.10, fetch=0.10, import=0.10, setup=0.10"]
    phases = {labels[1] for (name, labels) in recorder.drain().histograms if name == coldstart.METRIC}
    assert phases == {"place", "start", "fetch", "import", "setup"}


def test_a_controller_that_fails_leaves_the_phases_from_the_process_start() -> None:
    def refuses() -> float:
        raise RuntimeError("controller gone")

    recorder, shipper = Recorder(), Lines()
    lines = shipper.lines
    cold = ColdStarts("add", a_start(1000.0), recorder, shipper)  # type: ignore[arg-type]
    cold.learn_schedule(refuses)
    assert cold._scheduled_known.wait(5)
    assert cold.start.scheduled is None
    deadline = time.monotonic() + 5
    while not lines and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lines == ["replica started: place=0.00, start=0.10, fetch=0.10, import=0.10, setup=0.10"]  # from the process


async def _stamped(middleware: StampArrival, headers: list[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    seen: dict[bytes, list[bytes]] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        for name, value in scope["headers"]:
            seen.setdefault(name, []).append(value)

    middleware.app = app
    await middleware({"type": "http", "headers": headers}, None, None)
    return seen


def test_serves_proxy_stamps_the_arrival_and_keeps_haproxys_earlier_stamp_only_behind_haproxy() -> None:
    forged = [(b"fn-arrived", b"1000")]
    before = int(time.time() * 1000)
    own = asyncio.run(_stamped(StampArrival(lambda *a: None, keep_ingress_stamp=False), forged))[b"fn-arrived"]
    assert len(own) == 1 and before <= int(own[0]) <= int(time.time() * 1000)
    kept = asyncio.run(_stamped(StampArrival(lambda *a: None, keep_ingress_stamp=True), forged))[b"fn-arrived"]
    assert kept == [b"1000"]
    unstamped = asyncio.run(_stamped(StampArrival(lambda *a: None, keep_ingress_stamp=True), []))[b"fn-arrived"]
    assert len(unstamped) == 1 and int(unstamped[0]) >= before


def test_the_proxy_hook_returns_starlette_middleware_as_serve_requires(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.serve._private.http_util import validate_http_proxy_callback_return

    monkeypatch.setitem(os.environ, "RAY_SERVE_ENABLE_HA_PROXY", "1")
    assert len(validate_http_proxy_callback_return(middlewares())) == 1
