"""The chaos suite's load (bench/_chaos_load.py) against a tiny real HTTP server standing in for the function
endpoints and the flows API: every caller sends, outcomes are classified, and each run is followed to its end.
The real platform under faults: tests/e2e/test_chaos.py."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fnplatform.serving.http import error_response

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
# bench/ is not a package: its folder goes on the path first
from _chaos_load import Load, Rates
from _chaos_outcomes import CLEAN, HUNG, OK, OTHER, FaultRow, fill


def _app() -> Starlette:
    runs: dict[str, dict[str, Any]] = {}
    calls = {"echo": 0}

    async def echo(request: Request) -> Response:
        calls["echo"] += 1
        if calls["echo"] % 5 == 0:  # at capacity now and then: fn's clean 503
            return error_response(503, "Unavailable", "echo is at capacity", "r1", retry_after=0)
        return JSONResponse(json.loads(await request.body())["x"])

    async def slow_add(request: Request) -> Response:
        await asyncio.sleep(0.05)
        body = json.loads(await request.body())
        return JSONResponse(body["a"] + body["b"])

    async def start(request: Request) -> Response:
        run_id = uuid.uuid4().hex
        runs[run_id] = {}
        return JSONResponse({"id": run_id, "status": "pending"}, status_code=201)

    async def put(request: Request) -> Response:
        body = await request.body()
        is_json = request.headers["content-type"] == "application/json"
        runs[request.path_params["run"]][request.path_params["name"]] = json.loads(body) if is_json else body
        return JSONResponse({"status": "running"}, status_code=202)

    async def state(request: Request) -> Response:
        given = runs[request.path_params["run"]]
        if {"x", "pad"} <= set(given):
            return JSONResponse({"status": "succeeded", "output": 2 * given["x"] + len(given["pad"])})
        return JSONResponse({"status": "running"})

    flows = "/flows/chaos-flow/runs"
    return Starlette(routes=[Route("/echo", echo, methods=["POST"]), Route("/slow-add", slow_add, methods=["POST"]),
                             Route(flows, start, methods=["POST"]),
                             Route(flows + "/{run}/inputs/{name}", put, methods=["PUT"]),
                             Route(flows + "/{run}", state, methods=["GET"])])


@pytest.fixture
def endpoints(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from fn import _client

    server = uvicorn.Server(uvicorn.Config(_app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                                           ws="none", http="h11"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the fake endpoints did not start"
        time.sleep(0.01)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    for name, value in {"FN_API_URL": url, "FN_API_KEY": "k" * 32, "FN_HTTP_URL": url}.items():
        monkeypatch.setenv(name, value)  # the SDK callers find it as a user's shell would
    yield url
    server.should_exit = True
    thread.join(10)
    with _client._lock:
        for client in _client._sync_clients.values():
            client.close()
        _client._sync_clients.clear()


@pytest.mark.timeout(60)
def test_every_caller_sends_and_every_run_is_followed_to_its_right_output(endpoints: str) -> None:
    load = Load(endpoints, "k" * 32, hang_s=5, rates=Rates(flow_runs=2))
    begin = time.monotonic()
    load.start()
    time.sleep(3)
    end = time.monotonic()
    load.stop()
    load.drain(10)
    row = FaultRow("none", start=begin, end=end)
    fill(row, load.outcomes, load.runs)
    assert set(row.by_caller) == {"http echo", "http slow-add", "sdk echo", "sdk slow-add", "flow start", "flow put"}
    assert row.requests[OK] > 30 and row.requests[OTHER] == row.requests[HUNG] == 0, row.examples
    assert row.by_caller["http echo"][CLEAN] > 0  # the 503s, as sent; the SDK retries them (FN_RETRY_S)
    assert row.flows["runs"] >= 3 and row.flows["right"] == row.flows["runs"], load.runs
