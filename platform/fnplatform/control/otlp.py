"""Spans out by OTLP/HTTP (protobuf) when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set.

The replicas and run hosts record spans as plain records (``serving.tracing``) that reach the control plane
with the logs; as the log drain keeps them (``control.traces``), it offers them here. A background thread turns them into
OpenTelemetry spans and hands them to OpenTelemetry's own OTLP exporter, which reads its endpoint, headers
and timeout from the standard ``OTEL_EXPORTER_OTLP_*`` variables. Each source (a function, ``flow:<name>``)
is a ``service.name``. The queue is bounded: when the collector is away, the oldest spans are dropped and
counted; the copy in memory (``fnctl trace``) is kept either way.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from typing import Any

from fnplatform.serving.shipping import Periodic

log = logging.getLogger(__name__)
MAX_QUEUED = 20_000
BATCH = 512
INTERVAL_S = 1.0
_KINDS = {"server": "SERVER", "client": "CLIENT", "internal": "INTERNAL"}


def configured() -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def from_environment() -> OtlpExport | None:
    """The exporter the environment asks for, started; None without an OTLP endpoint."""
    if not configured():
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    export = OtlpExport(OTLPSpanExporter())
    export.start()
    return export


class OtlpExport:
    def __init__(self, exporter: Any, *, max_queued: int = MAX_QUEUED, batch: int = BATCH,
                 interval_s: float = INTERVAL_S) -> None:
        self._exporter = exporter
        self._queue: collections.deque[tuple[str, dict[str, Any]]] = collections.deque(maxlen=max_queued)
        self._lock = threading.Lock()
        self._batch = batch
        self.dropped = 0  # spans pushed out of a full queue, or refused by the collector
        self.exported = 0
        self._failing = False
        self._resources: dict[str, Any] = {}
        self._ticker = Periodic(self.flush, interval_s, "fn-otlp-export")

    def start(self) -> None:
        self._ticker.start()

    def stop(self) -> None:
        self._ticker.stop()
        self._exporter.shutdown()

    def offer(self, source: str, spans: list[dict[str, Any]]) -> None:
        with self._lock:
            for span in spans:
                if len(self._queue) == self._queue.maxlen:
                    self.dropped += 1
                self._queue.append((source, span))

    def flush(self) -> None:
        from opentelemetry.sdk.trace.export import SpanExportResult

        while True:
            with self._lock:
                taken = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
            if not taken:
                return
            spans = [span for span in (self._readable(source, record) for source, record in taken) if span is not None]
            if spans and self._exporter.export(spans) != SpanExportResult.SUCCESS:
                self.dropped += len(spans)
                if not self._failing:  # once per outage, not once per batch
                    log.warning("OTLP export failed: %d spans dropped (they stay in memory for 'fnctl trace')", len(spans))
                self._failing = True
                return
            self._failing = False
            self.exported += len(spans)

    def _resource(self, source: str) -> Any:
        resource = self._resources.get(source)
        if resource is None:
            from opentelemetry.sdk.resources import Resource

            resource = self._resources[source] = Resource.create({"service.name": source, "service.namespace": "fn"})
        return resource

    def _readable(self, source: str, record: dict[str, Any]) -> Any:
        """An OpenTelemetry span of a shipped record; None for one that is not well formed."""
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        try:
            trace_id, span_id = int(record["trace"], 16), int(record["span"], 16)
            parent_id = int(record["parent"], 16) if record.get("parent") else None
            start_ns, end_ns = int(float(record["start"]) * 1e9), int(float(record["end"]) * 1e9)
        except (KeyError, TypeError, ValueError):
            return None
        flags = TraceFlags(TraceFlags.SAMPLED)
        attributes = {key: value for key, value in (record.get("attrs") or {}).items()
                      if isinstance(value, str | int | float | bool)}
        return ReadableSpan(
            name=str(record.get("name", "span")), context=SpanContext(trace_id, span_id, False, flags),
            parent=SpanContext(trace_id, parent_id, True, flags) if parent_id else None,
            resource=self._resource(source), attributes=attributes,
            kind=getattr(SpanKind, _KINDS.get(str(record.get("kind")), "INTERNAL")),
            status=Status(StatusCode.ERROR) if record.get("status") == "error" else Status(StatusCode.UNSET),
            start_time=start_ns, end_time=max(start_ns, end_ns))
