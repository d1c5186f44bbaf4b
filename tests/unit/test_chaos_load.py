"""The chaos suite's load (bench/_chaos_load.py) against a tiny real HTTP server standing in for the function
endpoints, the flows API and the jobs API: every caller sends, outcomes are classified, each run and each job
is followed to its end, and a job's POST whose answer was lost is sent again under the same Idempotency-Key.
The real platform under faults: tests/e2e/test_chaos.py."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from fnplatform.serving.http import error_response

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
# bench/ is not a package: its folder goes on the path first
from _chaos_load import Load, Rates
from _chaos_outcomes import CLEAN, HUNG, OK, OTHER, REFUSED, FaultRow, JobRecord, fill
from _procs import free_port


@dataclass
class Endpoints:
    url: str
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # the jobs the fake wrote down, by id
    posts: Counter[str] = field(default_factory=Counter)  # POST /jobs/slow-add by Idempotency-Key


def _cut() -> Response:
    """The status line sent, then the connection closed mid-body: the caller cannot tell what happened."""
    async def body() -> AsyncIterator[bytes]:
        yield b'{"id": '
        raise ConnectionResetError("the replica died after writing the job down")
    return StreamingResponse(body(), status_code=202, media_type="application/json")


def _jobs_routes(fake: Endpoints) -> list[Route]:
    """POST /jobs/slow-add as the jobs gateway answers it: the first POST of every third key is written down and
    its answer cut off, the first of another third is refused with fn's 503 before anything is written."""
    async def spawn(request: Request) -> Response:
        key = request.headers["idempotency-key"]
        fake.posts[key] += 1
        job_id = f"job-{key}"
        if job_id in fake.jobs:  # a POST sent again: the job the first one made, with 200
            return JSONResponse(_state(fake.jobs[job_id]), status_code=200)
        if fake.posts[key] == 1 and len(fake.posts) % 3 == 1:
            return error_response(503, "Unavailable", "the jobs database is locked", "r2", retry_after=0)
        body = json.loads(await request.body())
        fake.jobs[job_id] = {"id": job_id, "result": body["a"] + body["b"], "ends": time.monotonic() + 0.3}
        return _cut() if len(fake.posts) % 3 == 2 else JSONResponse(_state(fake.jobs[job_id]), status_code=202)

    async def state(request: Request) -> Response:
        job = fake.jobs.get(request.path_params["job"])
        if job is None:
            return error_response(404, "NotFound", "no job", "r3")
        deadline = time.monotonic() + float(request.query_params.get("wait", "0"))
        while time.monotonic() < min(deadline, job["ends"]):
            await asyncio.sleep(0.02)
        return JSONResponse(_state(job))

    return [Route("/jobs/slow-add", spawn, methods=["POST"]), Route("/jobs/{job}", state, methods=["GET"])]


def _state(job: dict[str, Any]) -> dict[str, Any]:
    if time.monotonic() < job["ends"]:
        return {"id": job["id"], "function": "slow-add", "status": "queued", "attempts": 0}
    return {"id": job["id"], "function": "slow-add", "status": "succeeded", "attempts": 2, "result": job["result"]}


def _app(fake: Endpoints) -> Starlette:
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
                             Route(flows + "/{run}", state, methods=["GET"]), *_jobs_routes(fake)])


@pytest.fixture
def endpoints(monkeypatch: pytest.MonkeyPatch) -> Iterator[Endpoints]:
    from fn import _client

    fake = Endpoints("")
    # log_level critical: the cut answers end in an exception the server would log
    server = uvicorn.Server(uvicorn.Config(_app(fake), host="127.0.0.1", port=0, log_level="critical", lifespan="off",
                                           ws="none", http="h11"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the fake endpoints did not start"
        time.sleep(0.01)
    url = fake.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    for name, value in {"FN_API_URL": url, "FN_API_KEY": "k" * 32, "FN_HTTP_URL": url}.items():
        monkeypatch.setenv(name, value)  # the SDK callers find it as a user's shell would
    yield fake
    server.should_exit = True
    thread.join(10)
    with _client._lock:
        for client in _client._sync_clients.values():
            client.close()
        _client._sync_clients.clear()


@pytest.mark.timeout(60)
def test_every_caller_sends_and_every_run_and_job_is_followed_to_its_right_output(endpoints: Endpoints) -> None:
    load = Load(endpoints.url, "k" * 32, hang_s=5, rates=Rates(flow_runs=2, jobs=3))
    begin = time.monotonic()
    load.start()
    time.sleep(3)
    end = time.monotonic()
    load.stop()
    load.drain(10)
    row = FaultRow("none", start=begin, end=end)
    fill(row, load.outcomes, load.runs, load.jobs)
    assert set(row.by_caller) == {"http echo", "http slow-add", "sdk echo", "sdk slow-add", "flow start", "flow put",
                                  "job spawn"}
    assert row.requests[OK] > 30 and row.requests[OTHER] == row.requests[HUNG] == 0, row.examples
    assert row.by_caller["http echo"][CLEAN] > 0  # the 503s, as sent; the SDK retries them (FN_RETRY_S)
    assert row.flows["runs"] >= 3 and row.flows["right"] == row.flows["runs"], load.runs
    # Every spawn is one outcome, accepted in the end: the 503s and the cut answers were sent again.
    assert row.by_caller["job spawn"]["sent"] == row.by_caller["job spawn"][OK] >= 3, row.examples
    assert row.jobs["accepted"] >= 3 and row.jobs["right"] == row.jobs["accepted"], load.jobs
    assert all(job.attempts == 2 for job in load.jobs)  # as the platform said: it ran each twice


@pytest.mark.timeout(60)
def test_a_job_whose_answer_was_cut_off_is_asked_for_again_under_its_key_and_never_spawned_twice(
        endpoints: Endpoints) -> None:
    load = Load(endpoints.url, "k" * 32, hang_s=5)
    jobs = [load.new_job(n) for n in range(6)]
    for job in jobs:
        assert job is not None
        load.follow_job(job)
    load.follow_job(JobRecord("job-never-accepted", time.monotonic(), 0))  # 404 on every poll: lost in the end
    load.drain(5)
    # Keys 1 and 4 were refused (503) once, keys 2 and 5 written down and cut off: each sent twice, one job each.
    assert sorted(endpoints.posts.values()) == [1, 1, 2, 2, 2, 2]
    assert sorted(endpoints.jobs) == sorted(job.job_id for job in jobs if job is not None)
    assert [job.verdict for job in load.jobs] == ["right"] * 6 + ["lost"]
    assert [job.result for job in load.jobs[:6]] == [n + 5 for n in range(6)]
    assert [o.kind for o in load.outcomes] == [OK] * 6 and {o.caller for o in load.outcomes} == {"job spawn"}


@pytest.mark.timeout(30)
def test_a_job_spawn_that_is_never_answered_is_sent_again_until_hang_s_and_recorded_once() -> None:
    load = Load(f"http://127.0.0.1:{free_port()}", "k" * 32, hang_s=2)
    begin = time.monotonic()
    assert load.new_job(1) is None
    assert 1.5 <= time.monotonic() - begin < 4
    load.drain(0)
    [outcome] = load.outcomes
    assert (outcome.caller, outcome.kind) == ("job spawn", REFUSED), outcome
    assert "POSTs under one Idempotency-Key" in outcome.detail, outcome
    assert load.jobs == []
