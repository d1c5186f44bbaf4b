"""Versions and traffic in the control plane (control.traffic) and the data plane's choice (serving.versions),
with no Ray: a real registry (SQLite), real bundles and deploy jobs, the deployer and hub stood in by the
control-plane tests' fakes, and real metric counts (serving.metrics' Recorder) for the canary gates."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import fn
from fnplatform.bundles.packaging import build_bundle
from fnplatform.control.plane import ControlPlane, DeployJob
from fnplatform.control.rollout_gates import parse_percent
from fnplatform.control.settings import PlatformSettings
from fnplatform.flows.state import FlowState
from fnplatform.serving.metrics import Recorder
from fnplatform.serving.versions import Entry, parse_version
from fnplatform.storage.blobs import StoreConfig, open_store, put_bundle
from fnplatform.storage.registry import Registry

from .conftest import ProjectFactory
from .test_control_plane import FakeDeployer, InProcessHub

GATES = {"max_error_rate": 0.05, "max_p99_ratio": 1.5, "min_calls": 10}


@pytest.fixture
def plane(tmp_path: Path) -> ControlPlane:
    settings = PlatformSettings.from_env(home=tmp_path / "home", store=StoreConfig(kind="local", root=str(tmp_path / "s")))
    settings.home.mkdir()
    settings.keep_versions = 3
    return ControlPlane(settings, Registry(settings.database_url), open_store(settings.store), FakeDeployer(),  # type: ignore[arg-type]
                        InProcessHub(), FlowState(settings.database_url))  # type: ignore[arg-type]


@pytest.fixture
def deploy(plane: ControlPlane, make_project: ProjectFactory) -> Any:
    def run(answer: int, canary: dict[str, Any] | None = None) -> DeployJob:
        files = {"main.py": f"import fn\n\n\n@fn.function(cpus=0.25)\ndef ver() -> int:\n    return {answer}\n"}
        bundle = build_bundle(make_project(files))
        put_bundle(plane.store, bundle.sha256, bundle.data)
        job = plane.start_deploy(bundle.sha256, canary, "k1 (ci)")
        deadline = time.monotonic() + 30
        while job.state == "running" and time.monotonic() < deadline:
            job.wait(len(job.events), timeout=1)
        assert job.state == "succeeded", job.to_json()
        return job

    return run


@pytest.fixture(autouse=True)
def quick_drops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fnplatform.control.traffic.DROP_AFTER_S", 0.05)


def extras(plane: ControlPlane, expected: list[int]) -> list[int]:
    """The versions running beside the active one, once unused ones were dropped (DROP_AFTER_S after a change)."""
    deadline = time.monotonic() + 5
    while plane.deployer.extra_versions("ver") != expected and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.02)
    found: list[int] = plane.deployer.extra_versions("ver")  # type: ignore[attr-defined]
    return found


def published(plane: ControlPlane) -> dict[str, Any]:
    table: dict[str, Any] = plane.hub.read("traffic")  # type: ignore[attr-defined]
    return table


def test_versions_list_states_changes_and_who(plane: ControlPlane, deploy: Any) -> None:
    for answer in (1, 2):
        deploy(answer)
    listed = plane.traffic.versions("ver")
    assert [(v["version"], v["state"]) for v in listed["versions"]] == [(1, "retired"), (2, "active")]
    assert listed["versions"][0]["changes"] == ["first version"] and listed["versions"][1]["changes"] == ["code"]
    assert listed["versions"][1]["created_by"] == "k1 (ci)"
    assert published(plane)["ver"] == {"active": 2, "versions": [1, 2], "running": []}
    with pytest.raises(fn.NotFound):
        plane.traffic.versions("nope")


def test_rollback_goes_to_the_previous_active_version_and_back(plane: ControlPlane, deploy: Any) -> None:
    with pytest.raises(fn.NotFound):
        plane.traffic.rollback("ver", None, "k1")
    deploy(1)
    with pytest.raises(fn.Conflict, match="no earlier version"):
        plane.traffic.rollback("ver", None, "k1")
    deploy(2)
    deploy(3)
    done = plane.traffic.rollback("ver", None, "k1")
    assert (done["active"], done["previous"]) == (2, 3)
    assert plane.registry.active("ver").number == 2  # type: ignore[union-attr]
    assert plane.deployer.applied[-1] == ("ver", 2, True)  # type: ignore[attr-defined]  # no rebuild: v2's record
    assert plane.traffic.rollback("ver", None, "k1")["active"] == 3  # the one active before v2 came back
    with pytest.raises(fn.NotFound, match="versions that can: 1, 2, 3"):
        plane.traffic.rollback("ver", 9, "k1")
    history = plane.traffic.traffic("ver")["history"]
    assert [e["reason"] for e in history if e["action"] == "rollback"] == ["rollback from v3", "rollback from v2"]


def test_a_split_is_checked_runs_its_versions_and_100_makes_one_active(plane: ControlPlane, deploy: Any) -> None:
    deploy(1)
    deploy(2)
    with pytest.raises(fn.BadRequest, match="add up to 100"):
        plane.traffic.set_split("ver", {1: 50, 2: 40}, "k1")
    with pytest.raises(fn.NotFound, match="no version 5"):
        plane.traffic.set_split("ver", {2: 50, 5: 50}, "k1")
    plane.traffic.set_split("ver", {1: 30, 2: 70}, "k1")
    assert plane.deployer.extra_versions("ver") == [1]  # type: ignore[attr-defined]
    assert published(plane)["ver"]["weights"] == {"1": 30.0, "2": 70.0}
    assert plane.traffic.versions("ver")["versions"][0]["state"] == "canary"
    plane.traffic.set_split("ver", {1: 100}, "k1")
    assert plane.registry.active("ver").number == 1  # type: ignore[union-attr]
    assert extras(plane, []) == []
    assert "weights" not in published(plane)["ver"]


def _count(recorder: Recorder, version: int, calls: int, errors: int = 0) -> None:
    for i in range(calls):
        recorder.call_finished("ver", str(version), 500 if i < errors else 200, 0.01)


def _push(plane: ControlPlane, recorder: Recorder, seq: list[int]) -> None:
    seq[0] += 1
    asyncio.run(plane.hub.hub.add_metrics("replica", seq[0], recorder.drain()))  # type: ignore[attr-defined]


def test_a_failing_canary_is_rolled_back_by_its_gate(plane: ControlPlane, deploy: Any) -> None:
    deploy(1)
    job = deploy(2, {"percent": 50, "steps": [50, 100], "interval_s": 3600, "gates": GATES})
    assert job.results["ver"]["status"] == "canary"
    assert published(plane)["ver"]["weights"] == {"1": 50.0, "2": 50.0}
    assert plane.registry.active("ver").number == 1  # type: ignore[union-attr]
    recorder, seq = Recorder(), [0]
    plane.traffic.tick()  # the window opens
    _count(recorder, 1, 20)
    _count(recorder, 2, 20, errors=6)
    _push(plane, recorder, seq)
    plane.traffic.tick()
    state = plane.traffic.traffic("ver")
    assert state["weights"] == {"1": 100.0} and state["rollout"] is None and state["active"] == 1
    assert state["history"][-1]["reason"].startswith("gate failed: canary v2 error rate 30.0%"), state["history"][-1]
    assert extras(plane, []) == []


def test_a_healthy_canary_is_promoted_step_by_step(plane: ControlPlane, deploy: Any) -> None:
    deploy(1)
    deploy(2, {"percent": 10, "steps": [10, 50, 100], "interval_s": 0.2, "gates": GATES})
    recorder, seq = Recorder(), [0]
    plane.traffic.tick()
    time.sleep(0.3)
    plane.traffic.tick()  # past the interval, but no calls: waits
    assert plane.traffic.traffic("ver")["weights"] == {"1": 90.0, "2": 10.0}
    for weight in (50.0, 100.0):
        _count(recorder, 1, 20)
        _count(recorder, 2, 20, errors=0)
        _push(plane, recorder, seq)
        time.sleep(0.3)
        plane.traffic.tick()
        if weight < 100:
            assert plane.traffic.traffic("ver")["weights"] == {"1": 100 - weight, "2": weight}
            plane.traffic.tick()  # the next step's window opens here
    state = plane.traffic.traffic("ver")
    assert state["active"] == 2 and state["rollout"] is None and state["weights"] == {"2": 100.0}
    assert [e["action"] for e in state["history"]][-4:] == ["canary", "step", "activate", "split"]


def test_a_pinned_version_is_started_when_a_call_asks_for_it(plane: ControlPlane, deploy: Any) -> None:
    deploy(1)
    deploy(2)
    asyncio.run(plane.hub.hub.want("ver", 1))  # type: ignore[attr-defined]
    asyncio.run(plane.hub.hub.want("ver", 8))  # type: ignore[attr-defined]  # no such version: nothing started
    plane.traffic.tick()
    deadline = time.monotonic() + 5
    while published(plane)["ver"]["running"] != [1] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert published(plane)["ver"]["running"] == [1]
    assert plane.traffic.versions("ver")["versions"][0]["state"] == "pinned"


def test_a_pinned_version_no_pinned_call_reaches_for_fn_pin_idle_hours_is_stopped(
        plane: ControlPlane, deploy: Any) -> None:
    clock = [0.0]
    plane.traffic.pins.clock = lambda: clock[0]
    plane.traffic.pins.idle_s = 3600.0

    def tick_at(at: float) -> None:
        clock[0] = at
        plane.traffic.tick()

    deploy(1)
    deploy(2)
    asyncio.run(plane.hub.hub.want("ver", 1))  # type: ignore[attr-defined]
    tick_at(0)
    deadline = time.monotonic() + 5
    while published(plane)["ver"]["running"] != [1] and time.monotonic() < deadline:
        time.sleep(0.05)
    recorder, seq = Recorder(), [0]
    for minute in range(0, 100, 20):  # a pinned call every 20 minutes for 100 minutes: it keeps running
        _count(recorder, 1, 1)
        _push(plane, recorder, seq)
        tick_at(minute * 60.0)
    assert published(plane)["ver"]["running"] == [1] and extras(plane, [1]) == [1]
    tick_at(80 * 60 + 3599)  # an hour less a second since the last one
    assert published(plane)["ver"]["running"] == [1]
    tick_at(80 * 60 + 3610)
    assert not published(plane)["ver"].get("running")
    assert extras(plane, []) == []
    assert plane.traffic.versions("ver")["versions"][0]["state"] == "retired"
    assert plane.traffic.traffic("ver")["history"][-1]["action"] == "unpin"
    # a later pinned call starts it again, and its idle hour starts then, not where the last one ended
    asyncio.run(plane.hub.hub.want("ver", 1))  # type: ignore[attr-defined]
    tick_at(80 * 60 + 3620)
    deadline = time.monotonic() + 5
    while published(plane)["ver"].get("running") != [1] and time.monotonic() < deadline:
        time.sleep(0.05)
    tick_at(80 * 60 + 3640)
    tick_at(80 * 60 + 3640 + 1800)
    assert published(plane)["ver"]["running"] == [1]


def test_retention_keeps_the_newest_and_what_runs(plane: ControlPlane, deploy: Any) -> None:
    for answer in range(1, 6):
        deploy(answer)  # keep_versions is 3
    states = {v["version"]: v["state"] for v in plane.traffic.versions("ver")["versions"]}
    assert states == {1: "collected", 2: "collected", 3: "retired", 4: "retired", 5: "active"}
    with pytest.raises(fn.NotFound, match="it is collected"):
        plane.traffic.rollback("ver", 1, "k1")


def test_the_data_plane_draws_by_weight_and_names_the_versions_that_exist() -> None:
    entry = Entry.of({"active": 3, "versions": [1, 3, 4], "running": [4], "weights": {"3": 75, "4": 25},
                      "shadow": [1, 0.5]})
    random.seed(7)
    drawn = Counter(entry.pick() for _ in range(4000))
    assert 900 <= drawn[4] <= 1100 and drawn[3] + drawn[4] == 4000  # 1000 +- 4 standard deviations
    assert 1800 <= sum(entry.shadowed() == 1 for _ in range(4000)) <= 2200
    plain = Entry.of({"active": 3, "versions": [3], "running": []})
    assert {plain.pick() for _ in range(50)} == {3} and plain.shadowed() is None
    assert "versions: 1, 3, 4" in str(entry.unknown("ver", 9))


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5", "3 "])
def test_a_bad_version_header_is_a_400_naming_it(text: str) -> None:
    if text == "3 ":
        assert parse_version(text) == 3
        return
    with pytest.raises(fn.BadRequest, match="Fn-Version"):
        parse_version(text)


def test_a_bare_one_is_not_taken_for_100_percent() -> None:
    with pytest.raises(fn.BadRequest, match="ambiguous"):
        parse_percent("1", "--max-error-rate")
    assert parse_percent("1%", "--max-error-rate") == 0.01 and parse_percent("0.02", "x") == 0.02


def test_a_plain_deploy_during_a_canary_ends_it(plane: ControlPlane, deploy: Any) -> None:
    deploy(1)
    deploy(2, {"percent": 10, "steps": [10, 100], "interval_s": 3600, "gates": GATES})
    assert plane.deployer.extra_versions("ver") == [2]  # type: ignore[attr-defined]
    deploy(3)
    state = plane.traffic.traffic("ver")
    assert (state["active"], state["weights"], state["rollout"]) == (3, {"3": 100.0}, None)
    assert published(plane)["ver"] == {"active": 3, "versions": [1, 2, 3], "running": []}
    assert state["history"][-1]["reason"] == "deployed: the split before it ended"
    assert extras(plane, []) == []
    plane.traffic.tick()  # nothing left to promote over v3
    assert plane.registry.active("ver").number == 3  # type: ignore[union-attr]


def test_a_rollout_step_keeps_a_change_made_since_the_tick_read(plane: ControlPlane, deploy: Any) -> None:
    deploy(1)
    deploy(2)
    deploy(3, {"percent": 10, "steps": [10, 50, 100], "interval_s": 0.1, "gates": GATES})
    recorder, seq = Recorder(), [0]
    plane.traffic.tick()
    stale = plane.traffic.store.get("ver")  # what a tick read before an operator's change
    plane.traffic.set_shadow("ver", 1, 20, "k1")
    _count(recorder, 2, 20)
    _count(recorder, 3, 20)
    _push(plane, recorder, seq)
    time.sleep(0.2)
    plane.traffic._advance(stale, plane.hub.metrics())  # type: ignore[attr-defined]
    after = plane.traffic.traffic("ver")
    assert after["weights"] == {"2": 50.0, "3": 50.0} and after["shadow"] == {"version": 1, "percent": 20.0}


def test_shadow_outputs_that_are_bytes_are_kept_by_digest() -> None:
    from fnplatform.serving.shadow import _kept

    assert _kept({"a": [1, 2]})[:2] == (True, {"a": [1, 2]})
    assert _kept(None)[:2] == (True, None)  # a JSON null output is kept, not taken for a cut one
    kept, value, encoded = _kept(b"\xff\x00 image")
    assert not kept and value is None and b"\xff" not in encoded  # bytes by their digest
    assert _kept(b"\xff\x00 image") == (kept, value, encoded) and _kept(b"other")[2] != encoded
    assert _kept("x" * 20000)[:2] == (False, None)


def test_a_call_passed_on_once_is_never_passed_on_again() -> None:
    from starlette.requests import Request

    from fnplatform.serving.forwarding import Forwarder
    from fnplatform.serving.versions import TrafficTable

    spec = fn.FunctionSpec(name="ver", entrypoint="main:ver")
    forwarder = Forwarder(spec, 3, TrafficTable(None), None, None, Recorder())  # type: ignore[arg-type]

    def request(*headers: tuple[bytes, bytes]) -> Request:
        return Request({"type": "http", "method": "POST", "path": "/ver", "headers": list(headers)})

    assert asyncio.run(forwarder.route(request((b"fn-version", b"3")))) is None  # its own version: answered here
    assert asyncio.run(forwarder.route(request((b"fn-version", b"4")))) == 4  # passed on
    with pytest.raises(fn.Unavailable) as moving:
        asyncio.run(forwarder.route(request((b"fn-version", b"4"), (b"fn-forwarded", b"1"))))
    assert moving.value.status == 503 and moving.value.retry_after == 1
    with pytest.raises(fn.BadRequest, match="Fn-Version"):
        asyncio.run(forwarder.route(request((b"fn-version", b"v4"))))
