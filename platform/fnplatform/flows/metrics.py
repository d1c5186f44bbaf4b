"""What flow runs count (``serving.metrics``): each step's duration and how each run ended. A run host
ships its process's counts to the hub like a replica does (``flows.hosts`` starts the shipper)."""

from __future__ import annotations

from fnplatform.serving import metrics


def step_succeeded(flow: str, step: str, seconds: float) -> None:
    """A step's call returned; *seconds* from its last attempt's start."""
    metrics.RECORDER.observe("fn_flow_step_duration_seconds", (flow, step), seconds)


def run_finished(flow: str, status: str) -> None:
    """A run's end was recorded."""
    metrics.RECORDER.count("fn_flow_runs_total", (flow, status))
