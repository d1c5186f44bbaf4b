"""fn.Dict and fn.Queue on a real cluster: functions on several replicas count into one dict (incr atomic across
them), functions and a client outside the cluster share a queue both ways, the values survive the replicas that
wrote them being killed, the state server's process being killed (Ray restarts it), the server being gone for good
(the control plane re-creates it) and a restarted control plane, and the keys' roles hold on /v1/state."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from harness import Platform, wait_for

import fn

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).parent / "projects" / "state"


@pytest.fixture(scope="module")
def shared(platform: Platform) -> Platform:
    job = platform.deploy(PROJECT)
    assert job["exit_code"] == 0 and job["state"] == "succeeded", job["output"]
    return platform


def test_replicas_count_into_one_dict_and_a_client_outside_reads_it(shared: Platform) -> None:
    with shared.client() as client, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.post("/bump", json={"key": "hits"}), range(30)))
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
        assert sorted(a.json() for a in answers) == list(range(1, 31))  # every increment seen once, none lost
        assert client.post("/abump", json={"key": "hits"}).json() == 31
        assert client.post("/remember", json={"key": "cfg", "value": {"alpha": 0.1, "arms": ["a", "b"]}}).json() is True
    counts = fn.Dict("counts")  # over the control plane's /v1/state, with the test's key
    assert counts["hits"] == 31 and counts.incr("hits", by=9) == 40 and "hits" in counts
    assert fn.Dict("notes")["cfg"] == {"alpha": 0.1, "arms": ["a", "b"]}
    assert fn.Dict("counts").keys() == ["hits"] and len(fn.Dict("notes")) == 1


def test_a_queue_is_shared_both_ways(shared: Platform) -> None:
    queue = fn.Queue("work")
    with shared.client() as client:
        assert client.post("/enqueue", json={"item": {"n": 1}}).json() == 1
        assert client.post("/enqueue", json={"item": {"n": 2}}).json() == 2
        assert queue.get(timeout=5) == {"n": 1}
        queue.put({"n": 3})
        assert client.post("/dequeue", json={}).json() == {"n": 2}
        assert client.post("/dequeue", json={}).json() == {"n": 3}
        assert client.post("/dequeue", json={"timeout": 0.2}).json() is None
    assert len(queue) == 0


def test_state_survives_its_server_dying_and_being_replaced(shared: Platform) -> None:
    import ray

    from fnplatform.serving.hub import NAMESPACE
    from fnplatform.serving.state_client import STATE_NAME

    fn.Dict("durable")["k"] = {"v": 1}
    fn.Queue("durable-q").put("first")
    with shared.client() as client:
        assert client.post("/bump", json={"key": "warm"}).json() == 1  # a replica of bump runs now
    assert _kill_replicas("bump") >= 1  # the replicas that wrote die: the values never lived in them
    ray.kill(ray.get_actor(STATE_NAME, namespace=NAMESPACE), no_restart=False)  # its process dies; Ray restarts it
    assert wait_for(lambda: _quietly(lambda: fn.Dict("durable").get("k")), 60) == {"v": 1}
    ray.kill(ray.get_actor(STATE_NAME, namespace=NAMESPACE), no_restart=True)  # gone for good
    with shared.client() as client:
        # until the control plane re-creates the server (every 5 s), a call is a clear 503, then it is all there
        first = client.post("/bump", json={"key": "after"})
        assert first.status_code in {200, 502, 503}, first.text  # 502: a call that met a killed replica
        wait_for(lambda: _quietly(lambda: fn.Dict("durable").get("k")), 60)
        assert fn.Dict("durable")["k"] == {"v": 1} and fn.Queue("durable-q").get(timeout=5) == "first"
        bumped = wait_for(lambda: _answered(client.post("/bump", json={"key": "hits"})), 60)  # a 502/503 ran nothing
        assert bumped == 41


def test_state_outlives_a_control_plane_restart(shared: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import serve_in_thread

    from fnplatform.control.api import create_app
    from fnplatform.control.plane import ControlPlane
    from fnplatform.flows.state import FlowState

    fn.Dict("restart")["k"] = [1, 2]
    assert fn.Dict("restart").incr("n") == 1
    old = shared.control
    restarted = ControlPlane(old.settings, old.registry, old.store, old.deployer, old.hub,
                             FlowState(old.settings.database_url))
    with serve_in_thread(create_app(restarted)) as api_url:  # a new control plane process's API
        monkeypatch.setenv("FN_API_URL", api_url)
        assert fn.Dict("restart")["k"] == [1, 2] and fn.Dict("restart").incr("n") == 2
        with shared.client() as client:  # and the functions keep counting where the old one left off
            assert client.post("/bump", json={"key": "hits"}).json() == 42


def _kill_replicas(function: str) -> int:
    """SIGKILL every replica process of *function* (Ray titles them ray::ServeReplica:<app>:<deployment>)."""
    import psutil

    killed = 0
    for proc in psutil.process_iter(["cmdline"]):
        title = " ".join(proc.info["cmdline"] or [])
        if f"ServeReplica:{function}:" in title:
            proc.kill()
            killed += 1
    return killed


def _answered(response: httpx.Response) -> object:
    return response.json() if response.status_code == 200 else None


def _quietly(read: object) -> object:
    try:
        return read()  # type: ignore[operator]
    except fn.Unavailable:
        return None


def test_the_keys_roles_hold_on_the_state_api(shared: Platform) -> None:
    registry = shared.control.registry
    _, invoker = registry.create_key("state-reader", "invoke")
    _, scoped = registry.create_key("state-scoped", "invoke", functions=["bump"])
    _, deployer = registry.create_key("state-writer", "deploy")
    shared.control.push_state()
    url = f"{shared.api_url}/v1/state/dicts/counts"
    with httpx.Client(timeout=30) as http:
        def auth(key: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {key}"}

        read = http.get(f"{url}/value", params={"key": "hits"}, headers=auth(invoker))
        assert read.status_code == 200 and read.json()["found"] is True, read.text
        assert http.get(f"{url}/value", params={"key": "hits"}, headers=auth(scoped)).status_code == 403
        assert http.put(f"{url}/value", json={"key": "x", "value": 1}, headers=auth(invoker)).status_code == 403
        assert http.put(f"{url}/value", json={"key": "x", "value": 1}, headers=auth(deployer)).status_code == 200
        assert http.get(f"{url}/value", params={"key": "x"}).status_code == 401
        too_big = http.put(f"{url}/value", json={"key": "x", "value": "y" * (1024 * 1024)}, headers=auth(deployer))
        assert too_big.status_code == 413 and too_big.json()["error"]["detail"]["limit_bytes"] == 1024 * 1024
        bad = http.put(f"{url}/value", json={"key": "", "value": 1}, headers=auth(deployer))
        assert bad.status_code in {400, 422}, bad.text
        incr = http.post(f"{url}/incr", json={"key": "x", "by": 2}, headers=auth(deployer))
        assert incr.json() == {"value": 3}
