"""Flows through the real platform: three inputs in separate requests, crashes, retries, bad input."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from harness import Platform, wait_for
from prometheus_client.parser import text_string_to_metric_families

import fn
from fnplatform.serving.metrics import PUSH_INTERVAL_S

EXAMPLES = Path(__file__).resolve().parents[2] / "functions" / "examples"
PROJECTS = Path(__file__).parent / "projects"


@pytest.fixture(scope="module")
def flows(platform: Platform) -> Platform:
    for project in (EXAMPLES / "flow", PROJECTS / "flows"):
        job = platform.deploy(project)
        assert job["exit_code"] == 0, job["output"]
    return platform


def _kill_actor(run_id: str) -> None:
    """Kill the host that holds the run, for good: a new one must take its runs up from their checkpoints."""
    import ray

    from fnplatform.flows.hosts import NAMESPACE, host_name

    ray.kill(ray.get_actor(host_name(run_id), namespace=NAMESPACE), no_restart=True)


def test_three_inputs_in_separate_requests(flows: Platform) -> None:
    with flows.client() as client:
        created = client.post("/flows/documents/runs")
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        url = f"/flows/documents/runs/{run_id}"
        assert client.get(url).json()["status"] == "pending"
        back = client.put(f"{url}/inputs/back", content=b"back of the card", headers={"content-type": "image/jpeg"})
        assert back.status_code == 202
        assert back.json()["steps"]["measure-front"]["status"] == "waiting"
        assert back.json()["steps"]["measure-back"]["status"] in {"running", "succeeded"}
        front = client.put(f"{url}/inputs/front", files={"file": ("front.jpg", b"front of the card", "image/jpeg")})
        assert front.status_code == 202
        assert client.put(f"{url}/inputs/selfie", content=b"a face").status_code == 202
        final = client.get(url, params={"wait": 60}).json()
        assert final["status"] == "succeeded", final
        assert final["output"] == {"decision": "approve", "reasons": []}
        assert {s["status"] for s in final["steps"].values()} == {"succeeded"}

        again = client.put(f"{url}/inputs/front", content=b"something else")
        assert again.status_code == 409 and "first one is kept" in again.json()["error"]["message"]
        assert client.put(f"{url}/inputs/passport", content=b"x").status_code == 404
        assert client.get("/flows/documents/runs/no-such-run").status_code == 404
        assert client.post("/flows/no-such-flow/runs").status_code == 404
        assert client.put(f"/flows/documents/runs/{run_id}/inputs/back", content=b"").status_code in {400, 409}


def flow_counts(platform: Platform) -> dict[str, float]:
    """From GET /metrics: documents' runs that succeeded, and how many calls of its compare step were timed."""
    response = httpx.get(f"{platform.api_url}/metrics", headers={"Authorization": f"Bearer {platform.key}"}, timeout=30)
    assert response.status_code == 200, response.text
    found = {"runs": 0.0, "compare": 0.0}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.labels.get("flow") != "documents":
                continue
            if sample.name == "fn_flow_runs_total" and sample.labels["status"] == "succeeded":
                found["runs"] += sample.value
            elif sample.name == "fn_flow_step_duration_seconds_count" and sample.labels["step"] == "compare":
                found["compare"] += sample.value
    return found


def test_a_run_host_counts_each_run_and_step_once(flows: Platform) -> None:
    def settled() -> dict[str, float]:
        before = flow_counts(flows)
        for _ in range(20):  # until earlier tests' runs are all pushed to the hub: the same over two pushes
            time.sleep(2 * PUSH_INTERVAL_S + 0.5)
            now = flow_counts(flows)
            if now == before:
                return now
            before = now
        raise AssertionError(f"the flow counts kept changing: {before}")

    start = settled()
    for _ in range(3):
        run = fn.flows.start("documents")
        for name in ("front", "back", "selfie"):
            run.put(name, f"{name} of the counted run".encode())
        assert run.result(timeout=60)["decision"] == "approve"
    assert settled() == {"runs": start["runs"] + 3, "compare": start["compare"] + 3}


def test_sdk_and_fnctl(flows: Platform, tmp_path: Path) -> None:
    run = fn.flows.start("documents")
    run.put("front", b"same picture")
    run.put("back", b"the back")
    run.put("selfie", b"same picture")
    assert run.result(timeout=60) == {"decision": "review", "reasons": ["selfie is a copy of the front"]}

    for name, data in {"front": b"f", "back": b"b", "selfie": b"s"}.items():
        (tmp_path / name).write_bytes(data)
    result = flows.fnctl("flow", "run", "documents", "--json", *[arg for name in ("front", "back", "selfie")
                                                                for arg in ("-i", f"{name}=@{tmp_path / name}")])
    assert result.exit_code == 0, result.output
    ran = json.loads(result.output)
    assert ran["output"]["decision"] == "approve"
    status = json.loads(flows.fnctl("flow", "status", "documents", ran["id"], "--json").output)
    assert status["status"] == "succeeded" and status["steps"]["compare"]["attempts"] == 1
    listed = json.loads(flows.fnctl("flow", "ls", "--json").output)
    assert {"documents", "retrying", "doomed"} <= {f["name"] for f in listed}


def test_run_finishes_after_its_actor_is_killed_mid_step(flows: Platform) -> None:
    run = fn.flows.start("documents")
    for name in ("front", "back", "selfie"):
        run.put(name, f"{name} bytes".encode())
    wait_for(lambda: run.status()["steps"]["compare"]["status"] == "running", timeout=30, interval=0.1)
    _kill_actor(run.id)
    assert run.result(timeout=90) == {"decision": "approve", "reasons": []}
    steps = run.status()["steps"]
    assert steps["measure-front"]["attempts"] == 1, "a checkpointed step must not run again"


def test_run_resumes_after_a_control_plane_restart(flows: Platform) -> None:
    from fnplatform.control.plane import ControlPlane
    from fnplatform.flows.state import FlowState

    run = fn.flows.start("documents")
    run.put("front", b"front bytes")
    run.put("back", b"back bytes")
    wait_for(lambda: run.status()["steps"]["measure-back"]["status"] == "succeeded", timeout=30, interval=0.1)
    _kill_actor(run.id)
    control = flows.control
    restarted = ControlPlane(control.settings, control.registry, control.store, control.deployer, control.hub,
                             FlowState(control.settings.database_url))
    assert restarted.resume_runs() >= 1
    run.put("selfie", b"selfie bytes")
    assert run.result(timeout=90)["decision"] == "approve"
    assert run.status()["steps"]["measure-front"]["attempts"] == 1


def test_a_run_finishes_without_its_optional_input_once_its_inputs_are_closed(flows: Platform, tmp_path: Path) -> None:
    with flows.client() as client:
        url = f"/flows/sides/runs/{client.post('/flows/sides/runs').json()['id']}"
        refused = client.post(f"{url}/close")
        assert refused.status_code == 409 and "'front' not given yet" in refused.json()["error"]["message"]
        assert client.put(f"{url}/inputs/front", content=b"front!").status_code == 202
        waiting = client.get(url).json()
        assert waiting["steps"]["back-length"]["status"] == "waiting" and waiting["inputs_closed"] is False
        closed = client.post(f"{url}/close")
        assert closed.status_code == 202 and closed.json()["inputs_closed"] is True, closed.text
        assert client.post(f"{url}/close").status_code == 202  # again: no error
        late = client.put(f"{url}/inputs/back", content=b"the back")
        assert late.status_code == 409 and "are closed" in late.json()["error"]["message"]
        final = client.get(url, params={"wait": 60}).json()
        assert final["status"] == "succeeded", final
        assert final["output"] == {"front": 6, "back": None}  # back-length got None
        assert client.post(f"{url}/close").json()["status"] == "succeeded"  # a close after the end: its state

    (tmp_path / "front").write_bytes(b"abc")
    ran = flows.fnctl("flow", "run", "sides", "--json", "-i", f"front=@{tmp_path / 'front'}")
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output)["output"] == {"front": 3, "back": None}
    missing = flows.fnctl("flow", "run", "sides", "-i", f"back=@{tmp_path / 'front'}")
    assert missing.exit_code == 1 and "required input(s) 'front' not given yet" in missing.output, missing.output
    assert "Traceback" not in missing.output


def test_failed_steps_are_retried_then_fail_the_run(flows: Platform, tmp_path: Path) -> None:
    retrying = fn.flows.start("retrying")
    retrying.put("counter", str(tmp_path / "attempts"))
    assert retrying.result(timeout=60) == 2
    assert retrying.status()["steps"]["flaky"]["attempts"] == 2

    doomed = fn.flows.start("doomed")
    doomed.put("x", 3)
    with pytest.raises(fn.RemoteError) as raised:
        doomed.result(timeout=60)
    state = raised.value.detail
    assert state["status"] == "failed"
    assert state["error"]["type"] == "ValueError" and state["error"]["message"] == "cannot handle 3"
    assert state["error"]["step"] == "hopeless" and state["error"]["attempts"] == 2


def test_input_over_the_flows_limit_is_413(flows: Platform) -> None:
    with flows.client() as client:
        run_id = client.post("/flows/limited/runs").json()["id"]
        response = client.put(f"/flows/limited/runs/{run_id}/inputs/blob", content=b"x" * 600_000)
    assert response.status_code == 413


def test_flow_with_a_missing_step_function_fails_at_deploy(platform: Platform, tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(textwrap.dedent("""
        import fn

        @fn.function(cpus=0.25)
        def first(x: int) -> int:
            return x

        broken = fn.Flow("broken", inputs=["x"])
        one = broken.step("first", inputs=["x"])
        broken.output("not-deployed-anywhere", inputs=[one])
    """))
    job = platform.deploy(tmp_path)
    assert job["exit_code"] == 1
    assert "not-deployed-anywhere" in job["results"]["flow:broken"]["error"]


def test_abandoned_run_fails_after_its_ttl_and_its_host_forgets_it(flows: Platform, tmp_path: Path) -> None:
    import ray

    from fnplatform.flows.hosts import NAMESPACE, host_name

    run = fn.flows.start("forgotten")
    run.put("counter", str(tmp_path / "never-used"))
    host = ray.get_actor(host_name(run.id), namespace=NAMESPACE)
    assert run.id in ray.get(host.held.remote(), timeout=10)
    state = run.status(wait=30)
    assert state["status"] == "failed" and state["error"]["type"] == "Abandoned"
    wait_for(lambda: run.id not in ray.get(host.held.remote(), timeout=10), timeout=30, interval=0.5)
    assert run.status()["status"] == "failed", "the final state outlives the run's place in its host"


def test_removing_a_step_function_names_its_flows_or_removes_them_too(platform: Platform, tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(textwrap.dedent("""
        import fn

        @fn.function(cpus=0.25)
        def only_step(x: int) -> int:
            return x

        lonely = fn.Flow("lonely", inputs=["x"])
        lonely.output("only-step", inputs=["x"])
    """))
    job = platform.deploy(tmp_path)
    assert job["exit_code"] == 0, job["output"]
    refused = platform.fnctl("rm", "only-step")
    assert refused.exit_code == 1
    assert "'only-step' is called by flow(s) lonely" in refused.output and "--with-flows" in refused.output
    assert "only-step" in platform.fnctl("ls").output  # nothing was removed
    removed = platform.fnctl("rm", "only-step", "--with-flows")
    assert removed.exit_code == 0, removed.output
    assert removed.output.strip() == "removed only-step and flow(s) lonely"
    assert "lonely" not in platform.fnctl("flow", "ls").output
