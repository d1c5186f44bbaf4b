"""Run hosts (flows/hosts.py), in-process: which host holds a run, that a host holds many runs on one
database engine and store, forgets a run once its end is recorded, and loads it again from its
checkpoint when asked after a restart. The cluster side of each run is stood in by a small runtime.
No Ray (the actor itself is exercised by tests/integration/test_flows.py)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fn
from fnplatform.flows import hosts
from fnplatform.flows import run as flow_run
from fnplatform.flows.hosts import FlowRuns, host_count, host_name
from fnplatform.flows.state import FlowState
from fnplatform.serving import metrics

from .test_flow_run import LocalRuntime, documents_flow, runtime


class ExitingRuntime(LocalRuntime):
    def __init__(self, on_exit: Callable[[], None]) -> None:
        super().__init__(runtime().functions)
        self._on_exit = on_exit

    def exit(self) -> None:
        super().exit()
        self._on_exit()


@pytest.fixture
def state(tmp_path: Path) -> FlowState:
    return FlowState(f"sqlite:///{tmp_path / 'flows.db'}")


def new_host(state: FlowState, tmp_path: Path) -> FlowRuns:
    return FlowRuns({"kind": "local", "root": str(tmp_path / "store")}, database_url=state.url, runtime=ExitingRuntime)


async def _settle(host: FlowRuns, run_id: str) -> None:
    run = host._runs[run_id]
    deadline = asyncio.get_running_loop().time() + 30
    while run._tasks and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert not run._tasks


def test_a_run_always_goes_to_the_same_host_and_the_hosts_share_the_runs() -> None:
    ids = [f"{n:016x}" for n in range(2000)]
    assert [host_name(i, 2) for i in ids] == [host_name(i, 2) for i in ids]
    spread = Counter(host_name(i, 2) for i in ids)
    assert set(spread) == {"fn-runs-0", "fn-runs-1"}
    assert min(spread.values()) > 800  # about half each
    assert {host_name(i, 1) for i in ids} == {"fn-runs-0"}


@pytest.mark.parametrize("raw", ["abc", "0", "65", "-1", "1.5"])
def test_a_bad_host_count_names_the_variable_and_what_is_allowed(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FN_FLOW_RUN_HOSTS", raw)
    with pytest.raises(fn.ConfigError, match=r"FN_FLOW_RUN_HOSTS is .* from 1 to 64 .* the same in every process"):
        host_count()


def test_the_host_count_defaults_to_two_and_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FN_FLOW_RUN_HOSTS", raising=False)
    assert host_count() == hosts.DEFAULT_HOSTS == 2
    monkeypatch.setenv("FN_FLOW_RUN_HOSTS", "5")
    assert host_count() == 5


def test_one_host_runs_many_runs_on_one_engine_and_forgets_each_once_it_is_recorded(
        state: FlowState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flow_run, "FINISHED_GRACE_S", 0.05)
    host = new_host(state, tmp_path)
    metrics.RECORDER.drain()
    ids = [state.create_run(documents_flow()) for _ in range(5)]

    async def give(run_id: str, name: str, value: str) -> None:
        assert state.add_input(run_id, name, value_json=json.dumps(value))
        await host.put(run_id, name)
        await _settle(host, run_id)

    async def scenario() -> list[dict[str, Any]]:
        for n, run_id in enumerate(ids):
            await give(run_id, "front", "ab" * (n + 1))
        assert await host.held() == sorted(ids)  # each waits for its second input
        engines = {id(run._db) for run in host._runs.values()} | {id(host._db)}
        assert len(engines) == 1, "every run of a host shares its database client"
        waits = [asyncio.create_task(host.wait(run_id, 10)) for run_id in ids]
        for run_id in ids:
            await give(run_id, "back", "c")
        finals = await asyncio.gather(*waits)
        for _ in range(200):  # each run is forgotten FINISHED_GRACE_S after its end is recorded
            if not await host.held():
                break
            await asyncio.sleep(0.01)
        return finals

    finals = asyncio.run(scenario())
    assert [f["output"] for f in finals] == [{"total": 2 * (n + 1) + 1} for n in range(5)]
    assert host._runs == {}
    counted = metrics.RECORDER.drain()  # what the host's shipper would push to the hub
    assert counted.counters == {("fn_flow_runs_total", ("unit-docs", "succeeded")): 5}
    assert {labels: sum(buckets[:-1]) for (_, labels), buckets in counted.histograms.items()} == {
        ("unit-docs", "measure-front"): 5, ("unit-docs", "measure-back"): 5, ("unit-docs", "decide"): 5}
    for run_id in ids:
        record = state.run(run_id)
        assert record is not None and record.status == "succeeded"


def test_a_restarted_host_loads_a_run_from_its_checkpoint_and_finishes_it(state: FlowState, tmp_path: Path) -> None:
    run_id = state.create_run(documents_flow())

    async def before_the_crash() -> None:
        host = new_host(state, tmp_path)
        assert state.add_input(run_id, "front", value_json=json.dumps("abcd"))
        await host.put(run_id, "front")
        await _settle(host, run_id)

    asyncio.run(before_the_crash())
    restarted = new_host(state, tmp_path)  # Ray restarts a dead host empty

    async def after() -> dict[str, Any]:
        assert await restarted.held() == []
        assert state.add_input(run_id, "back", value_json=json.dumps("xy"))
        await restarted.put(run_id, "back")
        await _settle(restarted, run_id)
        return await restarted.wait(run_id, 10)

    final = asyncio.run(after())
    assert final["status"] == "succeeded" and final["output"] == {"total": 6}
    assert final["steps"]["measure-front"]["attempts"] == 1, "a checkpointed step does not run again"


def test_a_run_the_registry_does_not_know_is_not_held(state: FlowState, tmp_path: Path) -> None:
    host = new_host(state, tmp_path)
    with pytest.raises(KeyError, match="not in the registry"):
        asyncio.run(host.state("0123456789abcdef"))
    assert host._runs == {}
