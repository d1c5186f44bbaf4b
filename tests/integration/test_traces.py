"""Traces through the real platform: a chain of handle hops under the caller's own trace (W3C traceparent in and
out), and a flow run with its steps and their functions under one trace id, read back by ``fnctl trace``."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from harness import Platform, wait_for

import fn
from fnplatform.serving.tracing import parse_traceparent, trace_of

EXAMPLES = Path(__file__).resolve().parents[2] / "functions" / "examples"


@pytest.fixture(scope="module")
def traced(platform: Platform) -> Platform:
    for project in ("pipeline", "flow"):
        job = platform.deploy(EXAMPLES / project)
        assert job["exit_code"] == 0, job["output"]
    return platform


def stored_trace(platform: Platform, ident: str, done: Any) -> list[dict[str, Any]]:
    """The trace's spans once *done* says all have arrived (each process ships its own, a second or so apart)."""
    found: list[Any] = []

    def arrived() -> bool:
        with platform.client() as client:  # the platform's admin key: a trace is read with a deploy or admin key
            response = client.get(f"{platform.api_url}/v1/traces/{ident}")
        found.append(response.json())
        return response.status_code == 200 and bool(done(found[-1]["spans"]))

    try:
        wait_for(arrived, timeout=40, interval=0.5)
    except AssertionError:
        raise AssertionError(f"trace {ident}: not all spans arrived; the last answer: {found[-1:]}") from None
    spans: list[dict[str, Any]] = found[-1]["spans"]
    return spans


def test_a_chain_of_hops_is_one_trace_under_the_callers_traceparent(traced: Platform) -> None:
    caller_trace, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    with traced.client() as client:
        response = client.post("/analyze", json={"text": "Great service, thanks!"},
                               headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"})
    assert response.status_code == 200, response.text
    assert response.headers.get_list("x-request-id")[0] == caller_trace  # the trace id is the request id
    answered = parse_traceparent(response.headers["traceparent"])
    assert answered is not None and answered[0] == caller_trace

    names = {"analyze", "preprocess", "detect", "classify"}
    spans = stored_trace(traced, caller_trace, lambda spans: names <= {s["name"] for s in spans})
    by_id = {span["span"]: span for span in spans}
    assert {span["trace"] for span in spans} == {caller_trace}
    edge = by_id[answered[1]]
    assert (edge["name"], edge["parent"], edge["source"]) == ("POST /analyze", caller_span, "analyze")
    (analyze,) = [span for span in spans if span["name"] == "analyze"]
    assert analyze["parent"] == edge["span"]
    for callee in ("preprocess", "detect", "classify"):  # each hop: the caller's client span, the callee's under it
        (hop,) = [span for span in spans if span["name"] == f"call {callee}"]
        (served,) = [span for span in spans if span["name"] == callee]
        assert (hop["parent"], hop["source"], hop["kind"]) == (analyze["span"], "analyze", "client")
        assert (served["parent"], served["source"]) == (hop["span"], callee)

    tree = traced.fnctl("trace", caller_trace).output.splitlines()
    assert tree[0] == f"trace {caller_trace}"
    assert any(line.startswith("POST /analyze") for line in tree)
    assert any(line.startswith("      preprocess ") for line in tree), tree  # edge > analyze > call > preprocess
    # one id finds everything: the callee's own log lines carry the trace id as their request id
    wait_for(lambda: f"request={caller_trace}" in traced.fnctl("logs", "classify", "--request-id", caller_trace).output,
             timeout=20)


def test_a_flow_run_with_its_steps_and_their_functions_is_one_trace(traced: Platform) -> None:
    run = fn.flows.start("documents")
    for name in ("front", "back", "selfie"):
        run.put(name, f"{name} of the traced run".encode())
    assert run.result(timeout=60)["decision"] == "approve"
    status = run.status()
    assert status["trace_id"] == trace_of(run.id)

    steps = {"measure-front", "measure-back", "compare", "decide"}

    def complete(spans: list[dict[str, Any]]) -> bool:
        return (any(s["name"] == "flow documents" for s in spans)
                and len([s for s in spans if not s["source"].startswith("flow:")]) >= len(steps))

    spans = stored_trace(traced, run.id, complete)  # the run's id names its trace
    assert {span["trace"] for span in spans} == {status["trace_id"]}
    (root,) = [span for span in spans if span["parent"] is None]
    assert (root["name"], root["source"], root["status"]) == ("flow documents", "flow:documents", "ok")
    attempts = {span["span"]: span for span in spans if span["parent"] == root["span"]}
    assert {span["attrs"]["fn.step"] for span in attempts.values()} == steps
    served = [span for span in spans if not span["source"].startswith("flow:")]
    assert {span["parent"] for span in served} <= set(attempts)  # each function's span under its step's attempt
    assert {attempts[span["parent"]]["attrs"]["fn.function"] for span in served} == {span["source"] for span in served}
    assert all(root["start"] <= span["start"] <= span["end"] <= root["end"] + 0.01 for span in attempts.values())
    shown = traced.fnctl("flow", "status", "documents", run.id).output
    assert status["trace_id"] in shown
    as_json = json.loads(traced.fnctl("trace", status["trace_id"], "--json").output)
    assert len(as_json["spans"]) >= len(spans)
