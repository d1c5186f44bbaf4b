"""Room for replicas: the local node's default CPUs, and a flow step that cannot be placed saying why. No Ray."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import fn
from fnplatform.control.local import default_cpus
from fnplatform.flows import capacity
from fnplatform.flows import run as flow_run
from fnplatform.flows.state import FlowState

from .test_flow_run import SilentRuntime, _put, new_run, runtime

TOTAL = {"CPU": 4.0, "GPU": 1.0, "memory": 8 * 2**30, "pool_cpu": 1000.0, "pool_gpu": 1000.0}


def spec(**options: Any) -> fn.FunctionSpec:
    return fn.FunctionSpec(name="kyc-front", **options)


def test_the_local_node_declares_twice_its_cores_and_at_least_four_cpus() -> None:
    # The identity flow's five steps ask for 3.75 CPUs: they must all fit on a 2-core machine's defaults.
    assert default_cpus(1) == 4 and default_cpus(2) == 4 and default_cpus(3) == 6 and default_cpus(16) == 32
    assert default_cpus() >= 4


def test_a_replica_that_fits_has_no_shortfall() -> None:
    assert capacity.shortfall(spec(cpus=1, pool="cpu"), {**TOTAL, "CPU": 1.0}, TOTAL) is None


def test_the_shortfall_names_the_pool_the_function_and_each_resource_lacking() -> None:
    note = capacity.shortfall(spec(cpus=1, gpus=0.5, memory_mb=1024, pool="gpu"),
                              {**TOTAL, "CPU": 0.25, "GPU": 0.25, "memory": 512 * 2**20}, TOTAL)
    assert note is not None
    assert note.startswith("pool 'gpu' has no room for a kyc-front replica: it needs ")
    assert "1 CPUs (0.25 of 4 free)" in note and "0.5 GPUs (0.25 of 1 free)" in note
    assert "1024 MiB of memory (512 of 8192 free)" in note and "idle_timeout_s" in note


def test_a_pool_no_node_is_in_is_named() -> None:
    assert capacity.shortfall(spec(pool="api"), TOTAL, TOTAL) == "no node is in pool 'api'"


@pytest.mark.timeout(20)
def test_a_step_waiting_for_room_says_which_pool_lacks_what_and_its_timeout_repeats_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = FlowState(f"sqlite:///{tmp_path / 'flows.db'}")
    monkeypatch.setattr(flow_run, "WATCHDOG_INTERVAL_S", 0.05)
    monkeypatch.setattr(flow_run, "STEP_PLACEMENT_S", 1.0)
    monkeypatch.setattr(flow_run, "STEP_TIMEOUT_FALLBACK_S", 0.0)
    monkeypatch.setattr(flow_run, "PLACEMENT_NOTE_AFTER_S", 0.0)
    asked: list[str] = []

    def note(function: fn.FunctionSpec) -> str | None:
        asked.append(function.name)
        return capacity.shortfall(function, {**TOTAL, "CPU": 0.5}, TOTAL)

    monkeypatch.setattr(flow_run, "placement_note", note)
    local = SilentRuntime(runtime().functions)
    run = new_run(state, tmp_path, local)
    run._specs["measure"] = fn.FunctionSpec(name="measure", cpus=1, pool="cpu")
    seen: list[dict[str, Any]] = []

    async def watch_then_put() -> dict[str, Any]:
        async def sample() -> None:
            while True:
                if run._steps:  # loaded from its checkpoint
                    seen.append(dict(run._steps["measure-front"]))
                await asyncio.sleep(0.05)
        sampler = asyncio.get_running_loop().create_task(sample())
        try:
            return await _put(run, "front")
        finally:
            sampler.cancel()

    assert state.add_input(run.run_id, "front", value_json=json.dumps("abcd"))
    failed = asyncio.run(watch_then_put())
    expected = "pool 'cpu' has no room for a measure replica: it needs 1 CPUs (0.5 of 4 free)"
    assert asked and set(asked) == {"measure"}
    assert any(expected in step.get("waiting_for", "") for step in seen if step["status"] == "running"), seen
    assert failed["status"] == "failed" and expected in failed["error"]["message"]
    assert "waiting_for" not in failed["steps"]["measure-front"]
