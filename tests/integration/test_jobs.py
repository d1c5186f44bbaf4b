"""Jobs, schedules and streaming on a real cluster: a job accepted with 202 and its result, retries then a dead
letter then a re-drive, a signed webhook verified by the SDK's helper, cancellation, a job that survives its
replica's and its runner's death, a Period schedule that fires and stops when paused, and streamed chunks over
SSE, JSON lines and handles, each arriving before the stream ends."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Platform, wait_for

import fn

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).parent / "projects" / "jobs"


@pytest.fixture(scope="module")
def jobs(platform: Platform) -> Platform:
    job = platform.deploy(PROJECT)
    assert job["exit_code"] == 0 and job["state"] == "succeeded", job["output"]
    return platform


def _ended(client: httpx.Client, job_id: str, wait: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + wait
    while True:
        state: dict[str, Any] = client.get(f"/jobs/{job_id}", params={"wait": 20}).json()
        if state["status"] in {"succeeded", "failed", "cancelled"} or time.monotonic() > deadline:
            return state


def test_a_job_is_accepted_at_once_and_its_result_kept(jobs: Platform) -> None:
    with jobs.client() as client:
        accepted = client.post("/jobs/echo", json={"x": 41})
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        assert body["status"] in {"queued", "running", "succeeded"} and accepted.headers["location"] == f"/jobs/{body['id']}"
        state = _ended(client, body["id"])
        assert state["status"] == "succeeded" and state["result"] == 41 and state["attempts"] == 1, state
        # a retried POST with the same Idempotency-Key gets the same job, not a second one
        first = client.post("/jobs/echo", json={"x": 1}, headers={"Idempotency-Key": "k-1"})
        again = client.post("/jobs/echo", json={"x": 2}, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 202 and again.status_code == 200 and again.json()["id"] == first.json()["id"]
        # bad input: a clear 4xx, nothing queued
        assert client.post("/jobs/echo", content=b"[1, 2]", headers={"content-type": "application/json"}).status_code == 400
        assert client.post("/jobs/no-such-function", json={}).status_code == 404
        assert client.post("/jobs/echo?retries=1000", json={}).status_code == 400
        assert client.get("/jobs/job-doesnotexist").status_code == 404
        bad_hook = client.post("/jobs/echo", json={}, params={"callback_url": "http://169.254.169.254/latest/meta-data"})
        assert bad_hook.status_code == 400 and "metadata" in bad_hook.text, bad_hook.text
    # the SDK: spawn, spawn_map, Job.from_id
    job = fn.spawn("echo", x=7)
    assert job.result(timeout=60) == 7
    assert fn.Job.from_id(job.id).status() == "succeeded"
    many = fn.spawn_map("echo", [{"x": i} for i in range(20)])
    assert [j.result(timeout=120) for j in many] == list(range(20))


def test_retries_then_a_dead_letter_then_a_redrive(jobs: Platform) -> None:
    recovered = fn.spawn("flaky", key=f"k{time.time_ns()}", fail_times=2)
    assert recovered.result(timeout=60) == {"attempt": 3}  # retries=2: the third attempt succeeds
    dead = fn.spawn("always-fails", reason="broken input")
    with pytest.raises(fn.RemoteError, match="broken input") as caught:
        dead.result(timeout=60)
    assert caught.value.error_type == "ValueError"
    state = dead.refresh()
    assert state["status"] == "failed" and state["attempts"] == 2 and "fnctl jobs retry" in state["error"]["message"]
    listed = jobs.fnctl("jobs", "ls", "always-fails", "--failed", "--json")
    assert listed.exit_code == 0 and dead.id in listed.output, listed.output
    redriven = jobs.fnctl("jobs", "retry", dead.id)
    assert redriven.exit_code == 0, redriven.output
    again = fn.Job.from_id(dead.id)
    with pytest.raises(fn.RemoteError):
        again.result(timeout=60)
    assert again.state["attempts"] == 2  # the re-drive had all its attempts again


class _Receiver(BaseHTTPRequestHandler):
    got: list[tuple[bytes, str | None]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        type(self).got.append((body, self.headers.get("Fn-Signature")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[bytes, str | None]]]]:
    _Receiver.got = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver.got
    finally:
        server.shutdown()


def test_a_jobs_end_is_posted_to_its_webhook_signed(jobs: Platform, receiver: tuple[str, list[Any]]) -> None:
    url, got = receiver
    job = fn.ref("echo", callback_url=url).spawn(x=5)
    assert job.result(timeout=60) == 5
    wait_for(lambda: got, timeout=30)
    body, header = got[0]
    with jobs.client() as client:
        secret = httpx.get(f"{jobs.api_url}/v1/webhook-secret", headers=client.headers).json()["secret"]
    delivered = fn.verify_webhook(body, header, secret)
    assert delivered["id"] == job.id and delivered["status"] == "succeeded" and delivered["result"] == 5
    with pytest.raises(fn.WebhookError):
        fn.verify_webhook(body.replace(b"5", b"6"), header, secret)  # a tampered body is refused
    assert wait_for(lambda: fn.Job.from_id(job.id).state["webhook"]["status"] == "delivered", timeout=10)


def test_a_running_job_is_cancelled(jobs: Platform) -> None:
    job = fn.spawn("slow", seconds=60)
    wait_for(lambda: job.status() == "running", timeout=60)
    job.cancel()
    assert wait_for(lambda: job.status() == "cancelled", timeout=15)
    with pytest.raises(fn.Conflict):
        job.result(timeout=5)


def test_a_job_survives_its_replicas_death_and_its_runners(jobs: Platform) -> None:
    import ray

    from fnplatform.jobs.runner import NAMESPACE, RUNNER_NAME

    key = f"kill{time.time_ns()}"
    marks = jobs.home / "job-marks" / f"slow-{key}"
    job = fn.spawn("slow", seconds=3, key=key)
    pid = int(wait_for(lambda: marks.exists() and marks.read_text(), timeout=60))
    os.kill(pid, signal.SIGKILL)  # the replica running it dies mid-call
    assert job.result(timeout=120) == 3
    assert job.state["attempts"] == 1  # the platform's failure did not use up the job's attempts
    second = fn.spawn("slow", seconds=2)
    wait_for(lambda: second.status() == "running", timeout=60)
    ray.kill(ray.get_actor(RUNNER_NAME, namespace=NAMESPACE), no_restart=False)  # Ray restarts the runner
    assert second.result(timeout=120) == 2


def test_a_period_schedule_fires_each_tick_and_stops_when_paused(jobs: Platform) -> None:
    ticks = jobs.home / "job-marks" / "ticks"
    assert wait_for(lambda: ticks.exists() and len(ticks.read_text().split()) >= 3, timeout=60)
    listed = jobs.fnctl("schedules", "ls", "--json")
    assert listed.exit_code == 0 and "every 2 s" in listed.output, listed.output
    assert jobs.fnctl("schedules", "pause", "ticker").exit_code == 0
    time.sleep(1.5)  # a tick being fired as the pause landed
    paused_at = len(ticks.read_text().split())
    time.sleep(4.5)  # two ticks' time
    assert len(ticks.read_text().split()) == paused_at  # no tick while paused
    history = json.loads(jobs.fnctl("schedules", "history", "ticker", "--limit", "1000", "--json").output)
    runs = history["runs"]
    assert history["paused"] and runs and all(r["status"] == "succeeded" for r in runs), runs
    # one job per tick, never two: ticks created about 2 s apart (the first ones may have waited together for the
    # replica's cold start). Each ran at least once: a job whose runner was killed mid-run (the test above) runs again.
    assert len({r["job"] for r in runs}) == len(runs) <= paused_at, (runs, paused_at)
    created = sorted(r["created"] for r in runs)
    assert len(set(created)) == len(created)
    assert jobs.fnctl("schedules", "resume", "ticker").exit_code == 0
    assert wait_for(lambda: len(ticks.read_text().split()) > paused_at, timeout=30)
    jobs.fnctl("schedules", "pause", "ticker")


def test_chunks_stream_as_they_are_produced(jobs: Platform) -> None:
    with jobs.client() as client:
        started = time.monotonic()
        arrivals = []
        with client.stream("POST", "/tokens", json={"n": 5, "pause_s": 0.4}) as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
            for line in response.iter_lines():
                if line:
                    arrivals.append((time.monotonic() - started, json.loads(line)))
        assert [chunk for _, chunk in arrivals] == [{"i": i} for i in range(5)]
        total = time.monotonic() - started
        assert arrivals[0][0] < total - 1.0, arrivals  # the first chunk came ~1.6 s before the last
        events = []
        with client.stream("POST", "/atokens", json={"n": 3}, headers={"accept": "text/event-stream"}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = [line for line in response.iter_lines() if line]
        assert events == ['data: "token-0"', 'data: "token-1"', 'data: "token-2"', "event: end", "data: {}"], events
        with client.stream("POST", "/atokens", json={"n": 3, "fail_at": 1}) as response:
            lines = [json.loads(line) for line in response.iter_lines() if line]
        assert lines[0] == "token-0" and lines[-1]["error"]["type"] == "KeyError", lines
        assert client.post("/tokens", json={"n": "many"}).status_code == 422  # before the first chunk: a plain error
    assert list(fn.stream("tokens", n=3, pause_s=0.01)) == [{"i": 0}, {"i": 1}, {"i": 2}]
    with pytest.raises(fn.RemoteError, match="fails on purpose"):
        list(fn.stream("atokens", n=3, fail_at=2))
    assert fn.call("tokens", n=2, pause_s=0) == [{"i": 0}, {"i": 1}]  # a plain call gets the chunks as a list
    printed = jobs.fnctl("invoke", "tokens", "-d", '{"n": 3, "pause_s": 0}', "--stream")
    assert printed.exit_code == 0 and printed.output.splitlines() == ['{"i": 0}', '{"i": 1}', '{"i": 2}'], printed.output


def test_a_stream_passed_between_functions_is_read_while_produced_with_bounded_lag(jobs: Platform) -> None:
    from fnplatform.serving.streams import BATCH, CAPACITY

    key = f"s{time.time_ns()}"
    answer = fn.call("sum-of-numbers", n=400, key=key)
    assert answer["total"] == sum(range(400)) and answer["read"] == 400, answer
    # back-pressure: the producer never ran more than the broker's queue and one batch ahead of the slow reader
    assert 0 < answer["max_lag"] <= CAPACITY + BATCH + 2, answer
    # a reader that stops early stops the producer: it does not run on to the end
    stopped = fn.call("sum-of-numbers", n=100_000, key=f"{key}-stop", stop_after=5)
    assert stopped["read"] == 5
    progress = jobs.home / "job-marks" / f"numbers-{key}-stop"
    time.sleep(2)
    assert int(progress.read_text()) < 5 + CAPACITY + BATCH + 2


def test_the_streaming_example_embeds_sentences_as_they_stream(jobs: Platform) -> None:
    job = jobs.deploy(Path(__file__).resolve().parents[2] / "functions" / "examples" / "streaming")
    assert job["exit_code"] == 0, job["output"]
    text = "One sentence. Another one! A third? And a fourth."
    chunks = list(fn.stream("embed-text", text=text, dims=8))
    assert [c["sentence"] for c in chunks] == ["One sentence.", "Another one!", "A third?", "And a fourth."]
    assert all(len(c["vector"]) == 8 and abs(sum(v * v for v in c["vector"]) - 1) < 1e-3 for c in chunks)
    with pytest.raises(fn.ValidationFailed):
        list(fn.stream("embed-text", dims=8))  # a missing argument: the stream's own error, before any chunk
