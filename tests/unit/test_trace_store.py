"""Traces in the control plane, with no Ray: spans drained from an in-process hub beside a real SQLite log store
(kept in memory, not stored), ``GET /v1/traces/{id}`` through the edge (who may read, bad and unknown ids),
the bounds of what is kept, ``fnctl trace``'s tree, and the OTLP export to a real OTLP/HTTP receiver."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from starlette.testclient import TestClient

from fnctl import traces
from fnctl.main import cli
from fnplatform.control.otlp import OtlpExport
from fnplatform.control.plane import ControlPlane
from fnplatform.control.traces import RecentTraces
from fnplatform.logtext import format_line
from fnplatform.serving import tracing
from fnplatform.storage.logs import LogStore, _LogLine

from .test_control_plane import InProcessHub
from .test_edge import key
from .test_log_drain import api as api  # a fixture
from .test_log_drain import deployed
from .test_log_drain import plane as plane  # a fixture
from .test_log_drain import push as push_text

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def spans_line(*spans: tracing.Span) -> str:
    trace = tracing.Trace(TRACE)
    trace.spans.extend(spans)
    return format_line(tracing.LEVEL, "r1", TRACE, trace.line_text())


def span(name: str, span_id: str, parent: str | None, start: float, end: float, **extra: Any) -> tracing.Span:
    return tracing.Span(name, TRACE, span_id, parent, start, end, **extra)


def chain(hub: InProcessHub) -> None:
    """A call of `caller` over HTTP that calls `callee`: each replica ships its own line of spans."""
    import asyncio

    asyncio.run(hub.hub.push_logs("caller", [spans_line(
        span("POST /caller", "a" * 16, None, 10.0, 10.5, kind="server"),
        span("caller", "b" * 16, "a" * 16, 10.1, 10.4),
        span("call callee", "c" * 16, "b" * 16, 10.2, 10.3, kind="client"))]))
    asyncio.run(hub.hub.push_logs("callee", [spans_line(
        span("callee", "d" * 16, "c" * 16, 10.21, 10.29, kind="server", error=True))]))


def test_a_trace_is_read_from_every_source_oldest_first_and_kept_out_of_the_logs(plane: ControlPlane,
                                                                               api: TestClient) -> None:
    deployed(plane, "caller")
    hub: InProcessHub = plane.hub  # type: ignore[assignment]
    push_text(hub, "caller", "a printed line", request=TRACE)
    chain(hub)
    found = api.get(f"/v1/traces/{TRACE}", headers=key(plane, "deploy")).json()  # drained first: no wait
    assert found["trace_id"] == TRACE
    assert [(s["name"], s["source"]) for s in found["spans"]] == [
        ("POST /caller", "caller"), ("caller", "caller"), ("call callee", "caller"), ("callee", "callee")]
    assert found["spans"][3]["status"] == "error" and found["spans"][3]["parent"] == "c" * 16
    logs = api.get("/v1/functions/caller/logs", params={"request_id": TRACE}, headers=key(plane, "deploy")).json()
    assert [entry["text"] for entry in logs["entries"]] == ["a printed line"]  # the spans' line is not a log line


def test_a_trace_is_found_by_a_request_id_that_maps_to_it(plane: ControlPlane, api: TestClient) -> None:
    chain(plane.hub)  # type: ignore[arg-type]
    dashed = f"{TRACE[:8]}-{TRACE[8:12]}-{TRACE[12:16]}-{TRACE[16:20]}-{TRACE[20:]}"
    assert api.get(f"/v1/traces/{dashed}", headers=key(plane, "admin")).json()["trace_id"] == TRACE


def test_who_may_read_a_trace_and_bad_or_unknown_ids(plane: ControlPlane, api: TestClient) -> None:
    chain(plane.hub)  # type: ignore[arg-type]
    assert api.get(f"/v1/traces/{TRACE}").status_code == 401
    assert api.get(f"/v1/traces/{TRACE}", headers=key(plane, "invoke")).status_code == 403  # crosses functions
    unknown = api.get(f"/v1/traces/{'1' * 32}", headers=key(plane, "deploy"))
    assert unknown.status_code == 404 and "no spans kept for trace" in unknown.json()["error"]["message"]
    bad = api.get(f"/v1/traces/{'x' * 129}", headers=key(plane, "deploy"))
    assert bad.status_code == 400 and bad.json()["error"]["detail"] == {"parameter": "trace_id"}


def test_lines_of_spans_are_kept_in_memory_not_stored_with_the_logs(plane: ControlPlane) -> None:
    chain(plane.hub)  # type: ignore[arg-type]
    push_text(plane.hub, "caller", "a printed line")  # type: ignore[arg-type]
    plane.logbook.drain()
    with plane.logbook.store.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(_LogLine)) == 1  # the printed line only
    assert sorted(source for source, _ in plane.logbook.traces.get(TRACE)) == ["callee", "caller"]


def test_the_newest_traces_are_kept_and_a_trace_keeps_its_first_lines() -> None:
    kept = RecentTraces(max_traces=2, max_lines=2)
    kept.add("t1", "a", "1")
    kept.add("t2", "a", "2")
    kept.add("t1", "b", "1b")  # t1 grows: it is recent again
    kept.add("t3", "a", "3")  # t2, the least recent, goes
    assert (kept.get("t2"), len(kept)) == ([], 2)
    kept.add("t1", "c", "1c")
    assert kept.get("t1") == [("a", "1"), ("b", "1b")] and kept.get("t3") == [("a", "3")]


# fnctl trace ---------------------------------------------------------------------------------------------
class FakeApi:
    answers: list[Any] = []
    asked: list[str] = []

    def get(self, path: str, **params: Any) -> Any:
        FakeApi.asked.append(path)
        answer = FakeApi.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> type[FakeApi]:
    monkeypatch.setattr(traces, "Api", FakeApi)
    monkeypatch.setattr(traces, "WAIT_POLL_S", 0.01)
    FakeApi.answers, FakeApi.asked = [], []
    return FakeApi


def as_json(*spans: tracing.Span, source: str = "caller") -> list[dict[str, Any]]:
    return [{**s.to_json(), "source": source} for s in spans]


def test_fnctl_trace_prints_the_tree_waiting_for_spans_to_arrive(fake_api: type[FakeApi]) -> None:
    import fn

    spans = as_json(span("POST /caller", "a" * 16, "f" * 16, 10.0, 10.5),  # its parent: the caller's, not stored
                    span("caller", "b" * 16, "a" * 16, 10.1, 10.4),
                    span("call callee", "c" * 16, "b" * 16, 10.2, 10.3)) + as_json(
                    span("callee", "d" * 16, "c" * 16, 10.21, 10.29, error=True), source="callee")
    fake_api.answers = [fn.NotFound("no spans yet", status=404), {"trace_id": TRACE, "spans": spans}]
    result = CliRunner().invoke(cli, ["trace", TRACE])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"trace {TRACE}" and fake_api.asked == [f"/v1/traces/{TRACE}"] * 2
    assert [line.split("  ")[0] if not line.startswith(" ") else line.strip().split("  ")[0] for line in lines[1:]] == [
        "POST /caller", "caller", "call callee", "callee"]
    assert lines[4].startswith("      callee ") and lines[4].rstrip().endswith("ERROR")
    assert "+    210.0 ms" in lines[4] and "80.0 ms" in lines[4]


def test_fnctl_trace_refuses_a_bad_id_and_says_when_nothing_arrived(fake_api: type[FakeApi]) -> None:
    import fn

    bad = CliRunner().invoke(cli, ["trace", "a b"])
    assert bad.exit_code == 2 and "is not a trace or request id" in bad.output and fake_api.asked == []
    fake_api.answers = [fn.NotFound("no spans kept for trace x", status=404)] * 3
    missing = CliRunner().invoke(cli, ["trace", TRACE, "--wait", "0"])
    assert missing.exit_code == 1 and "no spans kept for trace" in missing.output


# OTLP ----------------------------------------------------------------------------------------------------
class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        _Receiver.bodies.append((self.path, self.rfile.read(int(self.headers["content-length"]))))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    server.shutdown()
    server.server_close()


def test_stored_spans_are_exported_by_otlp_with_their_ids_parents_and_service(collector: str) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    export = OtlpExport(OTLPSpanExporter(endpoint=collector))
    export.offer("caller", as_json(span("POST /caller", "a" * 16, None, 10.0, 10.5, kind="server"),
                                   span("caller", "b" * 16, "a" * 16, 10.1, 10.4)))
    damaged = {"span": "not hex", "trace": TRACE, "start": 1, "end": 2}  # skipped, not an error
    export.offer("callee", [*as_json(span("callee", "d" * 16, "c" * 16, 10.2, 10.3, kind="server", error=True)), damaged])
    export.flush()
    export.stop()  # the exporter's HTTP session closed
    assert export.exported == 3 and export.dropped == 0
    (path, body), = _Receiver.bodies
    request = ExportTraceServiceRequest.FromString(body)
    got = {}
    for resource_spans in request.resource_spans:
        service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
        for scope in resource_spans.scope_spans:
            for s in scope.spans:
                got[s.name] = (service, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.kind,
                               s.status.code, s.end_time_unix_nano - s.start_time_unix_nano)
    assert path == "/v1/traces"
    assert got["POST /caller"][:4] == ("caller", TRACE, "a" * 16, "") and got["POST /caller"][4] == 2  # SERVER
    assert got["caller"][3] == "a" * 16 and got["callee"][0] == "callee" and got["callee"][5] == 2  # ERROR
    assert got["caller"][6] == pytest.approx(0.3e9, rel=1e-6)


def test_spans_the_collector_refuses_are_counted_and_the_queue_is_bounded() -> None:
    from opentelemetry.sdk.trace.export import SpanExportResult

    class Refusing:
        def export(self, spans: list[Any]) -> SpanExportResult:
            return SpanExportResult.FAILURE

        def shutdown(self) -> None:
            pass

    export = OtlpExport(Refusing(), max_queued=2)
    export.offer("caller", as_json(*(span(f"s{i}", f"{i + 1:016x}", None, 1.0, 2.0) for i in range(3))))
    assert export.dropped == 1  # the oldest, pushed out of the full queue
    export.flush()
    assert export.dropped == 3 and export.exported == 0


def test_the_drain_offers_what_it_stores_of_spans_to_the_export(tmp_path: Path) -> None:
    from fnplatform.control.logbook import Logbook

    offered: list[tuple[str, list[str]]] = []

    class Sink:
        def offer(self, source: str, spans: list[dict[str, Any]]) -> None:
            offered.append((source, [s["name"] for s in spans]))

    hub = InProcessHub()
    book = Logbook(LogStore(f"sqlite:///{tmp_path / 'r.db'}"), hub, retention_s=3600, max_bytes=2**30,
                   export=Sink())
    push_text(hub, "caller", "a printed line")
    chain(hub)
    book.drain()
    assert sorted(offered) == [("callee", ["callee"]), ("caller", ["POST /caller", "caller", "call callee"])]
    book.drain()  # nothing new: nothing offered twice
    assert len(offered) == 2


def test_lines_of_spans_count_against_a_drain_pass_bound(tmp_path: Path) -> None:
    from fnplatform.control.logbook import PAGE_LINES, Logbook

    hub = InProcessHub()
    book = Logbook(LogStore(f"sqlite:///{tmp_path / 'r.db'}"), hub, retention_s=3600, max_bytes=2**30,
                   max_drain_lines=PAGE_LINES // 10)
    import asyncio

    lines = [spans_line(span(f"s{i}", f"{i + 1:016x}", None, 1.0, 2.0)) for i in range(PAGE_LINES // 4)]
    asyncio.run(hub.hub.push_logs("caller", lines))
    assert book.drain() == PAGE_LINES // 10  # a pass of spans alone is bounded like any other
    assert len(book.traces.get(TRACE)) == PAGE_LINES // 10
    assert book.drain() + book.drain() == PAGE_LINES // 4 - PAGE_LINES // 10  # the rest on later passes
