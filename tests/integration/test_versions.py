"""Versions and traffic on a real cluster: rollback, pinned calls (HTTP, SDK, handles), a weighted split,
canaries rolled back on errors or promoted when healthy, and shadow traffic with a recorded comparison.

The control plane's housekeeping thread is not running in the test platform: ``ticking`` does its part
(``traffic.tick`` starts pinned versions and advances rollouts; ``logbook.tick`` stores log lines, where
the shadow comparisons are kept), every half second, as ``fnctl up`` does every second.
"""

from __future__ import annotations

import json
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Platform, wait_for

import fn

pytestmark = pytest.mark.slow

SOURCE = '''
import fn

@fn.comparator(function="ver")
def same_band(active, candidate):
    return abs(active["score"] - candidate["score"]) < 0.25

@fn.function(cpus=0.1, min_replicas=0, idle_timeout_s=30)
def ver(x: int = 0) -> dict:
    if {fail} and x % 2 == 0:
        raise ValueError("even numbers fail in this version")
    return {{"v": {version}, "score": {score}, "x": x}}

'''
# In a project of their own, so deploying a new 'ver' makes no new version of these.
OTHERS = '''
import fn

@fn.function(cpus=0.1, min_replicas=0, idle_timeout_s=30)
def plain(x: int = 0) -> list:
    return [{version}.0, x * 1.0]

@fn.function(cpus=0.1, min_replicas=0, idle_timeout_s=30)
def caller(version: int = 0, x: int = 0) -> dict:
    if version:
        return fn.ref("ver", version=version).call(x=x)
    return fn.call("ver", x=x)

verflow = fn.Flow("verflow", inputs=["x"])
verflow.output("ver", inputs=["x"])
'''


def project(root: Path, version: int, score: float = 0.5, fail: bool = False, source: str = SOURCE) -> Path:
    folder = root / f"{'ver' if source is SOURCE else 'others'}-v{version}{'-fail' if fail else ''}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.py").write_text(textwrap.dedent(source.format(version=version, score=score, fail=fail)))
    return folder


@pytest.fixture(scope="module")
def ticking(platform: Platform) -> Iterator[Platform]:
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            for task in (platform.control.traffic.tick, platform.control.logbook.tick):
                try:
                    task()
                except Exception as exc:  # noqa: BLE001 - as the housekeeping thread: said, and tried again next time
                    print(f"tick: {type(exc).__name__}: {exc}", file=sys.stderr)
            stop.wait(0.5)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield platform
    stop.set()
    thread.join(5)


@pytest.fixture(scope="module")
def two_versions(ticking: Platform, tmp_path_factory: pytest.TempPathFactory) -> Platform:
    root = tmp_path_factory.mktemp("versions")
    for version in (1, 2):
        for source in (SOURCE, OTHERS):
            job = ticking.deploy(project(root, version, score=0.5 + version / 10, source=source))
            assert job["exit_code"] == 0, job["output"]
    return ticking


def fnctl_json(platform: Platform, *args: str) -> Any:
    result = platform.fnctl(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output[result.output.find("{"):])


def answered_by(platform: Platform, calls: int, **headers: str) -> Counter[str]:
    seen: Counter[str] = Counter()
    with platform.client() as client:
        for i in range(calls):
            response = client.post("/ver", json={"x": i * 2 + 1}, headers=headers)
            assert response.status_code == 200, response.text
            assert response.headers["fn-version"] == str(response.json()["v"])  # the header names who answered
            seen[response.headers["fn-version"]] += 1
    return seen


def test_versions_pinned_calls_and_rollback(two_versions: Platform) -> None:
    platform = two_versions
    listed = fnctl_json(platform, "versions", "ver")
    states = {v["version"]: v["state"] for v in listed["versions"]}
    assert states[1] == "retired" and states[2] == "active"
    newest = listed["versions"][-1]
    assert "code" in newest["changes"] and newest["created_by"].endswith("(tests)")

    # pinned over HTTP: version 1 is not running; it is started for the call
    with platform.client() as client:
        pinned = client.post("/ver", json={"x": 1}, headers={"Fn-Version": "1"})
        assert pinned.status_code == 200, pinned.text
        assert pinned.json()["v"] == 1 and pinned.headers["fn-version"] == "1"
        missing = client.post("/ver", json={"x": 1}, headers={"Fn-Version": "9"})
        assert missing.status_code == 404 and "1, 2" in missing.json()["error"]["message"]
        bad = client.post("/ver", json={"x": 1}, headers={"Fn-Version": "two"})
        assert bad.status_code == 400 and "Fn-Version" in bad.json()["error"]["message"]
        assert client.post("/ver", json={"x": 1}).json()["v"] == 2  # unpinned: the active version
    # pinned from the SDK over HTTP, and through a handle inside a function
    assert fn.ref("ver", version=1).call(x=3)["v"] == 1
    assert fn.call("caller", version=1, x=3)["v"] == 1
    assert fn.call("caller", version=2, x=3)["v"] == 2
    with pytest.raises(fn.NotFound, match="1, 2"):
        fn.call("caller", version=7, x=3)
    assert fnctl_json(platform, "invoke", "ver", "--version", "1", "--data", '{"x": 5}')["v"] == 1

    done = fnctl_json(platform, "rollback", "ver")
    assert (done["active"], done["previous"]) == (1, 2)
    assert answered_by(platform, 5) == Counter({"1": 5})
    assert fn.call("caller", x=1)["v"] == 1  # handle callers follow the new active version
    history = fnctl_json(platform, "traffic", "ver")["history"]
    assert [e["action"] for e in history][-1] == "rollback" and history[-1]["reason"] == "rollback from v2"
    done = fnctl_json(platform, "rollback", "ver", "--to", "2")
    assert done["active"] == 2 and answered_by(platform, 3) == Counter({"2": 3})


def test_a_flow_run_pinned_to_a_version_records_it(two_versions: Platform) -> None:
    platform = two_versions
    active = platform.control.traffic.traffic("ver")["active"]
    pinned = 1 if active != 1 else 2
    ran = fnctl_json(platform, "flow", "run", "verflow", "-i", "x=3", "--version", f"ver={pinned}")
    assert ran["output"]["v"] == pinned
    record = platform.control.flows.run(ran["id"])
    assert record.values["ver"].version == pinned and record.pins == {"ver": pinned}
    plain = fnctl_json(platform, "flow", "run", "verflow", "-i", "x=3")
    assert plain["output"]["v"] == active and platform.control.flows.run(plain["id"]).values["ver"].version == active
    refused = platform.fnctl("flow", "run", "verflow", "-i", "x=3", "--version", "caller=1")
    assert refused.exit_code == 1 and "not a function of flow 'verflow'" in refused.output


def test_a_50_50_split_over_http_and_handles(two_versions: Platform) -> None:
    platform = two_versions
    state = fnctl_json(platform, "traffic", "ver", "--split", "1=50,2=50")
    assert state["weights"] == {"1": 50.0, "2": 50.0}
    time.sleep(3)  # the replicas' copy of the table is re-read every 2 s
    seen = answered_by(platform, 200)
    # 200 fair coin flips: 100 +- 5 standard deviations (7.1 each) holds unless the split is wrong
    assert 65 <= seen["1"] <= 135 and seen["1"] + seen["2"] == 200, seen
    by_handle = Counter(str(fn.call("caller", x=i * 2 + 1)["v"]) for i in range(60))
    assert 11 <= by_handle["1"] <= 49 and by_handle["1"] + by_handle["2"] == 60, by_handle  # 30 +- 5 x 3.9
    fnctl_json(platform, "traffic", "ver", "--split", "2=100")
    time.sleep(3)
    assert answered_by(platform, 20) == Counter({"2": 20})


def _wait_for_active(platform: Platform, version: int, timeout: float) -> dict[str, Any]:
    def active() -> dict[str, Any] | None:
        state: dict[str, Any] = platform.control.traffic.traffic("ver")
        return state if state["active"] == version and not state["rollout"] else None

    try:
        return wait_for(active, timeout=timeout, interval=0.5)  # type: ignore[no-any-return]
    except AssertionError:
        raise AssertionError(f"v{version} is not active: {platform.control.traffic.traffic('ver')}") from None


def _call_for(platform: Platform, seconds: float, until: Any) -> None:
    """Odd and even calls (a failing version fails the even ones) until *until* is true or time runs out."""
    deadline = time.monotonic() + seconds
    with platform.client() as client:
        i = 0
        while time.monotonic() < deadline and not until():
            client.post("/ver", json={"x": i})
            i += 1


def test_a_canary_that_fails_is_rolled_back_and_a_healthy_one_promoted(two_versions: Platform,
                                                                        tmp_path: Path) -> None:
    platform = two_versions
    assert platform.control.traffic.traffic("ver")["active"] == 2
    result = platform.fnctl("deploy", str(project(tmp_path, 3, fail=True)), "--canary", "50", "--steps", "50,100",
                            "--interval", "60s", "--max-error-rate", "5%", "--min-calls", "10")
    assert result.exit_code == 0, result.output
    assert platform.control.traffic.traffic("ver")["weights"] == {"2": 50.0, "3": 50.0}

    def rolled_back() -> bool:
        return not platform.control.traffic.traffic("ver")["weights"].get("3")

    _call_for(platform, 60, rolled_back)
    state = _wait_for_active(platform, 2, timeout=10)
    failed = [e for e in state["history"] if e["action"] == "rollback"][-1]
    assert failed["reason"].startswith("gate failed") and "v3" in failed["reason"], failed
    time.sleep(3)
    assert answered_by(platform, 10) == Counter({"2": 10})
    states = {v["version"]: v["state"] for v in platform.control.traffic.versions("ver")["versions"]}
    assert states[3] == "retired" and states[2] == "active"

    result = platform.fnctl("deploy", str(project(tmp_path, 4, score=0.9)), "--canary", "50", "--steps", "50,100",
                            "--interval", "3s", "--min-calls", "5")
    assert result.exit_code == 0, result.output

    def promoted() -> bool:
        return bool(platform.control.traffic.traffic("ver")["active"] == 4)

    _call_for(platform, 90, promoted)
    state = _wait_for_active(platform, 4, timeout=30)
    assert any(e["action"] == "split" and e["reason"].startswith("promoted") for e in state["history"]), state["history"]
    time.sleep(3)
    assert answered_by(platform, 10) == Counter({"4": 10})


def test_shadow_traffic_is_compared_with_the_default_and_a_user_comparator(two_versions: Platform) -> None:
    platform = two_versions
    active = platform.control.traffic.traffic("ver")["active"]
    candidate = 1
    for name in ("ver", "plain"):
        fnctl_json(platform, "traffic", name, "--shadow", f"{candidate}=100")
    time.sleep(3)
    with platform.client() as client:
        for i in range(20):
            assert client.post("/ver", json={"x": i * 2 + 1}).json()["v"] == active  # callers see the active one
            assert client.post("/plain", json={"x": i}).status_code == 200

    def report(name: str) -> dict[str, Any]:
        found: dict[str, Any] = fnctl_json(platform, "shadow", "report", name)
        return found if found["calls"] >= 20 else {}

    ver = wait_for(lambda: report("ver"), timeout=30, interval=1)
    assert ver["comparator"] == "user" and ver["versions"]["shadow"] == [candidate]
    expected_agree = abs((0.5 + active / 10 if active < 3 else 0.9) - 0.6) < 0.25
    assert ver["agreement"]["rate"] == (1.0 if expected_agree else 0.0)
    plain = wait_for(lambda: report("plain"), timeout=30, interval=1)
    assert plain["comparator"] == "exact" and plain["agreement"]["rate"] == 0.0  # [v, x] differs in v
    assert plain["numeric"]["mean_abs_diff"] > 0 and plain["errors"]["shadow"]["count"] == 0
    text = platform.fnctl("shadow", "report", "plain").output
    assert "calls compared" in text and "disagreements" in text
    for name in ("ver", "plain"):
        fnctl_json(platform, "traffic", name, "--no-shadow")
