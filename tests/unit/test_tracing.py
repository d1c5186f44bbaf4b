"""Traces in one process: W3C trace context in and out, the ids (trace id = request id), the spans a replica
records for an HTTP call, a cold call and a handle hop, and a flow run's spans. No Ray (the replica through
its seam; the hop through a stand-in for Serve's handle)."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest

import fn
from fnplatform.flows.run import FlowRun
from fnplatform.flows.state import FlowState
from fnplatform.logtext import parse_line
from fnplatform.serving import tracing
from fnplatform.serving.coldstart import Breakdown
from fnplatform.serving.handles import HandleTransport
from fnplatform.serving.logs import LogShipper
from fnplatform.serving.replica import _cold_spans

from .test_flow_run import LocalRuntime, documents_flow, give
from .test_flow_run import state as state  # a fixture
from .test_replica import AUTH, client, replica

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def shipped_spans(shipper: LogShipper) -> list[dict[str, Any]]:
    lines = [parse_line(line) for line in shipper._lines]
    return [span for line in lines if line.level == tracing.LEVEL for span in json.loads(line.text)]


@pytest.mark.parametrize("value", [
    None, "", "garbage", f"00-{CALLER_TRACE}-{CALLER_SPAN}",  # too few parts
    f"00-{CALLER_TRACE.upper()}-{CALLER_SPAN}-01",  # upper case is invalid
    f"00-{'0' * 32}-{CALLER_SPAN}-01", f"00-{CALLER_TRACE}-{'0' * 16}-01",  # all-zero ids
    f"ff-{CALLER_TRACE}-{CALLER_SPAN}-01",  # version ff is forbidden
    f"00-{CALLER_TRACE}-{CALLER_SPAN}-01-extra",  # version 00 has exactly four parts
])
def test_an_invalid_traceparent_is_ignored_not_an_error(value: str | None) -> None:
    assert tracing.parse_traceparent(value) is None


def test_a_valid_traceparent_gives_its_trace_and_parent_and_a_later_version_is_read_too() -> None:
    assert tracing.parse_traceparent(f"00-{CALLER_TRACE}-{CALLER_SPAN}-01") == (CALLER_TRACE, CALLER_SPAN, True)
    assert tracing.parse_traceparent(f"01-{CALLER_TRACE}-{CALLER_SPAN}-00-more") == (CALLER_TRACE, CALLER_SPAN, False)
    assert tracing.parse_traceparent(f"00-{CALLER_TRACE}-{CALLER_SPAN}-03") == (CALLER_TRACE, CALLER_SPAN, True)


def test_the_trace_id_of_a_request_id() -> None:
    assert tracing.trace_of(CALLER_TRACE) == CALLER_TRACE  # an id fn makes is a trace id as it stands
    assert tracing.trace_of("4BF92F35-77B3-4DA6-A3CE-929D0E0E4736") == CALLER_TRACE  # a UUID: its digits
    mapped = tracing.trace_of("order-17")
    assert re.fullmatch(r"[0-9a-f]{32}", mapped) and mapped == tracing.trace_of("order-17") != tracing.trace_of("order-18")
    assert tracing.trace_of("0" * 32) != "0" * 32  # the all-zero id is not a trace id
    assert re.fullmatch(r"[0-9a-f]{32}", tracing.new_trace_id()) and re.fullmatch(r"[0-9a-f]{16}", tracing.new_id())


def test_a_hop_token_carries_the_request_id_and_the_callers_span() -> None:
    trace = tracing.Trace(CALLER_TRACE)
    span = trace.begin("call b")
    token = tracing.hop_token("r-1", trace, span)
    assert tracing.from_hop(token) == ("r-1", (CALLER_TRACE, span.span, True))
    assert tracing.from_hop("r-1") == ("r-1", None)  # a caller without a trace
    assert tracing.from_hop("-") == (None, None)
    unrecorded = tracing.Trace(CALLER_TRACE, sampled=False)
    assert tracing.from_hop(tracing.hop_token("r-1", unrecorded, unrecorded.begin("x")))[1].sampled is False


def test_an_http_call_continues_the_callers_trace_and_answers_with_its_traceparent() -> None:
    app = client(plus)
    response = app.post("/", json={"a": 2, "b": 3},
                        headers={**AUTH, "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", "x-request-id": "mine"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == CALLER_TRACE  # the trace id is the request id
    answered = tracing.parse_traceparent(response.headers["traceparent"])
    assert answered is not None and answered[0] == CALLER_TRACE and answered[1] != CALLER_SPAN


def plus(a: int, b: int = 10) -> int:
    return a + b


def broken(a: int) -> int:
    raise RuntimeError("no")


def _call_and_spans(target: Any, body: dict[str, Any], headers: dict[str, str]) -> tuple[Any, list[dict[str, Any]]]:
    from starlette.testclient import TestClient

    from .test_gateway import serve_like

    the_replica = replica(target)
    response = TestClient(serve_like(the_replica)).post("/", json=body, headers={**AUTH, **headers})
    return response, shipped_spans(the_replica._shipper)


def test_an_http_call_records_an_edge_span_and_the_functions_span_under_it() -> None:
    response, spans = _call_and_spans(plus, {"a": 1}, {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"})
    edge, run = spans
    assert (edge["name"], edge["kind"], edge["parent"], edge["status"]) == ("POST /plus", "server", CALLER_SPAN, "ok")
    assert edge["attrs"]["http.status_code"] == 200 and edge["span"] == response.headers["traceparent"].split("-")[2]
    assert (run["name"], run["parent"], run["trace"]) == ("plus", edge["span"], CALLER_TRACE)
    assert edge["start"] <= run["start"] <= run["end"] <= edge["end"]


def test_a_call_without_a_traceparent_starts_a_trace_named_by_its_request_id() -> None:
    response, spans = _call_and_spans(plus, {"a": 1}, {"x-request-id": "9f3c8e1d-55aa-4e2b-8c11-0123456789ab"})
    assert response.headers["x-request-id"] == "9f3c8e1d55aa4e2b8c110123456789ab"  # a UUID as a trace id
    assert {span["trace"] for span in spans} == {"9f3c8e1d55aa4e2b8c110123456789ab"} and spans[0]["parent"] is None


def test_a_failing_function_marks_its_spans_as_errors_and_a_callers_mistake_does_not() -> None:
    _, spans = _call_and_spans(broken, {"a": 1}, {})
    assert [span["status"] for span in spans] == ["error", "error"]
    _, spans = _call_and_spans(plus, {"a": "not a number"}, {})
    assert spans[0]["attrs"]["http.status_code"] == 422 and [span["status"] for span in spans] == ["ok", "ok"]


def test_a_cold_start_is_a_span_with_a_child_per_phase_end_to_end() -> None:
    trace = tracing.Trace(CALLER_TRACE, "aaaaaaaaaaaaaaaa")
    cold = Breakdown({"scale": 0.5, "place": 0.0, "start": 0.1, "fetch": 0.02, "import": 0.03, "setup": 0.2, "route": 0.05})
    _cold_spans(trace, cold, 1000.0)
    parent, *phases = trace.spans
    assert parent.name == "cold start" and parent.parent == "aaaaaaaaaaaaaaaa"
    assert parent.end - parent.start == pytest.approx(cold.total)
    assert [p.name for p in phases] == list(cold.phases) and {p.parent for p in phases} == {parent.span}
    assert phases[0].start == parent.start and phases[-1].end == pytest.approx(parent.end)
    assert all(a.end == pytest.approx(b.start) for a, b in itertools.pairwise(phases))


class _Response:
    """Stands in for Serve's DeploymentResponse: a result, and attributes may be set on it."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self, timeout_s: float | None = None) -> Any:
        return self.value


class _Handle:
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def remote(self, token: str, **kwargs: Any) -> _Response:
        self.tokens.append(token)
        return _Response(kwargs["a"] * 2)


def test_a_handle_hop_is_a_client_span_of_the_callers_trace_and_the_callee_hangs_under_it() -> None:
    transport, handle = HandleTransport(), _Handle()
    transport._handles[("double", "call")] = handle
    trace = tracing.Trace(CALLER_TRACE, "bbbbbbbbbbbbbbbb")
    token = tracing.current.set(trace)
    try:
        assert transport.result(transport.submit("double", {"a": 4}), timeout=5) == 8
    finally:
        tracing.current.reset(token)
    (hop,) = trace.spans
    assert (hop.name, hop.kind, hop.parent, hop.error) == ("call double", "client", "bbbbbbbbbbbbbbbb", False)
    assert hop.end >= hop.start > 0
    assert tracing.from_hop(handle.tokens[0])[1] == (CALLER_TRACE, hop.span, True)


def test_the_callee_of_a_hop_records_its_span_under_the_callers() -> None:
    the_replica = replica(plus)
    token = tracing.hop_token("r-7", tracing.Trace(CALLER_TRACE), tracing.Span("call plus", CALLER_TRACE, CALLER_SPAN,
                                                                                 None, 1.0))
    assert asyncio.run(the_replica.call(token, a=1, b=2)) == 3
    (span,) = shipped_spans(the_replica._shipper)
    assert (span["name"], span["kind"], span["trace"], span["parent"]) == ("plus", "server", CALLER_TRACE, CALLER_SPAN)
    line = next(parse_line(raw) for raw in the_replica._shipper._lines if tracing.LEVEL in raw)
    assert line.request_id == CALLER_TRACE  # stored under the trace id, found by fnctl trace


def test_spans_of_a_damaged_line_are_none_not_an_error() -> None:
    assert tracing.spans_of_line("not json") == [] and tracing.spans_of_line('{"a": 1}') == []
    assert tracing.spans_of_line('[{"span": "x", "start": 1, "end": 2}, {"span": 3}]') == [{"span": "x", "start": 1, "end": 2}]


class _TracedRuntime(LocalRuntime):
    def __init__(self) -> None:
        super().__init__({"measure": lambda text: len(text), "decide": lambda a, b: {"total": a + b}})
        self.tokens: list[str] = []

    async def call(self, function: str, request_id: str, kwargs: dict[str, Any], version: int | None = None) -> Any:
        self.tokens.append(request_id)
        return await super().call(function, request_id, kwargs)


def test_a_flow_run_is_one_trace_its_steps_under_the_run_and_each_call_under_its_step(state: FlowState,
                                                                                       tmp_path: Path) -> None:
    shipped: list[tuple[str, tracing.Trace]] = []
    local = _TracedRuntime()
    run_id = state.create_run(documents_flow())
    run = FlowRun(run_id, {"kind": "local", "root": str(tmp_path / "store")}, runtime=local, database_url=state.url,
                  spans=lambda flow, trace: shipped.append((flow, trace)))
    give(state, run, "front", "abcd")
    assert give(state, run, "back", "xy")["status"] == "succeeded"
    spans = [span for flow, trace in shipped for span in trace.spans]
    assert {flow for flow, _ in shipped} == {"unit-docs"} and {s.trace for s in spans} == {tracing.trace_of(run_id)}
    (root,) = [s for s in spans if s.parent is None]
    steps = [s for s in spans if s.parent == root.span]
    assert root.name == "flow unit-docs" and root.attrs["fn.status"] == "succeeded"
    assert sorted(s.name for s in steps) == ["step decide", "step measure-back", "step measure-front"]
    assert all(root.start <= s.start <= s.end <= root.end for s in steps)
    # each step's call carries its request id (run:step, as in its log lines) and its step's span
    hops = dict(tracing.from_hop(token) for token in local.tokens)
    assert set(hops) == {f"{run_id}:measure-front", f"{run_id}:measure-back", f"{run_id}:decide"}
    assert {hop.span for hop in hops.values() if hop is not None} == {s.span for s in steps}
    assert run.snapshot()["trace_id"] == tracing.trace_of(run_id)


@pytest.mark.parametrize("raw", ["-0.1", "1.5", "half", "nan", "inf"])
def test_a_bad_sample_share_is_refused_naming_the_variable_and_the_range(raw: str) -> None:
    with pytest.raises(ValueError, match=r"FN_TRACE_SAMPLE=.* is invalid: the share of new traces to record, from 0"):
        tracing.sample_ratio(raw)


def test_sampling_by_trace_id_is_the_same_everywhere_and_keeps_about_the_share() -> None:
    assert tracing.sample_ratio(None) == tracing.sample_ratio("") == 1.0 and tracing.sample_ratio("0.25") == 0.25
    ids = [tracing.new_trace_id() for _ in range(4000)]
    assert all(tracing.sampled(i, 1.0) for i in ids) and not any(tracing.sampled(i, 0.0) for i in ids)
    kept = [i for i in ids if tracing.sampled(i, 0.25)]
    assert 800 < len(kept) < 1200 and kept == [i for i in ids if tracing.sampled(i, 0.25)]
    assert set(kept) <= {i for i in ids if tracing.sampled(i, 0.5)}  # a larger share keeps what a smaller one kept


def test_an_unsampled_call_is_answered_with_its_context_and_ships_no_spans() -> None:
    response, spans = _call_and_spans(plus, {"a": 1}, {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"})
    assert response.status_code == 200 and spans == []  # the caller said: not recorded
    assert response.headers["x-request-id"] == CALLER_TRACE and response.headers["traceparent"].endswith("-00")
    the_replica = replica(plus)
    the_replica._sample = 0.0  # FN_TRACE_SAMPLE=0: no new trace is recorded
    assert asyncio.run(the_replica.call("r-1", a=1)) == 11 and shipped_spans(the_replica._shipper) == []


def test_the_platform_refuses_to_start_with_a_bad_sample_share(monkeypatch: pytest.MonkeyPatch) -> None:
    import fn
    from fnplatform.control.settings import PlatformSettings

    monkeypatch.setenv("FN_TRACE_SAMPLE", "10%")
    with pytest.raises(fn.ConfigError, match=r"FN_TRACE_SAMPLE='10%' is invalid"):
        PlatformSettings.from_env()
    monkeypatch.setenv("FN_TRACE_SAMPLE", "0.1")
    PlatformSettings.from_env()


@pytest.mark.parametrize(("error", "failed"), [
    (RuntimeError("boom"), True), (TimeoutError(), True),
    (fn.RemoteError("callee raised", status=500), True), (fn.Unavailable("full", status=503), True),
    (fn.BadRequest("bad argument", status=400), False), (fn.NotFound("no such", status=404), False),
    (fn.ClientError("no status given"), False),  # answered as a 400 by the replica
])
def test_what_marks_a_span_failed_is_one_rule_for_the_callee_and_the_caller(error: BaseException, failed: bool) -> None:
    assert tracing.failed(error) is failed
