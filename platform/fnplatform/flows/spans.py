"""A flow run's trace: one trace per run (``trace_of(run_id)``), a root span for the run, a span per step
attempt under it, and each step's function call under its attempt (the replica's span, by the hop token).

The root span's id is derived from the run id, so the steps of a run that a restarted host resumes still
hang under the same root. Spans are shipped when they end: a step's when its attempt ends, the root when
the run's end is recorded.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

from fnplatform.serving.tracing import Span, Trace, configured_ratio, hop_token, sampled, trace_of

Ship = Callable[[str, Trace], None]  # (flow name, spans of one trace) -> shipped with the host's lines


def root_span_id(run_id: str) -> str:
    return hashlib.sha256(f"flow-run:{run_id}".encode()).hexdigest()[:16]


class RunTrace:
    def __init__(self, run_id: str, flow: str, ship: Ship | None) -> None:
        self.run_id = run_id
        self.flow = flow
        self.trace_id = trace_of(run_id)
        self.root = root_span_id(run_id)
        self.sampled = sampled(self.trace_id, configured_ratio())  # as every replica of its steps decides
        self._ship = ship

    def attempt(self, step: str, function: str, attempt: int) -> tuple[Trace, Span]:
        trace = Trace(self.trace_id, self.root, self.sampled)
        span = trace.begin(f"step {step}", {"fn.flow": self.flow, "fn.step": step, "fn.function": function,
                                            "fn.attempt": attempt}, kind="client")
        return trace, span

    def hop(self, step: str, trace: Trace, span: Span) -> str:
        """The first argument of the step's call: its request id (``run:step``, as in its log lines) and span."""
        return hop_token(f"{self.run_id}:{step}", trace, span)

    def attempt_ended(self, trace: Trace, span: Span, error: str | None = None) -> None:
        span.end = time.time()
        if error is not None:
            span.error = True
            span.attrs["fn.error"] = error[:200]
        self._send(trace)

    def run_ended(self, status: str, created_at: datetime | None) -> None:
        ended = time.time()
        start = created_at.replace(tzinfo=UTC).timestamp() if created_at is not None else ended
        trace = Trace(self.trace_id, None, self.sampled)
        trace.spans.append(Span(f"flow {self.flow}", self.trace_id, self.root, None, min(start, ended), ended,
                                kind="server", error=status != "succeeded",
                                attrs={"fn.flow": self.flow, "fn.run": self.run_id, "fn.status": status}))
        self._send(trace)

    def _send(self, trace: Trace) -> None:
        if self._ship is not None and trace.sampled:
            self._ship(self.flow, trace)
