"""The control plane's side of durable logs: drain the hub's buffers into the log store, store the control
plane's own log records, prune by age and size, and answer log queries. Lines of spans (``serving.tracing``)
are drained with the rest and kept in memory (``control.traces``), not stored.

The hub keeps a few thousand lines per function in memory and loses them when it restarts; once a second
the housekeeping thread asks it which functions have lines past the cursor stored with the lines
(``log_heads``, one call when idle) and copies at most ``MAX_DRAIN_LINES`` of them. A read drains its
function first, so a caller sees a line as soon as the hub has it. The hub's sequence numbers restart
with it (a new start id): cursors of an older start id count as 0, and what the dead hub held unread
is lost, as before.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from fn import BadRequest, NotFound
from fnplatform.logtext import SPAN_LEVEL, InvalidQuery, check_grep, check_request_id, format_line, parse_line, parse_since
from fnplatform.serving.tracing import spans_of_line, trace_of
from fnplatform.storage.db import utcnow
from fnplatform.storage.logs import LogQuery, LogStore

from .traces import MAX_TRACES, RecentTraces

CONTROL_PLANE = "platform:control-plane"  # not a function name (no ':' allowed), so no function can read it as its own
MAX_DRAIN_LINES = 5000  # per pass; the rest waits a second
PAGE_LINES = 1000
MAX_PENDING_RECORDS = 10_000
DRAIN_WAIT_S = 2.0  # a read waits this long for a drain under way, then answers from the table as it is
_SECRETS_IN_TEXT = (
    (re.compile(r"(://[^:/@\s]*:)[^@\s]*@"), r"\1***@"),  # a database or S3 URL's password
    (re.compile(r"(?i)(bearer\s+)\S+"), r"\1***"),
    # SQLAlchemy's statement and its parameters (key hashes, ciphertexts), up to its "(Background on ...)" link
    (re.compile(r"\[SQL: .*?(?=\(Background on this error|\Z)", re.DOTALL), "[SQL and parameters not stored] "),
)
log = logging.getLogger("fnplatform")


class LogHub(Protocol):
    def log_heads(self) -> tuple[str, dict[str, int]]: ...

    def logs_after(self, function: str, after: int, limit: int) -> tuple[str, int, list[str]]: ...


def scrub(text: str) -> str:
    """Remove what a log record may carry that must not be stored: passwords in URLs, bearer tokens, the
    SQL parameters SQLAlchemy puts in its messages (key hashes, ciphertexts)."""
    for pattern, replacement in _SECRETS_IN_TEXT:
        text = pattern.sub(replacement, text)
    return text


class OwnLogHandler(logging.Handler):
    """The control plane's own records, held for the housekeeping thread to store: emit only appends to a
    bounded buffer, so logging never waits on the database (nor logs again through it)."""

    def __init__(self, max_pending: int = MAX_PENDING_RECORDS) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        self._pending: collections.deque[str] = collections.deque(maxlen=max_pending)
        self._dropped = 0
        self._lock_pending = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            at = datetime.fromtimestamp(record.created, UTC)
            line = format_line(record.levelname, "control-plane", "-", scrub(self.format(record)), at)
            with self._lock_pending:
                if len(self._pending) == self._pending.maxlen:
                    self._dropped += 1
                self._pending.append(line)
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)

    def take(self) -> list[str]:
        with self._lock_pending:
            lines, dropped = list(self._pending), self._dropped
            self._pending.clear()
            self._dropped = 0
        if dropped:
            lines.insert(0, format_line("WARNING", "control-plane", "-", f"{dropped} control-plane log records "
                                        f"dropped: more than {self._pending.maxlen} waited to be stored"))
        return lines


def _is_spans(line: str) -> bool:
    return line[24:30] == f" {SPAN_LEVEL} "  # after the stamp (logtext's format): cheaper than parsing every line


class SpanSink(Protocol):
    def offer(self, source: str, spans: list[dict[str, Any]]) -> None: ...


class Logbook:
    def __init__(self, store: LogStore, hub: LogHub, *, retention_s: float, max_bytes: int,
                 max_drain_lines: int = MAX_DRAIN_LINES, export: SpanSink | None = None) -> None:
        self.store = store
        self.hub = hub
        self.retention_s = retention_s
        self.max_bytes = max_bytes
        self.max_drain_lines = max_drain_lines
        self.handler = OwnLogHandler()
        self._draining = threading.Lock()
        self._cursors: dict[str, tuple[str, int]] | None = None  # loaded from the store on the first drain
        self._hub_start: str | None = None  # the start id of the hub last heard from
        self.export = export  # OTLP (control.otlp), when OTEL_EXPORTER_OTLP_ENDPOINT is set
        self.traces = RecentTraces()  # lines of spans are kept here, not stored (control.traces)

    # draining ------------------------------------------------------------------------------------
    def _after(self, source: str) -> int:
        assert self._cursors is not None
        start_id, seq = self._cursors.get(source, ("", 0))
        return seq if start_id == self._hub_start else 0

    def drain(self, only: str | None = None, wait_s: float = 0.0) -> int:
        """Copy new lines from the hub into the store, lines of spans into ``traces`` (every function's, or
        *only* one's); the count of lines drained.
        A drain already under way is waited for *wait_s* at most, then this one is skipped (0)."""
        acquired = self._draining.acquire(timeout=wait_s) if wait_s > 0 else self._draining.acquire(blocking=False)
        if not acquired:
            return 0
        try:
            if self._cursors is None:
                self._cursors = self.store.cursors()
            if only is not None:
                return self._drain_one(only, self.max_drain_lines)
            start_id, heads = self.hub.log_heads()
            self._hub_start = start_id
            pending = sorted(f for f, head in heads.items() if head > self._after(f))
            drained = 0
            for index, function in enumerate(pending):
                budget = self.max_drain_lines - drained
                if budget <= 0:
                    break
                # a fair share each, so one chatty function does not hold the others back a whole pass
                drained += self._drain_one(function, max(PAGE_LINES // 10, budget // (len(pending) - index)))
            return drained
        finally:
            self._draining.release()

    def _drain_one(self, function: str, budget: int) -> int:
        assert self._cursors is not None
        drained = 0
        while drained < budget:
            after = self._after(function)
            start_id, last, lines = self.hub.logs_after(function, after, min(PAGE_LINES, budget - drained))
            if start_id != self._hub_start:  # the hub restarted (or is first heard of): its numbers start again
                self._hub_start = start_id
                if self._after(function) != after:
                    continue
            if not lines:
                break
            logged: list[str] = []
            spans: list[str] = []
            for line in lines:
                (spans if _is_spans(line) else logged).append(line)
            if not self.store.add_drained(function, logged, start_id, after, last):
                self._cursors = self.store.cursors()  # another drain got there first: read on from where it stopped
                continue
            drained += len(lines)  # spans too: the pass's bound is on lines read from the hub
            self._cursors[function] = (start_id, last)
            if spans:
                self._keep_spans(function, spans)
        return drained

    def _keep_spans(self, source: str, lines: list[str]) -> None:
        exported: list[dict[str, Any]] = []
        for line in lines:
            parsed = parse_line(line)
            if parsed.request_id:
                self.traces.add(parsed.request_id, source, parsed.text)
            if self.export is not None:
                exported += spans_of_line(parsed.text)
        if self.export is not None and exported:
            self.export.offer(source, exported)

    def store_own(self) -> int:
        """Store the control plane's own records buffered since the last call."""
        lines = self.handler.take()
        return self.store.add(CONTROL_PLANE, lines) if lines else 0

    def tick(self) -> int:
        """The housekeeping thread's once-a-second work: its own records first (they explain a drain's failure)."""
        return self.store_own() + self.drain()

    def prune(self) -> int:
        """Delete lines past FN_LOG_RETENTION_HOURS, then the oldest past FN_LOG_MAX_MB."""
        return self.store.prune(utcnow() - timedelta(seconds=self.retention_s), self.max_bytes)

    # reading -------------------------------------------------------------------------------------
    def trace(self, trace_or_request_id: str) -> dict[str, Any]:
        """Every kept span of a trace, named by its trace id, a request id, or a flow run's id; oldest first.
        A NotFound when there is none (yet: spans are shipped within a second or two of their end)."""
        try:
            wanted = check_request_id(trace_or_request_id)
        except InvalidQuery as exc:
            raise BadRequest(f"trace id: {exc}", status=400, detail={"parameter": "trace_id"}) from None
        trace_id = trace_of(wanted)
        try:
            self.drain(wait_s=DRAIN_WAIT_S)
        except Exception as exc:  # noqa: BLE001 - the hub away: what is stored is still an answer
            log.debug("trace read: could not drain first: %s: %s", type(exc).__name__, exc)
        spans = [{**span, "source": source} for source, text in self.traces.get(trace_id)
                 for span in spans_of_line(text)]
        if not spans:
            raise NotFound(f"no spans kept for trace {trace_id} ({wanted!r}): spans arrive a second or two after "
                           f"their request ends, and the control plane keeps the last {MAX_TRACES:,} traces "
                           f"since it started", status=404)
        spans.sort(key=lambda span: (span["start"], span["end"]))
        return {"trace_id": trace_id, "spans": spans}

    def read(self, source: str, *, after: int = 0, limit: int = 200, since: str | None = None,
             request_id: str | None = None, grep: str | None = None) -> dict[str, Any]:
        """A page of *source*'s lines (see LogQuery) with ``next``, the cursor to continue after; bad
        parameters are a BadRequest naming the parameter."""
        try:
            query = LogQuery(source=source, after=after, limit=limit,
                             since=utcnow() - timedelta(seconds=parse_since(since)) if since is not None else None,
                             request_id=check_request_id(request_id) if request_id is not None else None,
                             grep=check_grep(grep) if grep is not None else None)
        except InvalidQuery as exc:
            raise BadRequest(f"query parameter {exc.parameter!r}: {exc}", status=400,
                             detail={"parameter": exc.parameter}) from None
        if source != CONTROL_PLANE:
            try:
                self.drain(only=source, wait_s=DRAIN_WAIT_S)
            except Exception as exc:  # noqa: BLE001 - the hub away: what is stored is still an answer
                log.debug("log read: could not drain %s first: %s: %s", source, type(exc).__name__, exc)
        head = self.store.head(source)  # before the query: a line stored meanwhile is read next time, not skipped
        rows = self.store.query(query)
        return {"next": rows[-1].id if rows else max(after, head), "lines": [r.line.render() for r in rows],
                "entries": [r.to_json() for r in rows]}
