"""Scale to zero and back, placement on pools, failed deploys that keep the old version, removal,
and re-applying the registry after a control-plane restart."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import httpx
from harness import Platform, serve_in_thread, wait_for

import fn


def _describe(platform: Platform, name: str) -> dict:
    result = platform.fnctl("describe", name, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _project(root: Path, source: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "main.py").write_text(textwrap.dedent(source))
    return root


def test_scales_to_zero_and_serves_again_from_zero(basic: Platform) -> None:
    assert fn.call("add", a=1, b=1) == 2
    wait_for(lambda: _describe(basic, "add")["running"] == 0, timeout=90, interval=1)
    started = time.monotonic()
    assert fn.call("add", a=2, b=3) == 5
    cold = time.monotonic() - started
    assert _describe(basic, "add")["running"] >= 1
    assert cold < 60  # generous: only proves the first call waited for a new replica instead of failing


def test_pools_place_replicas_on_their_nodes(basic: Platform) -> None:
    on_gpu = fn.call("node-gpu")
    assert on_gpu["node"] == basic.gpu_node
    assert on_gpu["gpu_ids"], "a gpus=0.5 replica must be given a (fake) GPU"
    assert on_gpu["threads"] == "1", "thread pools follow the replica's CPU share"
    assert fn.call("node-cpu") == basic.head_node


def test_failed_setup_reports_the_user_error_and_keeps_the_previous_version(platform: Platform, tmp_path: Path) -> None:
    v1 = _project(tmp_path / "v1", """
        import fn

        @fn.model(cpus=0.25, min_replicas=1)
        class Stable:
            def setup(self):
                self.value = 1
            def __call__(self) -> int:
                return self.value
    """)
    assert platform.deploy(v1)["exit_code"] == 0
    assert fn.call("stable") == 1
    v2 = _project(tmp_path / "v2", """
        import fn

        @fn.model(cpus=0.25, min_replicas=1)
        class Stable:
            def setup(self):
                self.value = {}["x"]
            def __call__(self) -> int:
                return self.value
    """)
    job = platform.deploy(v2)
    assert job["exit_code"] == 1
    error = job["results"]["stable"]["error"]
    assert "setup() raised KeyError: 'x'" in error
    assert "main.py" in error
    assert fn.call("stable") == 1
    info = _describe(platform, "stable")
    assert info["active_version"] == 1
    assert [v["status"] for v in info["versions"]] == ["ready", "failed"]
    platform.fnctl("rm", "stable")


def test_functions_checked_together_still_name_the_one_whose_setup_kills_its_process(platform: Platform,
                                                                                      tmp_path: Path) -> None:
    """Functions of one bundle share one deploy-time check process; a setup() that ends that process is found by
    checking again one per process, and the others deploy."""
    project = _project(tmp_path / "crashy", """
        import os

        import fn

        @fn.function(cpus=0.25)
        def calm(x: int) -> int:
            return x + 1

        @fn.model(cpus=0.25)
        class Steady:
            def setup(self):
                self.n = 7
            def __call__(self) -> int:
                return self.n

        @fn.model(cpus=0.25)
        class Exits:
            def setup(self):
                os._exit(3)
            def __call__(self) -> int:
                return 0
    """)
    job = platform.deploy(project)
    assert job["exit_code"] == 1
    assert job["results"]["calm"]["status"] == "deployed"
    assert job["results"]["steady"]["status"] == "deployed"
    assert job["results"]["exits"]["status"] == "failed"
    assert "died" in job["results"]["exits"]["error"].lower() or "exit" in job["results"]["exits"]["error"].lower()
    assert fn.call("calm", x=1) == 2
    assert fn.call("steady") == 7
    for name in ("calm", "steady"):
        platform.fnctl("rm", name)


def test_user_syntax_error_names_file_and_line(platform: Platform, tmp_path: Path) -> None:
    project = _project(tmp_path / "bad", "import fn\n\n@fn.function()\ndef f(:\n    pass\n")
    result = platform.fnctl("deploy", str(project))
    assert result.exit_code == 1
    assert "main.py:4" in result.output
    assert "Traceback" not in result.output


def test_function_on_an_unknown_pool_fails_clearly(platform: Platform, tmp_path: Path) -> None:
    project = _project(tmp_path / "tpu", """
        import fn

        @fn.function(pool="tpu")
        def on_tpu() -> int:
            return 1
    """)
    job = platform.deploy(project)
    assert job["exit_code"] == 1
    assert "no node is in pool 'tpu'" in job["results"]["on-tpu"]["error"]


def test_s3_unreachable_during_deploy_keeps_serving(basic: Platform) -> None:
    from fnplatform.bundles.packaging import build_bundle
    from fnplatform.control.api import create_app
    from fnplatform.control.plane import ControlPlane
    from fnplatform.storage.blobs import StoreConfig, open_store

    dead = StoreConfig(kind="s3", bucket="fn-bundles", endpoint="http://127.0.0.1:9", region="us-east-1")
    control = basic.control
    outage = ControlPlane(control.settings, control.registry, open_store(dead), control.deployer, control.hub,
                          control.flows)
    bundle = build_bundle(Path(__file__).parent / "projects" / "basic")
    with serve_in_thread(create_app(outage)) as api_url:
        response = httpx.put(f"{api_url}/v1/bundles/{bundle.sha256}", content=bundle.data, timeout=60,
                             headers={"Authorization": f"Bearer {basic.key}"})
    assert response.status_code == 503
    assert "unreachable" in response.json()["error"]["message"]
    assert fn.call("add", a=1, b=2) == 3


def test_rm_removes_the_endpoint(platform: Platform, tmp_path: Path) -> None:
    project = _project(tmp_path / "gone", """
        import fn

        @fn.function(cpus=0.25)
        def soon_gone() -> str:
            return "here"
    """)
    assert platform.deploy(project)["exit_code"] == 0
    assert fn.call("soon-gone") == "here"
    assert platform.fnctl("rm", "soon-gone").exit_code == 0
    wait_for(lambda: httpx.post(f"{platform.http_url}/soon-gone", json={}).status_code == 404, timeout=30)
    listed = json.loads(platform.fnctl("ls", "--json").output)
    assert "soon-gone" not in {row["name"] for row in listed}
    assert platform.fnctl("rm", "soon-gone").exit_code == 1


def test_reconcile_after_restart_is_idempotent(platform: Platform, tmp_path: Path) -> None:
    from fnplatform.control.deployer import Deployer
    from fnplatform.storage.registry import Registry

    project = _project(tmp_path / "keeper", """
        import fn

        @fn.function(cpus=0.25, min_replicas=1)
        def keeper() -> str:
            return "kept"
    """)
    assert platform.deploy(project)["exit_code"] == 0
    before = _describe(platform, "keeper")
    replicas = {r["replica_id"] for r in before["replicas"]}
    assert replicas
    listed_before = json.loads(platform.fnctl("ls", "--json").output)
    # A restarted control plane: a new registry connection and deployer over the same state.
    fresh = Deployer(Registry(platform.control.registry.url), platform.control.deployer.ctx)
    fresh.reconcile()
    internal = {v.spec.name for v in platform.control.registry.actives() if v.spec.internal}  # no route to wait for
    waited = fresh.wait_running([row["name"] for row in listed_before], internal)
    assert set(waited.values()) == {None}, waited
    after = _describe(platform, "keeper")
    assert {r["replica_id"] for r in after["replicas"]} == replicas, "re-applying an unchanged version restarted it"
    listed_after = json.loads(platform.fnctl("ls", "--json").output)
    assert [(r["name"], r["version"]) for r in listed_after] == [(r["name"], r["version"]) for r in listed_before]
    assert fn.call("keeper") == "kept"
    platform.fnctl("rm", "keeper")


def test_an_idle_function_gives_its_cpus_to_one_waiting_for_room(platform: Platform, tmp_path: Path) -> None:
    """Without giving way, the waiting function would wait out the idle one's idle_timeout_s (10 minutes)."""
    import ray

    head_cpus = next(n["Resources"]["CPU"] for n in ray.nodes() if n["Alive"] and n["NodeID"] == platform.head_node)
    holder = _project(tmp_path / "holder", """
        import fn

        @fn.function(pool="cpu", cpus=1.5, idle_timeout_s=600)
        def holder() -> str:
            return "held"
    """)
    assert platform.deploy(holder)["exit_code"] == 0
    assert fn.call("holder") == "held"
    assert _describe(platform, "holder")["running"] == 1
    # Fits on the head only once the holder's replica is gone, whatever else is idle there.
    needy = _project(tmp_path / "needy", f"""
        import fn

        @fn.function(pool="cpu", cpus={head_cpus - 1.5 + 0.25})
        def needy() -> str:
            return "served"
    """)
    deployed = platform.deploy(needy)
    assert deployed["exit_code"] == 0, deployed["output"]
    assert fn.call("needy") == "served"
    assert _describe(platform, "holder")["running"] == 0
    assert fn.call("holder") == "held", "the holder comes back from zero when called"
    for name in ("needy", "holder"):
        platform.fnctl("rm", name)


def test_replicas_unpack_into_the_bounded_node_cache(basic: Platform) -> None:
    """The replica went through the checked extraction (it records the bytes it wrote) and keeps its entry fresh."""
    from fnplatform.storage.cache import MARKER, SIZE_FILE

    assert fn.call("add", a=1, b=2) == 3
    active = basic.control.registry.active("add")
    assert active is not None
    folder = Path(basic.control.settings.cache_dir) / active.bundle_sha256
    assert int((folder / SIZE_FILE).read_text()) > 0
    assert (folder / MARKER).read_text() == active.bundle_sha256
    assert time.time() - (folder / MARKER).stat().st_mtime < basic.control.settings.cache_idle_s
