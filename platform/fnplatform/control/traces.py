"""Recent traces, kept by the control plane in memory: what ``GET /v1/traces/{id}`` and ``fnctl trace`` read.

The replicas and run hosts ship each request's spans as one ``SPAN`` line among their log lines; the log
drain hands those lines here instead of storing them (a row per request in the log table cost the control
plane CPU on every call and crowded the logs out of their size budget). Bounded: the newest
``MAX_TRACES`` traces, at most ``MAX_LINES_PER_TRACE`` lines each; a trace past that keeps its first lines.
Gone with the control plane's process; an operator who wants traces kept sets an OTLP endpoint
(``control.otlp``).
"""

from __future__ import annotations

import collections
import threading

MAX_TRACES = 20_000  # about 1 KB of text a trace of a plain call: some 20 MB at most
MAX_LINES_PER_TRACE = 256


class RecentTraces:
    def __init__(self, max_traces: int = MAX_TRACES, max_lines: int = MAX_LINES_PER_TRACE) -> None:
        self._traces: collections.OrderedDict[str, list[tuple[str, str]]] = collections.OrderedDict()
        self._max_traces = max_traces
        self._max_lines = max_lines
        self._lock = threading.Lock()  # the drain adds while API threads read

    def add(self, trace_id: str, source: str, text: str) -> None:
        with self._lock:
            lines = self._traces.get(trace_id)
            if lines is None:
                lines = self._traces[trace_id] = []
                while len(self._traces) > self._max_traces:
                    self._traces.popitem(last=False)
            else:
                self._traces.move_to_end(trace_id)  # a trace still growing (a flow run) is kept as recent
            if len(lines) < self._max_lines:
                lines.append((source, text))

    def get(self, trace_id: str) -> list[tuple[str, str]]:
        """The (source, text) of each line of spans of *trace_id*, in the order they arrived."""
        with self._lock:
            return list(self._traces.get(trace_id, ()))

    def __len__(self) -> int:
        return len(self._traces)
