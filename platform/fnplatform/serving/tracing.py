"""Traces: W3C trace context in and out, and spans recorded where the work happens.

A trace id is the request id: an id the platform makes is 32 hex digits, which is a trace id as it
stands; a caller's ``traceparent`` makes its trace id the request id; any other id a caller chose as
``x-request-id`` is mapped by ``trace_of`` (a UUID without its dashes, else the first 32 hex digits of
its SHA-256), so ``fnctl trace`` finds a trace by either. A flow run's trace is ``trace_of(run_id)``.

Spans are plain records (name, ids, epoch seconds, status, a few attributes), not OpenTelemetry
objects: a replica imports nothing for them, and they travel as one ``SPAN`` log line per request
(a JSON list, under the trace id, shipped with the logs). The control plane's log drain keeps them in
memory for ``GET /v1/traces/{id}`` and, when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, exports them by OTLP.

Across a handle hop the callee's first argument is a *hop token*: the request id, then a space and a
``traceparent`` naming the caller's span, so the callee's span is the caller's child.

Sampling is decided once per trace and followed by every hop: a caller's ``traceparent`` decides by its
sampled flag (W3C, parent-based); a new trace is recorded when its id falls in the share
``FN_TRACE_SAMPLE`` gives (0 to 1, default 1), a test of the id itself, so every process decides alike
with nothing passed. An unrecorded trace still has its ids, its request id and its ``traceparent``.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import logging
import math
import os
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from fn import ClientError
from fnplatform.logtext import SPAN_LEVEL

LEVEL = SPAN_LEVEL  # the level of a line of spans; `fnctl logs` and the console leave such lines out
HEADER = "traceparent"
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
MAX_SPANS_PER_TRACE = 128  # a function that makes thousands of calls keeps its first spans (one line), not its memory
SAMPLE_VARIABLE = "FN_TRACE_SAMPLE"
_random = random.Random()  # seeded from os.urandom; W3C asks ids to be random, not secret (and SystemRandom is a syscall)
log = logging.getLogger(__name__)


class Parent(NamedTuple):
    trace: str
    span: str
    sampled: bool


def sample_ratio(raw: str | None) -> float:
    """The share of new traces to record, from ``FN_TRACE_SAMPLE``'s text; a ValueError names what is allowed."""
    if raw is None or not raw.strip():
        return 1.0
    try:
        ratio = float(raw)
    except ValueError:
        ratio = math.nan
    if not 0 <= ratio <= 1:
        raise ValueError(f"{SAMPLE_VARIABLE}={raw!r} is invalid: the share of new traces to record, from 0 (none) "
                         f"to 1 (every one, the default), e.g. 0.1")
    return ratio


@functools.cache
def configured_ratio() -> float:
    """This process's ``FN_TRACE_SAMPLE`` (the control plane refuses a bad one at start; here it means 1)."""
    try:
        return sample_ratio(os.environ.get(SAMPLE_VARIABLE))
    except ValueError as exc:
        log.warning("%s; recording every trace", exc)
        return 1.0


def sampled(trace_id: str, ratio: float) -> bool:
    """Whether a new trace is recorded: its id's last 64 bits below the share (OpenTelemetry's TraceIdRatio)."""
    return ratio >= 1 or (ratio > 0 and int(trace_id[16:], 16) < int(ratio * 2**64))


def failed(error: BaseException) -> bool:
    """Whether *error* marks its span failed: anything but an fn client error under 500. A caller's mistake
    (a 4xx) is not the callee's failure; a client error without a status is a 400, as the replica answers it."""
    return not isinstance(error, ClientError) or (error.status or 400) >= 500


def parse_traceparent(value: str | None) -> Parent | None:
    """The trace id, parent span id and sampled flag of a W3C ``traceparent`` header; None when absent or
    invalid (the standard says: start a new trace then, never fail the request)."""
    if not value:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return Parent(trace_id, span_id, bool(int(flags, 16) & 1))


def traceparent(trace_id: str, span_id: str, sampled: bool = True) -> str:
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def trace_of(request_id: str) -> str:
    """The trace id that stands for *request_id* (see the module's text)."""
    if _TRACE_ID.fullmatch(request_id) and request_id != _ZERO_TRACE:
        return request_id
    if _UUID.fullmatch(request_id):
        return request_id.replace("-", "").lower()
    return hashlib.sha256(request_id.encode()).hexdigest()[:32]


def plain_request_id(request_id: str) -> str:
    """A UUID-shaped id (what Serve's proxy and older HAProxy configs make) as its 32 hex digits, so the
    request id in logs and the trace id are the same string; any other id unchanged."""
    return request_id.replace("-", "").lower() if _UUID.fullmatch(request_id) else request_id


def request_id_of(headers: Any) -> str:
    """The id of an HTTP request a gateway answers: the caller's trace (``traceparent``), else its
    ``x-request-id``, else a new trace id."""
    parent = parse_traceparent(headers.get(HEADER))
    if parent is not None:
        return parent.trace
    given = headers.get("x-request-id")
    return plain_request_id(given) if given else new_trace_id()


def new_id() -> str:
    return f"{_random.getrandbits(64) or 1:016x}"


def new_trace_id() -> str:
    return f"{_random.getrandbits(128) or 1:032x}"


@dataclass
class Span:
    name: str
    trace: str
    span: str
    parent: str | None
    start: float  # epoch seconds
    end: float = 0.0
    kind: str = "internal"  # server, client or internal (OpenTelemetry's span kinds)
    error: bool = False
    attrs: dict[str, str | int | float | bool] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "trace": self.trace, "span": self.span, "parent": self.parent,
                "start": round(self.start, 6), "end": round(self.end or self.start, 6), "kind": self.kind,
                "status": "error" if self.error else "ok", "attrs": self.attrs}


class Trace:
    """The spans one process records for one request (or one flow run), shipped together as one line."""

    def __init__(self, trace_id: str, parent: str | None = None, sampled: bool = True) -> None:
        self.trace_id = trace_id
        self.parent = parent  # the span new children hang from
        self.sampled = sampled  # False: ids and context go on, nothing is shipped
        self.spans: list[Span] = []

    def begin(self, name: str, attrs: dict[str, str | int | float | bool] | None = None, *, parent: str | None = None,
              kind: str = "internal", start: float | None = None) -> Span:
        span = Span(name, self.trace_id, new_id(), parent if parent is not None else self.parent,
                    time.time() if start is None else start, kind=kind, attrs=dict(attrs or {}))
        if len(self.spans) < MAX_SPANS_PER_TRACE:
            self.spans.append(span)  # list.append is atomic: user threads may add hop spans at once
        return span

    def line_text(self) -> str:
        """The text of the ``SPAN`` log line of these spans (logtext's format around it)."""
        return json.dumps([span.to_json() for span in self.spans], separators=(",", ":"))


# The trace of the request this code runs for: set by the replica (and a flow run) around the work, and
# copied into the threads a function runs in, so a handle call made by user code finds its parent.
current: contextvars.ContextVar[Trace | None] = contextvars.ContextVar("fn_trace", default=None)


def hop_token(request_id: str, trace: Trace | None, span: Span | None) -> str:
    """The first argument of a handle call: the request id, and the span the callee's span belongs under."""
    if trace is None or span is None:
        return request_id
    return f"{request_id} {traceparent(trace.trace_id, span.span, trace.sampled)}"


def from_hop(token: str | None) -> tuple[str | None, Parent | None]:
    """The request id and the caller's span of a hop token; a bare request id (or none) has no parent."""
    if not token or token == "-":
        return None, None
    rid, _, context = token.partition(" ")
    return rid, parse_traceparent(context)


def trace_for(request_id: str, parent: Parent | None, ratio: float) -> Trace:
    """The trace a request continues (its caller's) or starts (named by its request id, sampled by *ratio*)."""
    if parent is not None:
        return Trace(parent.trace, parent.span, parent.sampled)
    trace_id = trace_of(request_id)
    return Trace(trace_id, None, sampled(trace_id, ratio))


def spans_of_line(text: str) -> list[dict[str, Any]]:
    """The spans of a ``SPAN`` line's text; [] when it is not one (a foreign or damaged line)."""
    try:
        value = json.loads(text)
    except ValueError:
        return []
    if not isinstance(value, list):
        return []
    return [span for span in value if isinstance(span, dict) and isinstance(span.get("span"), str)
            and isinstance(span.get("start"), int | float) and isinstance(span.get("end"), int | float)]
