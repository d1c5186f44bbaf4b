"""The console's time series: the hub's cumulative request counts, sampled every ``SAMPLE_INTERVAL_S`` into a
bounded ring per function, and turned into per-interval rates and latency quantiles.

The hub only holds totals since it started (``serving.metrics.Totals``), so a point is the difference of two
samples, as Prometheus' ``rate()`` would compute it: a total lower than the one before means the hub restarted
(its counts begin again at zero), and that interval counts the new total from zero. Quantiles interpolate
linearly inside a bucket, as ``histogram_quantile()`` does, so the console and Grafana agree.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from itertools import pairwise

from fnplatform.serving.metrics import BUCKETS, Delta

SAMPLE_INTERVAL_S = 10.0
KEPT_SAMPLES = 360  # an hour at one sample every 10 s
MAX_FUNCTIONS = 1000  # functions followed at once; a function missing from the latest sample is dropped
ERROR_CODE = 500  # a status from this one up is the platform's or the function's failure; 4xx are the caller's


@dataclass(frozen=True)
class Sample:
    """One function's totals at one time: calls, failed calls, and the duration buckets (not cumulative; the
    last is +Inf, as in ``serving.metrics``)."""

    at: float
    requests: float
    errors: float
    buckets: tuple[float, ...]


@dataclass(frozen=True)
class Point:
    """One interval between two samples: None where the interval had no calls to measure."""

    at: float  # the end of the interval
    seconds: float
    requests: float
    rate: float  # calls per second
    error_rate: float | None  # failed calls / calls
    p50: float | None  # seconds
    p99: float | None


def quantile(q: float, buckets: list[float] | tuple[float, ...], bounds: tuple[float, ...] = BUCKETS) -> float | None:
    """The *q*-quantile (0..1) of per-bucket counts (the last bucket is +Inf), interpolated linearly within the
    bucket it falls in, the first bucket starting at 0; in the +Inf bucket, the highest finite bound (all that
    is known). None without observations."""
    total = sum(buckets)
    if total <= 0:
        return None
    rank = q * total
    cumulative = 0.0
    for index, count in enumerate(buckets):
        if cumulative + count >= rank and count > 0:
            if index >= len(bounds):
                return bounds[-1]
            lower = bounds[index - 1] if index > 0 else 0.0
            return lower + (bounds[index] - lower) * (rank - cumulative) / count
        cumulative += count
    return bounds[-1]


def samples_of(totals: Delta, at: float) -> dict[str, Sample]:
    """Each function's sample from the hub's totals, its versions summed (a redeploy does not break the line)."""
    requests: dict[str, float] = {}
    errors: dict[str, float] = {}
    buckets: dict[str, list[float]] = {}
    for (name, labels), value in totals.counters.items():
        if name != "fn_requests_total":
            continue
        function, _version, code = labels
        requests[function] = requests.get(function, 0.0) + value
        if code.isdigit() and int(code) >= ERROR_CODE:
            errors[function] = errors.get(function, 0.0) + value
    for (name, labels), counts in totals.histograms.items():
        if name != "fn_request_duration_seconds":
            continue
        mine = buckets.setdefault(labels[0], [0.0] * (len(counts) - 1))
        for index, count in enumerate(counts[:-1]):  # the last value is the sum of durations: not needed here
            mine[index] += count
    return {function: Sample(at, requests.get(function, 0.0), errors.get(function, 0.0),
                             tuple(buckets.get(function, ())))
            for function in sorted(set(requests) | set(buckets))}


def point(before: Sample, after: Sample) -> Point:
    """The interval from *before* to *after*; a total that went down means the hub restarted in between."""
    reset = after.requests < before.requests or after.errors < before.errors or len(after.buckets) != len(before.buckets) \
        or any(a < b for a, b in zip(after.buckets, before.buckets, strict=False))
    requests = after.requests if reset else after.requests - before.requests
    errors = after.errors if reset else after.errors - before.errors
    counts = list(after.buckets) if reset else [a - b for a, b in zip(after.buckets, before.buckets, strict=True)]
    seconds = max(after.at - before.at, 1e-9)
    return Point(at=after.at, seconds=seconds, requests=requests, rate=requests / seconds,
                 error_rate=errors / requests if requests > 0 else None,
                 p50=quantile(0.5, counts), p99=quantile(0.99, counts))


class History:
    """The last ``KEPT_SAMPLES`` samples of every function; fed by the control plane's housekeeping thread and
    read by the console's requests, hence the lock."""

    def __init__(self, kept: int = KEPT_SAMPLES) -> None:
        self._kept = kept
        self._lock = threading.Lock()
        self._samples: dict[str, deque[Sample]] = {}

    def add(self, totals: Delta, at: float) -> None:
        """Record the hub's totals as they are at *at* (seconds since the epoch)."""
        current = samples_of(totals, at)
        with self._lock:
            for function in list(self._samples):
                if function not in current:  # removed, or the hub restarted and it has not been called since
                    del self._samples[function]
            for function, sample in current.items():
                ring = self._samples.get(function)
                if ring is None:
                    if len(self._samples) >= MAX_FUNCTIONS:
                        continue
                    ring = self._samples[function] = deque(maxlen=self._kept + 1)  # n+1 samples: n intervals
                ring.append(sample)

    def points(self, function: str) -> list[Point]:
        """The function's intervals, oldest first (empty until it has two samples)."""
        with self._lock:
            samples = list(self._samples.get(function, ()))
        return [point(a, b) for a, b in pairwise(samples)]

    def latest(self, function: str) -> Point | None:
        with self._lock:
            ring = self._samples.get(function)
            pair = (ring[-2], ring[-1]) if ring is not None and len(ring) >= 2 else None
        return point(*pair) if pair else None
