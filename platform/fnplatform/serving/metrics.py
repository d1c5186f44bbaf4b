"""The data plane's metrics: counted in each process (replicas, flow runs), summed in the hub.

A process counts into its ``Recorder`` (a lock and a few dict updates on the request path, nothing else)
and a ``MetricsShipper`` pushes what changed since its last push to the hub every ``PUSH_INTERVAL_S``,
and once more when the process stops. Counts are exact: each push carries the process's id and a
sequence number, a push that fails is sent again unchanged (later counts wait in the next one), and
the hub applies each (process, number) once, so a retried push whose first try did arrive is not
counted twice. The hub's ``Totals`` sum every process's pushes; the control plane renders them as
Prometheus text (``control.metrics``), which is why nothing here imports ``prometheus_client``: every
replica would pay for it at each cold start.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .shipping import Periodic

# What the data plane counts: each name with its label names, in the order the label values are kept.
COUNTERS: dict[str, tuple[str, ...]] = {
    "fn_requests_total": ("function", "version", "code"),
    "fn_cold_starts_total": ("function",),
    "fn_flow_runs_total": ("flow", "status"),
}
HISTOGRAMS: dict[str, tuple[str, ...]] = {
    "fn_request_duration_seconds": ("function", "version"),
    "fn_flow_step_duration_seconds": ("flow", "step"),
    "fn_cold_start_seconds": ("function", "phase"),  # phases: serving.coldstart.PHASES, and "total"
}
GAUGES: dict[str, tuple[str, ...]] = {"fn_requests_in_flight": ("function",)}
# Upper bounds in seconds (a last, +Inf bucket follows): from a fast model call up to the largest timeouts.
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
                              300.0, 600.0, 1800.0, 3600.0)
PUSH_INTERVAL_S = 2.0
CANCELLED = 499  # the code of a call whose caller went away first (nginx's "client closed request")
MAX_SERIES = 10_000  # label sets one process or the hub keeps; a new one beyond it is dropped and counted
GAUGE_STALE_S = 30.0  # a process silent this long no longer counts in the gauges (it stopped, or is gone)
SOURCE_FORGET_S = 600.0  # how long the hub remembers a process's last push number, to refuse a repeat of it
MAX_SOURCES = 20_000  # processes the hub remembers (replicas come and go); the oldest go first

Labels = tuple[str, ...]
Series = tuple[str, Labels]  # (metric name, label values)


@dataclass
class Delta:
    """Counts since the last push (or, in the hub, since it started), and the gauges as they are now."""

    counters: dict[Series, float] = field(default_factory=dict)
    # per series: the count in each bucket (not cumulative; the last is +Inf), then the sum of the values
    histograms: dict[Series, list[float]] = field(default_factory=dict)
    gauges: dict[Series, float] = field(default_factory=dict)
    dropped: int = 0  # samples of new series refused past MAX_SERIES

    def has_counts(self) -> bool:
        return bool(self.counters or self.histograms or self.dropped)

    def add(self, other: Delta, *, gauges: bool = True) -> None:
        """Add *other*'s counts to these; its gauges replace these (they are levels, not counts)."""
        self.dropped += other.dropped
        for key, value in other.counters.items():
            if key in self.counters or self._room():
                self.counters[key] = self.counters.get(key, 0) + value
            else:
                self.dropped += 1
        for key, buckets in other.histograms.items():
            mine = self.histograms.get(key)
            if mine is None:
                if self._room():
                    self.histograms[key] = list(buckets)
                else:
                    self.dropped += 1
                continue
            for index, value in enumerate(buckets):
                mine[index] += value
        if gauges:
            self.gauges = dict(other.gauges)

    def _room(self) -> bool:
        return len(self.counters) + len(self.histograms) < MAX_SERIES


def bucket_of(seconds: float) -> int:
    """The index of the first bucket whose upper bound is at least *seconds* (len(BUCKETS): +Inf)."""
    return bisect.bisect_left(BUCKETS, seconds)


class Recorder:
    """One process's counts; every method is safe from any thread (the event loop and the call workers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._delta = Delta()
        self._gauges: dict[Series, float] = {}  # kept across drains: a level, not a count

    def count(self, name: str, labels: Labels, n: float = 1) -> None:
        with self._lock:
            self._count(name, labels, n)

    def observe(self, name: str, labels: Labels, seconds: float) -> None:
        with self._lock:
            self._observe(name, labels, seconds)

    def cold_start(self, function: str) -> None:
        self.count("fn_cold_starts_total", (function,))

    def call_started(self, function: str) -> None:
        with self._lock:
            key = ("fn_requests_in_flight", (function,))
            if key in self._gauges or len(self._gauges) < MAX_SERIES:
                self._gauges[key] = self._gauges.get(key, 0) + 1

    def call_finished(self, function: str, version: str, code: int, seconds: float) -> None:
        """The end of a call that ``call_started`` counted: one request with its status code, and its duration."""
        with self._lock:
            key = ("fn_requests_in_flight", (function,))
            if key in self._gauges:
                self._gauges[key] -= 1
            self._count("fn_requests_total", (function, version, str(code)), 1)
            self._observe("fn_request_duration_seconds", (function, version), seconds)

    @contextmanager
    def call(self, function: str, version: str) -> Iterator[list[int]]:
        """Counts the block as one call with the status code it sets in ``code[0]``: 500 if it raises before
        setting one, 499 if it is cancelled (the caller went away or stopped waiting)."""
        started = time.perf_counter()
        code = [500]
        self.call_started(function)
        try:
            yield code
        except asyncio.CancelledError:
            code[0] = CANCELLED
            raise
        finally:
            self.call_finished(function, version, code[0], time.perf_counter() - started)

    def drain(self) -> Delta:
        """The counts since the last drain, and the gauges now."""
        with self._lock:
            delta, self._delta = self._delta, Delta()
            delta.gauges = dict(self._gauges)
        return delta

    def _count(self, name: str, labels: Labels, n: float) -> None:
        counters = self._delta.counters
        key = (name, labels)
        if key in counters or self._delta._room():
            counters[key] = counters.get(key, 0) + n
        else:
            self._delta.dropped += 1

    def _observe(self, name: str, labels: Labels, seconds: float) -> None:
        key = (name, labels)
        buckets = self._delta.histograms.get(key)
        if buckets is None:
            if not self._delta._room():
                self._delta.dropped += 1
                return
            buckets = self._delta.histograms[key] = [0.0] * (len(BUCKETS) + 2)
        buckets[bucket_of(seconds)] += 1
        buckets[-1] += seconds


Push = Callable[[str, int, Delta], object]  # (source, sequence number, delta); raises when the hub did not take it


class MetricsShipper:
    """Pushes a recorder's deltas, numbered, to the hub; a push that fails is kept and sent again unchanged."""

    def __init__(self, recorder: Recorder, push: Push, source: str | None = None,
                 interval_s: float = PUSH_INTERVAL_S) -> None:
        self.recorder = recorder
        self.source = source or uuid.uuid4().hex[:12]
        self._push = push
        self._lock = threading.Lock()  # the shipper's thread, a wake-up and the final push at exit
        self._seq = 0
        self._unsent = Delta()  # drained, not yet in a push
        self._pending: tuple[int, Delta] | None = None  # sent, not yet confirmed: sent again as it is
        self._sent_gauges: dict[Series, float] = {}
        self._ticker = Periodic(self.ship, interval_s, "fn-metrics-shipper")

    def start(self) -> None:
        self._ticker.start()

    def wake(self) -> None:
        self._ticker.wake()

    def stop(self) -> None:
        self._ticker.stop()

    def ship(self) -> bool:
        """One push (and the next at once if that one went through); False when the hub did not take it."""
        with self._lock:
            self._unsent.add(self.recorder.drain())
            for _ in range(2):
                if self._pending is None:
                    if not self._worth_sending():
                        return True
                    self._seq += 1
                    self._pending, self._unsent = (self._seq, self._unsent), Delta()
                seq, delta = self._pending
                try:
                    self._push(self.source, seq, delta)
                except Exception:  # noqa: BLE001 - kept for the next tick; the hub away is not the caller's problem
                    return False
                self._pending = None
                self._sent_gauges = delta.gauges
            return True

    def _worth_sending(self) -> bool:
        gauges = self._unsent.gauges
        # Gauges above zero are sent every tick, so the hub knows this process is alive and still busy.
        return self._unsent.has_counts() or gauges != self._sent_gauges or any(v > 0 for v in gauges.values())


@dataclass
class _Source:
    seq: int
    at: float
    gauges: dict[Series, float]


class Totals:
    """The hub's sums of every process's pushes, and each live process's gauges (async actor: no locks)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._sums = Delta()
        self._sources: dict[str, _Source] = {}  # by last push, oldest first

    def add(self, source: str, seq: int, delta: Delta) -> bool:
        """Apply one push; False (and nothing applied) for a push from *source* already applied."""
        now = self._clock()
        known = self._sources.pop(source, None)
        if known is not None and seq <= known.seq:
            known.at = now  # a resent push: not counted again, but the process is alive
            self._sources[source] = known
            return False
        self._sums.add(delta, gauges=False)
        self._sources[source] = _Source(seq, now, dict(delta.gauges))
        self._expire(now)
        return True

    def snapshot(self) -> Delta:
        """The sums, with the gauges of the processes heard from in the last GAUGE_STALE_S added up."""
        now = self._clock()
        self._expire(now)
        gauges: dict[Series, float] = {}
        for source in self._sources.values():
            if now - source.at <= GAUGE_STALE_S:
                for key, value in source.gauges.items():
                    gauges[key] = gauges.get(key, 0) + value
        return Delta(counters=dict(self._sums.counters), histograms={k: list(v) for k, v in self._sums.histograms.items()},
                     gauges=gauges, dropped=self._sums.dropped)

    def _expire(self, now: float) -> None:
        while self._sources:
            oldest = next(iter(self._sources))
            if now - self._sources[oldest].at <= SOURCE_FORGET_S and len(self._sources) <= MAX_SOURCES:
                break
            del self._sources[oldest]


# One recorder per process: a replica's calls and a flow run's steps both count here.
RECORDER = Recorder()
_shipper: MetricsShipper | None = None
_shipper_lock = threading.Lock()


def ship_to_hub(hub: Any) -> MetricsShipper:
    """Start this process's shipper to *hub* (a ``serving.hub.HubRef``), once; it pushes a last time at exit."""
    global _shipper
    with _shipper_lock:
        if _shipper is None:
            _shipper = MetricsShipper(RECORDER, lambda source, seq, delta: hub.call("add_metrics", source, seq, delta))
            _shipper.start()
            atexit.register(_shipper.stop)
        return _shipper



def ship_now() -> None:
    """Push this process's counts now, if it ships any (a replica being stopped: its last calls are done)."""
    if _shipper is not None:
        _shipper.ship()
