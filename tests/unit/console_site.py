"""A control plane with something to show in the console, and no Ray: a real registry (SQLite) with two
deployed functions (add with a second version taking 10 % of its calls), calls counted in the in-process hub
and sampled twice, their replicas' log lines, a flow with a finished run, and keys of each kind. The unit
tests and the browser test (tests/e2e) share it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import fn
from fn._flow import StepSpec
from fnplatform.control.console.history import History
from fnplatform.control.plane import ControlPlane
from fnplatform.control.settings import PlatformSettings
from fnplatform.flows.state import FlowState
from fnplatform.serving import ray_compat
from fnplatform.serving.metrics import BUCKETS, Delta, bucket_of
from fnplatform.storage.blobs import StoreConfig, open_store
from fnplatform.storage.db import utcnow
from fnplatform.storage.registry import Registry

from .test_control_plane import FakeDeployer, InProcessHub

SHA = "ab" * 32


@dataclass
class Site:
    plane: ControlPlane
    history: History
    keys: dict[str, str]  # admin, deploy, invoke, scoped, other -> plaintext
    run_id: str


def serve_details() -> dict[str, Any]:
    """Serve's answer for the two functions: 'add' with one replica running of one, 'mul' scaled to zero."""
    def app(name: str, replicas: int) -> dict[str, Any]:
        return {"status": "RUNNING", "deployments": {name: {"target_num_replicas": replicas, "replicas": [
            {"replica_id": f"{name}-r{i}", "state": "RUNNING", "pid": 4242, "node_ip": "10.0.0.7",
             "start_time_s": 1_700_000_000.0} for i in range(replicas)]}}}

    return {"applications": {"add": app("add", 1), "mul": app("mul", 0)}}


def _calls(durations: list[float], failed: int = 0) -> Delta:
    buckets = [0.0] * (len(BUCKETS) + 2)
    for seconds in durations:
        buckets[bucket_of(seconds)] += 1
        buckets[-1] += seconds
    counters = {("fn_requests_total", ("add", "1", "200")): float(len(durations) - failed)}
    if failed:
        counters[("fn_requests_total", ("add", "1", "500"))] = float(failed)
    return Delta(counters=counters, histograms={("fn_request_duration_seconds", ("add", "1")): buckets})


def build_site(tmp: Path) -> Site:
    settings = PlatformSettings.from_env(home=tmp / "home", store=StoreConfig(kind="local", root=str(tmp / "store")))
    settings.home.mkdir(parents=True)
    registry = Registry(settings.database_url)
    hub = InProcessHub()
    plane = ControlPlane(settings, registry, open_store(settings.store), FakeDeployer(), hub,  # type: ignore[arg-type]
                         FlowState(settings.database_url))
    for name in ("add", "mul"):
        version = registry.create_version(fn.FunctionSpec(name=name, entrypoint=f"main:{name}"), SHA)
        registry.finish_version(name, version.number)
    # add's version 2 takes 10 % of its calls beside version 1, the active one
    canary = registry.create_version(fn.FunctionSpec(name="add", entrypoint="main:add", cpus=0.5), "cd" * 32)
    registry.finish_version("add", canary.number)
    plane.traffic.set_split("add", {1: 100.0}, "admin key (a1b2)", "back to version 1")  # finished, v2 was active
    plane.traffic.set_split("add", {1: 90.0, canary.number: 10.0}, "admin key (a1b2)", "a canary by hand")
    keys = {role: registry.create_key(f"{role} key", role)[1] for role in ("admin", "deploy", "invoke")}
    keys["scoped"] = registry.create_key("scoped key", "invoke", functions=["add"], flows=[])[1]
    keys["other"] = registry.create_key("other key", "invoke")[1]
    owner = registry.verify_key(keys["invoke"])
    assert owner is not None

    # Calls sampled every 10 s: a few quiet intervals, then 40 calls (4 of them failed) in the last one.
    history = History()
    for seq, count in enumerate((10, 20, 5, 30, 15), start=1):
        asyncio.run(hub.hub.add_metrics("replica-1", seq, _calls([0.004] * count)))
        history.add(hub.metrics(), 1_700_000_000.0 + 10 * seq)
    asyncio.run(hub.hub.add_metrics("replica-1", 9, _calls([0.02] * 30 + [0.2] * 10, failed=4)))
    history.add(hub.metrics(), 1_700_000_060.0)
    asyncio.run(hub.hub.push_logs("add", [
        "2026-12-01T06:00:00.001Z INFO    replica=add-r0 request=req0001 POST /add -> 200 in 3.2 ms, cold start: "
        "total=1.21, scale=0.66, place=0.02, start=0.12, fetch=0.01, import=0.05, setup=0.00, route=0.35",
        "2026-12-01T06:00:00.002Z INFO    replica=add-r0 request=req0002 hello from the user's code",
        "2026-12-01T06:00:01.000Z INFO    replica=add-r0 request=req0003 call add -> ok in 2.5 ms",
        "2026-12-01T06:00:02.000Z INFO    replica=add-r0 request=req0004 POST /add -> 422 in 0.9 ms",
    ]))

    flow = fn.FlowSpec(name="pair", inputs=("a",), output="total", ttl_s=3600, max_input_bytes=1024, steps=(
        StepSpec(name="double", function="mul", inputs={"x": "input:a"}, retries=1),
        StepSpec(name="total", function="add", inputs={"a": "step:double", "b": "input:a"}, retries=1)))
    plane.flows.put_flow(flow, SHA)
    run_id = plane.flows.create_run(flow, owner=owner.id)
    plane.flows.add_input(run_id, "a", value_json="3")
    plane.flows.record_step(run_id, "double", attempts=1, value_json="6")
    plane.flows.record_step(run_id, "total", attempts=2, value_json="9")
    plane.flows.finish_run(run_id, output_json="9")
    _spread_times(plane.flows, run_id)
    return Site(plane, history, keys, run_id)


def _spread_times(flows: FlowState, run_id: str) -> None:
    """The run was recorded in a few ms: give it times a person can see on the timeline (0.5 s apart)."""
    from fnplatform.flows.state import _Run, _Value

    start = utcnow() - timedelta(seconds=10)
    with flows._session() as session:
        run = session.get(_Run, run_id)
        assert run is not None
        run.created_at = start
        for name, seconds in (("a", 0.5), ("double", 1.5), ("total", 2.25)):
            value = session.get(_Value, (run_id, name))
            assert value is not None
            value.created_at = start + timedelta(seconds=seconds)


def patch_serve(monkeypatch: Any) -> None:
    monkeypatch.setattr(ray_compat, "serve_instance_details", lambda *a, **k: serve_details())
