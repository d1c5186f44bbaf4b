"""Replica-side log capture: every line a function prints or logs, tagged with its request id.

Lines are buffered in the replica and shipped to the hub in batches from a background thread, so
the request path only appends to a list. Every buffer is bounded: a line is cut at ``MAX_LINE_CHARS``,
text printed without a newline is shipped once it reaches that size, at most ``MAX_PARTIAL_REQUESTS``
requests' unfinished lines are held, and at most ``MAX_PENDING_LINES`` lines wait for the next batch
(older ones are dropped and counted, e.g. while the hub is away).
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import sys
import threading
import time
from collections import deque
from typing import Any, TextIO

from fnplatform.logtext import format_line

from .shipping import Periodic

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("fn_request_id", default="-")
FLUSH_INTERVAL_S = 0.5
MAX_LINE_CHARS = 64 * 1024
MAX_PARTIAL_REQUESTS = 256
MAX_PENDING_LINES = 10_000


class LogShipper:
    def __init__(self, function: str, replica_id: str, hub: Any) -> None:
        self.function = function
        self.replica_id = replica_id
        self._hub = hub
        self._lines: deque[str] = deque(maxlen=MAX_PENDING_LINES)
        self._dropped = 0  # lines pushed out of a full buffer since the last batch
        self._lock = threading.Lock()
        self._ticker = Periodic(self.flush, FLUSH_INTERVAL_S, "fn-log-shipper")

    def line(self, level: str, message: str, request_id: str | None = None) -> None:
        rid = request_id or request_id_var.get()
        if len(message) > MAX_LINE_CHARS:
            message = message[:MAX_LINE_CHARS] + f" [cut: {len(message) - MAX_LINE_CHARS} more characters]"
        text = format_line(level, self.replica_id, rid, message)  # the control plane parses it back (logtext)
        with self._lock:
            if len(self._lines) == MAX_PENDING_LINES:
                self._dropped += 1
            self._lines.append(text)

    def start(self) -> None:
        self._ticker.start()

    def stop(self) -> None:
        self._ticker.stop()

    def flush(self) -> None:
        with self._lock:
            lines, dropped = list(self._lines), self._dropped
            self._lines.clear()
            self._dropped = 0
        if dropped:
            lines.insert(0, format_line("WARNING", self.replica_id, "-", f"{dropped} log lines dropped: more than "
                                        f"{MAX_PENDING_LINES} waited to be shipped"))
        if lines and self._hub is not None:
            with contextlib.suppress(Exception):
                self._hub.push_logs.remote(self.function, lines)


class _Handler(logging.Handler):
    def __init__(self, shipper: LogShipper) -> None:
        super().__init__()
        self._shipper = shipper

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("ray", "fnplatform")):
            return
        try:
            self._shipper.line(record.levelname, self.format(record))
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)


class _TeeStream(io.TextIOBase):
    """A stdout/stderr that still writes where it wrote, and also ships whole lines."""

    def __init__(self, original: TextIO, shipper: LogShipper, level: str) -> None:
        self._original = original
        self._shipper = shipper
        self._level = level
        self._partial: dict[str, str] = {}  # request id -> its text since its last newline
        self._lock = threading.Lock()  # the function's worker threads print at once

    def write(self, text: str) -> int:
        self._original.write(text)
        rid = request_id_var.get()
        with self._lock:
            pending = self._partial.pop(rid, "") + text
            *complete, rest = pending.split("\n")
            if len(rest) >= MAX_LINE_CHARS:  # no newline coming: ship what there is rather than hold it
                complete.append(rest)
            elif rest:
                self._partial[rid] = rest  # re-inserted last: the oldest unfinished line is first
            evicted = [(oldest, self._partial.pop(oldest)) for oldest in list(self._partial)[:-MAX_PARTIAL_REQUESTS]]
        for line in complete:
            self._shipper.line(self._level, line, rid)
        for oldest, line in evicted:
            self._shipper.line(self._level, line, oldest)
        return len(text)

    def flush(self) -> None:
        self._original.flush()


def install(shipper: LogShipper) -> None:
    handler = _Handler(shipper)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    sys.stdout = _TeeStream(sys.stdout, shipper, "STDOUT")
    sys.stderr = _TeeStream(sys.stderr, shipper, "STDERR")
    shipper.start()


def elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000
