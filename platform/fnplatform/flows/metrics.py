"""What a flow run counts (``serving.metrics``): its steps' durations and how it ended, shipped to the hub
from the run actor's process like a replica's counts."""

from __future__ import annotations

import sys

from fnplatform.serving import metrics
from fnplatform.serving.hub import lazy_hub


def _shipper() -> metrics.MetricsShipper | None:
    ray = sys.modules.get("ray")  # not imported here: a process without Ray loaded is no run actor
    if ray is None or not ray.is_initialized():  # tests and local runs: the counts stay in metrics.RECORDER
        return None
    return metrics.ship_to_hub(lazy_hub())


def step_succeeded(flow: str, step: str, seconds: float) -> None:
    """A step's call returned; *seconds* from its last attempt's start."""
    metrics.RECORDER.observe("fn_flow_step_duration_seconds", (flow, step), seconds)
    _shipper()


def run_finished(flow: str, status: str) -> None:
    """A run's end was recorded; pushed at once, since a finished run's actor ends soon after."""
    metrics.RECORDER.count("fn_flow_runs_total", (flow, status))
    shipper = _shipper()
    if shipper is not None:
        shipper.wake()
