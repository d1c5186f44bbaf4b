"""``GET /metrics``: the data plane's counts (summed in the hub, ``serving.metrics``) and the control plane's
own (deploy jobs), in Prometheus' text format. Only the control plane imports ``prometheus_client``."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from fnplatform.serving.metrics import BUCKETS, COUNTERS, GAUGES, HISTOGRAMS, Delta, Recorder

__all__ = ["CONTENT_TYPE", "ControlMetrics", "render", "replica_gauges"]

# The classic text format (what generate_latest writes), which every Prometheus version reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# The control plane's own metrics, declared like the data plane's: name -> label names.
DEPLOY_COUNTERS: dict[str, tuple[str, ...]] = {"fn_deploys_total": ("status",)}
DEPLOY_HISTOGRAMS: dict[str, tuple[str, ...]] = {"fn_deploy_duration_seconds": ()}

HELP = {
    "fn_requests_total": "Calls answered by function replicas (HTTP and handle calls), by status code (499: caller gone)",
    "fn_request_duration_seconds": "Time a replica took to answer a call, from receiving it to its response",
    "fn_requests_in_flight": "Calls replicas are answering now",
    "fn_cold_starts_total": "Replicas that started and loaded their function (setup() included)",
    "fn_cold_start_seconds": "A replica start by phase (scale, place, start, fetch, import, setup, route; total: from "
                             "the first waiting call's arrival until it reached the replica), once per start",
    "fn_replicas": "Replicas of each function by state (starting, running, stopping), as Serve's controller reports them",
    "fn_flow_runs_total": "Flow runs that ended, by status (succeeded, failed)",
    "fn_flow_step_duration_seconds": "Time a flow step's call took until it returned (its last attempt)",
    "fn_deploys_total": "Deploy jobs that ended, by status (succeeded, failed)",
    "fn_deploy_duration_seconds": "Time a deploy job took from its start to its end",
    "fn_metrics_dropped_total": "Samples not counted because a process or the hub already held too many label sets",
    "fn_data_plane_metrics_up": "1 when the hub answered with the data plane's metrics for this scrape, else 0",
    "fn_jobs": "Jobs kept in the database by function and status (queued, running, succeeded, failed: dead letters, "
               "cancelled); ended ones until their retention ends",
}
Jobs = dict[tuple[str, str], int]  # (function, status) -> jobs


class ControlMetrics:
    """The control plane's own counts since it started (deploy jobs), safe from any thread."""

    def __init__(self) -> None:
        self._recorder = Recorder()
        self._totals = Delta()
        self._lock = threading.Lock()

    def deploy_finished(self, status: str, seconds: float) -> None:
        self._recorder.count("fn_deploys_total", (status,))
        self._recorder.observe("fn_deploy_duration_seconds", (), seconds)

    def totals(self) -> Delta:
        with self._lock:
            self._totals.add(self._recorder.drain())
            return Delta(counters=dict(self._totals.counters),
                         histograms={k: list(v) for k, v in self._totals.histograms.items()})


# Serve's replica states, as fn_replicas names them (a replica being updated or recovered is not serving yet).
REPLICA_STATES = {"STARTING": "starting", "UPDATING": "starting", "RECOVERING": "starting", "RUNNING": "running",
                  "PENDING_MIGRATION": "running", "STOPPING": "stopping"}
Replicas = dict[tuple[str, str], float]  # (function, state) -> replicas


def replica_gauges(applications: Mapping[str, Any], functions: Iterable[str]) -> Replicas:
    """``fn_replicas`` from Serve's instance details: every state of every active function, 0 included, so a
    function scaled to zero reads 0 running rather than nothing."""
    counts: Replicas = {(function, state): 0.0 for function in functions for state in ("starting", "running", "stopping")}
    for name, app in applications.items():
        deployment = ((app or {}).get("deployments") or {}).get(name) or {}
        for replica in deployment.get("replicas") or []:
            state = REPLICA_STATES.get(str(replica.get("state")))
            if state is not None and (name, state) in counts:
                counts[(name, state)] += 1
    return counts


def _label(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(float(value))


class _Snapshot(Collector):
    """One scrape's families, from the deltas already summed (prometheus_client only formats them)."""

    def __init__(self, data_plane: Delta | None, control: Delta, replicas: Replicas | None, jobs: Jobs | None) -> None:
        self._data_plane = data_plane
        self._control = control
        self._replicas = replicas
        self._jobs = jobs

    def collect(self) -> Iterable[Metric]:
        parts = [(self._data_plane or Delta(), COUNTERS, HISTOGRAMS, GAUGES), (self._control, DEPLOY_COUNTERS,
                                                                                DEPLOY_HISTOGRAMS, {})]
        for delta, counters, histograms, gauges in parts:
            yield from _counters(delta, counters)
            yield from _histograms(delta, histograms)
            yield from _gauges(delta, gauges)
        dropped = CounterMetricFamily("fn_metrics_dropped", HELP["fn_metrics_dropped_total"])
        dropped.add_metric([], (self._data_plane.dropped if self._data_plane else 0) + self._control.dropped)
        yield dropped
        yield GaugeMetricFamily("fn_data_plane_metrics_up", HELP["fn_data_plane_metrics_up"],
                                value=0 if self._data_plane is None else 1)
        replicas = GaugeMetricFamily("fn_replicas", HELP["fn_replicas"], labels=["function", "state"])
        for (function, state), count in sorted((self._replicas or {}).items()):
            replicas.add_metric([function, state], count)
        yield replicas
        jobs = GaugeMetricFamily("fn_jobs", HELP["fn_jobs"], labels=["function", "status"])
        for (function, status), count in sorted((self._jobs or {}).items()):
            jobs.add_metric([function, status], count)
        yield jobs


def _series(values: dict[tuple[str, tuple[str, ...]], object], name: str) -> list[tuple[str, ...]]:
    return sorted(labels for metric, labels in values if metric == name)


def _counters(delta: Delta, declared: dict[str, tuple[str, ...]]) -> Iterator[Metric]:
    for name, labels in declared.items():
        # CounterMetricFamily adds the "_total" suffix itself
        family = CounterMetricFamily(name.removesuffix("_total"), HELP[name], labels=list(labels))
        for values in _series(dict(delta.counters), name):
            family.add_metric(list(values), delta.counters[(name, values)])
        yield family


def _histograms(delta: Delta, declared: dict[str, tuple[str, ...]]) -> Iterator[Metric]:
    bounds = [*BUCKETS, float("inf")]
    for name, labels in declared.items():
        family = HistogramMetricFamily(name, HELP[name], labels=list(labels))
        for values in _series(dict(delta.histograms), name):
            counts = delta.histograms[(name, values)]
            cumulative, buckets = 0.0, []
            for bound, count in zip(bounds, counts[:-1], strict=True):
                cumulative += count
                buckets.append((_label(bound), cumulative))
            family.add_metric(list(values), buckets, counts[-1])
        yield family


def _gauges(delta: Delta, declared: dict[str, tuple[str, ...]]) -> Iterator[Metric]:
    for name, labels in declared.items():
        family = GaugeMetricFamily(name, HELP[name], labels=list(labels))
        for values in _series(dict(delta.gauges), name):
            family.add_metric(list(values), delta.gauges[(name, values)])
        yield family


def render(data_plane: Delta | None, control: Delta, replicas: Replicas | None = None, jobs: Jobs | None = None) -> bytes:
    """The text a Prometheus scrape gets; *data_plane* is None when the hub did not answer (its families are
    then empty and ``fn_data_plane_metrics_up`` is 0, so the deploy metrics are still scraped), *replicas*
    None when Serve's controller did not (``fn_replicas`` is then empty), *jobs* None when the database did not."""
    return generate_latest(_Snapshot(data_plane, control, replicas, jobs))
