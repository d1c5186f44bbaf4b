"""Deploy jobs, route checks and removal in the control plane, with no Ray: a real registry (SQLite), a
real local store and real bundles, and the deployer and hub stood in by small fakes (the seams)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fn
from fnplatform.bundles.packaging import Bundle, build_bundle
from fnplatform.control.plane import ControlPlane, DeployJob
from fnplatform.control.settings import PlatformSettings
from fnplatform.flows.state import FlowState
from fnplatform.serving.hub import Hub
from fnplatform.serving.metrics import Delta
from fnplatform.storage.blobs import StoreConfig, open_store, put_bundle
from fnplatform.storage.registry import Registry, VersionRecord

from .conftest import ProjectFactory


class FakeDeployer:
    """Serve as the deploy job sees it: what each function's load check and Serve apply answer."""

    def __init__(self) -> None:
        self.placement: dict[str, str] = {}
        self.load_errors: dict[str, str] = {}
        self.serve_errors: dict[str, str] = {}
        self.applied: list[tuple[str, int, bool]] = []  # (function, version, waited)
        self.removed: list[str] = []
        self.extras: set[tuple[str, int]] = set()  # (function, version) running beside the active one

    def placement_problem(self, spec: fn.FunctionSpec) -> str | None:
        return self.placement.get(spec.name)

    def validate(self, versions: list[VersionRecord]) -> dict[str, str | None]:
        return {v.function: self.load_errors.get(v.function) for v in versions}

    def apply(self, versions: list[VersionRecord], wait: bool = True, extra: bool = False) -> dict[str, str | None]:
        self.applied += [(v.function, v.number, wait) for v in versions]
        if extra:
            self.extras |= {(v.function, v.number) for v in versions if not self.serve_errors.get(v.function)}
        return {v.function: self.serve_errors.get(v.function) for v in versions} if wait else {}

    def remove(self, name: str) -> None:
        self.removed.append(name)
        function, _, number = name.partition("@v")
        self.extras.discard((function, int(number or 0)))

    def extra_versions(self, name: str) -> list[int]:
        return sorted(number for function, number in self.extras if function == name)


class InProcessHub:
    """The hub client over a plain Hub object, as the replicas would read it."""

    def __init__(self) -> None:
        self.hub = Hub()

    def publish(self, topics: dict[str, Any]) -> None:
        for topic, value in topics.items():
            asyncio.run(self.hub.publish(topic, value))

    def read(self, topic: str) -> Any:
        return asyncio.run(self.hub.read(topic))[1]

    def put_secrets(self, secrets: dict[str, dict[str, Any]]) -> None:
        asyncio.run(self.hub.put_secrets(secrets))

    def read_logs(self, function: str, after: int, limit: int) -> tuple[int, list[str]]:
        return asyncio.run(self.hub.read_logs(function, after, limit))

    def forget(self, function: str) -> None:
        asyncio.run(self.hub.forget(function))

    def metrics(self) -> Delta:
        return asyncio.run(self.hub.metrics())

    def wants(self) -> list[tuple[str, int]]:
        return asyncio.run(self.hub.wants())

    def status(self) -> dict[str, Any]:
        return asyncio.run(self.hub.status())

    def log_heads(self) -> tuple[str, dict[str, int]]:
        return asyncio.run(self.hub.log_heads())

    def logs_after(self, function: str, after: int, limit: int) -> tuple[str, int, list[str]]:
        return asyncio.run(self.hub.logs_after(function, after, limit))


Deploy = Callable[[dict[str, str]], DeployJob]


@pytest.fixture
def plane(tmp_path: Path) -> ControlPlane:
    settings = PlatformSettings.from_env(home=tmp_path / "home", store=StoreConfig(kind="local", root=str(tmp_path / "store")))
    settings.home.mkdir()
    registry = Registry(settings.database_url)
    return ControlPlane(settings, registry, open_store(settings.store), FakeDeployer(), InProcessHub(),  # type: ignore[arg-type]
                        FlowState(settings.database_url))


_BUNDLES: dict[frozenset[tuple[str, str]], Bundle] = {}  # discovery runs a subprocess: build each project once


@pytest.fixture
def deploy(plane: ControlPlane, make_project: ProjectFactory) -> Deploy:
    """Build the project from {file: source}, store its bundle and run a deploy job to its end."""

    def run(files: dict[str, str]) -> DeployJob:
        key = frozenset(files.items())
        bundle = _BUNDLES.get(key) or _BUNDLES.setdefault(key, build_bundle(make_project(files)))
        put_bundle(plane.store, bundle.sha256, bundle.data)
        job = plane.start_deploy(bundle.sha256)
        deadline = time.monotonic() + 30
        while job.state == "running" and time.monotonic() < deadline:
            job.wait(len(job.events), timeout=1)
        assert job.state != "running"
        return job

    return run


def project(body: str = "return a + b", **options: str) -> dict[str, str]:
    extra = "".join(f", {k}={v}" for k, v in options.items())
    return {"main.py": f"import fn\n\n\n@fn.function(cpus=0.25{extra})\ndef add(a: int, b: int) -> int:\n    {body}\n"}


def stages(job: DeployJob, function: str) -> list[str]:
    return [e["stage"] for e in job.events if e["function"] == function]


def test_a_deploy_records_loads_applies_publishes_then_says_deployed(plane: ControlPlane, deploy: Deploy) -> None:
    job = deploy(project())
    assert job.state == "succeeded"
    assert job.results == {"add": {"status": "deployed", "version": 1}}
    assert stages(job, "add") == ["recorded", "loading", "loaded", "deploying", "deployed"]
    assert plane.registry.active("add").number == 1  # type: ignore[union-attr]
    hub: InProcessHub = plane.hub  # type: ignore[assignment]
    assert [s["name"] for s in hub.read("functions")] == ["add"]  # the gateway can route it before "deployed"
    assert plane.deployer.applied == [("add", 1, True)]  # type: ignore[attr-defined]


def test_the_same_code_and_spec_again_is_unchanged(plane: ControlPlane, deploy: Deploy) -> None:
    deploy(project())
    again = deploy(project())
    assert again.results == {"add": {"status": "unchanged", "version": 1}}
    assert plane.deployer.applied == [("add", 1, True)]  # type: ignore[attr-defined]


def test_code_that_fails_to_load_fails_the_deploy_and_the_previous_version_keeps_serving(
        plane: ControlPlane, deploy: Deploy) -> None:
    deploy(project())
    plane.deployer.load_errors["add"] = "importing main raised ZeroDivisionError: division by zero"  # type: ignore[attr-defined]
    job = deploy(project("return (a + b) // 0"))
    assert job.state == "failed"
    assert job.results["add"] == {"status": "failed", "version": 2,
                                  "error": "importing main raised ZeroDivisionError: division by zero"}
    assert plane.registry.active("add").number == 1  # type: ignore[union-attr]
    assert plane.deployer.applied == [("add", 1, True)]  # type: ignore[attr-defined]  # Serve never saw version 2


def test_serve_failing_a_new_version_puts_the_previous_one_back(plane: ControlPlane, deploy: Deploy) -> None:
    deploy(project())
    plane.deployer.serve_errors["add"] = "replica crashed"  # type: ignore[attr-defined]
    job = deploy(project("return a - b"))
    assert job.results["add"]["status"] == "failed" and job.results["add"]["error"] == "replica crashed"
    assert plane.deployer.applied == [("add", 1, True), ("add", 2, True), ("add", 1, False)]  # type: ignore[attr-defined]
    assert plane.registry.active("add").number == 1  # type: ignore[union-attr]


def test_a_failed_first_version_is_removed_from_serve(plane: ControlPlane, deploy: Deploy) -> None:
    plane.deployer.serve_errors["add"] = "replica crashed"  # type: ignore[attr-defined]
    job = deploy(project())
    assert job.state == "failed"
    assert plane.deployer.removed == ["add"]  # type: ignore[attr-defined]
    assert plane.registry.active("add") is None


def test_a_function_no_node_can_place_fails_before_loading(plane: ControlPlane, deploy: Deploy) -> None:
    plane.deployer.placement["add"] = "no node is in pool 'tpu'"  # type: ignore[attr-defined]
    job = deploy(project())
    assert job.results["add"] == {"status": "failed", "version": 1, "error": "no node is in pool 'tpu'"}
    assert stages(job, "add") == ["recorded", "failed"]


def test_a_route_that_starts_with_a_function_name_is_refused(plane: ControlPlane, deploy: Deploy) -> None:
    deploy(project())
    with pytest.raises(fn.Conflict, match=r"route /add/\{x\} starts with /add, the endpoint of function 'add'"):
        deploy({"other.py": "import fn\n\n\n@fn.function(route='/add/{x}')\ndef other(x: str) -> str:\n    return x\n"})


def test_two_functions_cannot_serve_the_same_route_shape(plane: ControlPlane, deploy: Deploy) -> None:
    deploy({"a.py": "import fn\n\n\n@fn.function(route='/search/{c}')\ndef first(c: str) -> str:\n    return c\n"})
    with pytest.raises(fn.Conflict, match=r"route /search/\{k\} is already served by 'first'"):
        deploy({"b.py": "import fn\n\n\n@fn.function(route='/search/{k}')\ndef second(k: str) -> str:\n    return k\n"})


def test_removing_a_function_unpublishes_it(plane: ControlPlane, deploy: Deploy) -> None:
    deploy(project())
    assert plane.delete("add") == []
    hub: InProcessHub = plane.hub  # type: ignore[assignment]
    assert hub.read("functions") == []
    assert plane.deployer.removed == ["add"]  # type: ignore[attr-defined]
    with pytest.raises(fn.NotFound, match="no function named 'add'"):
        plane.delete("add")


def test_an_internal_function_deploys_with_no_endpoint_and_is_listed_as_internal(
        plane: ControlPlane, deploy: Deploy, monkeypatch: pytest.MonkeyPatch) -> None:
    from fnplatform.serving import ray_compat

    monkeypatch.setattr(ray_compat, "serve_instance_details", lambda: {"applications": {}})  # Serve's replica states
    job = deploy(project(internal="True"))
    assert job.results == {"add": {"status": "deployed", "version": 1}}
    messages = {e["stage"]: e["message"] for e in job.events if e["function"] == "add"}
    assert messages["deploying"] == "Serve application with no HTTP route (internal)"
    assert messages["deployed"] == "version 1 internal: called by functions and flows only"
    hub: InProcessHub = plane.hub  # type: ignore[assignment]
    assert [(s["name"], s["internal"]) for s in hub.read("functions")] == [("add", True)]  # the gateway leaves it out
    (row,) = plane.list_functions()
    assert (row["name"], row["internal"], row["endpoint"]) == ("add", True, None)
    described = plane.describe("add")
    assert (described["internal"], described["endpoint"], described["spec"]["internal"]) == (True, None, True)


def test_describe_shows_the_last_calls_that_waited_for_a_replica_from_their_log_lines(
        plane: ControlPlane, deploy: Deploy, monkeypatch: pytest.MonkeyPatch) -> None:
    from fnplatform.logtext import format_line
    from fnplatform.serving import ray_compat

    monkeypatch.setattr(ray_compat, "serve_instance_details", lambda: {"applications": {}})
    deploy(project())
    cold = "total=1.21, scale=0.66, place=0.02, start=0.12, fetch=0.01, import=0.05, setup=0.00, route=0.35"
    lines = [format_line("INFO", "r1", f"rid{n}", f"POST /add -> 200 in 3.0 ms, cold start: {cold}") for n in range(7)]
    lines.insert(3, format_line("INFO", "r1", "user", "my own print: cold start: soon"))  # not a breakdown
    lines.append(format_line("INFO", "r1", "warm", "POST /add -> 200 in 1.0 ms"))
    plane.logbook.store.add("add", lines)
    described = plane.describe("add")["cold_starts"]
    assert [c["request_id"] for c in described] == ["rid3", "rid4", "rid5", "rid6"]  # the last 5 marked lines
    assert described[-1]["seconds"] == {"total": 1.21, "scale": 0.66, "place": 0.02, "start": 0.12, "fetch": 0.01,
                                        "import": 0.05, "setup": 0.0, "route": 0.35}
