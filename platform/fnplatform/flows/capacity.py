"""Why a step's call has no replica to go to: what one replica asks for against what the cluster has free.

A step whose function has no running replica and whose replica cannot be placed waits in Serve's
queue with nothing to show for it; the run's state says which pool lacked what instead, and a step
that times out says so in its error. Placement is Ray's: this only explains it, from public APIs.
"""

from __future__ import annotations

from typing import Any

from fn import FunctionSpec
from fnplatform.pools import pool_resource

MIB = 2**20


def shortfall(spec: FunctionSpec, available: dict[str, float], total: dict[str, float]) -> str | None:
    """What a new replica of *spec* lacks among the cluster's free resources; None if it would fit."""
    pool = pool_resource(spec.pool)
    if pool not in total:
        return f"no node is in pool {spec.pool!r}"
    wants = [("CPU", spec.cpus, "CPUs", 1.0), ("GPU", spec.gpus, "GPUs", 1.0)]
    if spec.memory_mb:
        wants.append(("memory", spec.memory_mb * MIB, "MiB of memory", MIB))
    lacking = [f"{need / unit:g} {label} ({available.get(key, 0.0) / unit:g} of {total.get(key, 0.0) / unit:g} free)"
               for key, need, label, unit in wants if need and available.get(key, 0.0) + 1e-9 < need]
    if not lacking:
        return None
    return (f"pool {spec.pool!r} has no room for a {spec.name} replica: it needs " + ", ".join(lacking)
            + "; replicas of other functions hold the rest until their calls end and they pass idle_timeout_s")


def running_replicas(function: str) -> int | None:
    """Running replicas of the function's deployment; None when Serve does not know it."""
    from ray import serve

    app = serve.status().applications.get(function)
    deployment = app.deployments.get(function) if app else None
    if deployment is None:
        return None
    states: dict[Any, int] = deployment.replica_states
    return sum(count for state, count in states.items() if str(getattr(state, "value", state)) == "RUNNING")


def placement_note(spec: FunctionSpec) -> str | None:
    """Why *spec*'s calls may be waiting: set only when it has no running replica and one would not fit."""
    import ray

    if running_replicas(spec.name):
        return None
    return shortfall(spec, ray.available_resources(), ray.cluster_resources())  # type: ignore[no-untyped-call]


__all__ = ["placement_note", "running_replicas", "shortfall"]
