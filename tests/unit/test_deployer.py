"""What the deployer hands Serve, without Ray running: the real ``RunTarget`` (an internal function gets no
HTTP route), and a deploy's wait, which has no route to wait for when the function is internal."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import fn
from fnplatform.control.deployer import (
    MAX_GRACEFUL_SHUTDOWN_S,
    MODELS_PER_CHECK,
    DeployContext,
    Deployer,
    check_groups,
    route_prefix,
    run_target,
)
from fnplatform.storage.blobs import StoreConfig
from fnplatform.storage.registry import Registry, VersionRecord


def version(spec: fn.FunctionSpec) -> VersionRecord:
    return VersionRecord(spec.name, 1, spec, "ab" * 32, "deploying", None, datetime(2025, 1, 1))


def context(tmp_path: Path, **options: Any) -> DeployContext:
    return DeployContext(store=StoreConfig(kind="local", root=str(tmp_path / "store")), cache_dir=str(tmp_path / "cache"),
                         **options)


def test_an_internal_function_gets_no_http_route_and_the_others_get_their_name(tmp_path: Path) -> None:
    from ray.serve.api import RunTarget
    from ray.serve.deployment import Application

    internal = run_target(version(fn.FunctionSpec(name="vector-store", internal=True)), context(tmp_path))
    public = run_target(version(fn.FunctionSpec(name="vector-ingest")), context(tmp_path))
    assert isinstance(internal, RunTarget) and isinstance(internal.target, Application)
    assert (internal.name, internal.route_prefix) == ("vector-store", None)  # Serve: not exposed over HTTP
    assert (public.name, public.route_prefix) == ("vector-ingest", "/vector-ingest")
    assert route_prefix(fn.FunctionSpec(name="vector-search", route="/search/{collection}")) == "/vector-search"



@pytest.mark.parametrize(("timeout_s", "grace_s"), [(1, 6.0), (300, 305.0), (86400, MAX_GRACEFUL_SHUTDOWN_S)])
def test_a_stopping_replica_may_finish_calls_up_to_timeout_s(tmp_path: Path, timeout_s: float, grace_s: float) -> None:
    target = run_target(version(fn.FunctionSpec(name="embed", timeout_s=timeout_s)), context(tmp_path))
    config = target.target._bound_deployment._deployment_config  # Serve has no public reader of an Application's options
    assert config.graceful_shutdown_timeout_s == grace_s
    assert config.graceful_shutdown_wait_loop_s == 2  # Serve's default: how often a stopping replica checks it is idle
def test_deploy_checks_share_a_process_only_within_one_bundle_env_pool_secrets_and_device_kind() -> None:
    def spec(name: str, **options: Any) -> VersionRecord:
        return version(fn.FunctionSpec(name=name, **options))

    plain = [spec(f"f{i}", cpus=0.25 * (i % 3 + 1)) for i in range(30)]  # different cpus: still one process
    others = [spec("with-env", env={"MODE": "x"}), spec("on-gpu-pool", pool="gpu"), spec("uses-gpu", gpus=0.5),
              spec("has-secret", secrets=["db"]), spec("app", kind="asgi", entrypoint="main:app")]
    other_bundle = VersionRecord("elsewhere", 1, fn.FunctionSpec(name="elsewhere"), "cd" * 32, "deploying", None,
                                 datetime(2025, 1, 1))
    models = [spec(f"m{i}", kind="model", entrypoint=f"main:M{i}") for i in range(MODELS_PER_CHECK + 1)]
    groups = check_groups(plain + others + [other_bundle] + models)
    names = sorted(sorted(v.spec.name for v in group) for group in groups)
    assert sorted(v.spec.name for v in plain) in names
    for alone in ("with-env", "on-gpu-pool", "uses-gpu", "has-secret", "app", "elsewhere"):
        assert [alone] in names
    model_groups = [g for g in names if g[0].startswith("m")]
    assert sorted(len(g) for g in model_groups) == [1, MODELS_PER_CHECK]  # a few models' setup() per process
    assert sum(len(g) for g in groups) == len(plain) + len(others) + 1 + len(models)


class FakeServe:
    """``serve.status()`` as the deploy's wait reads it: every application RUNNING."""

    def __init__(self, names: list[str]) -> None:
        self.applications = {name: SimpleNamespace(status="RUNNING", deployments={}, message="") for name in names}

    def status(self) -> SimpleNamespace:
        return SimpleNamespace(applications=self.applications)


@pytest.fixture
def deployer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Deployer:
    from ray import serve

    monkeypatch.setattr(serve, "status", FakeServe(["add", "vector-store"]).status)
    return Deployer(Registry(f"sqlite:///{tmp_path / 'registry.db'}"),
                    context(tmp_path, ingress_url="http://ingress", timeout_s=0.5))


def test_a_deploy_waits_for_the_ingress_route_of_a_public_function_only(deployer: Deployer,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []

    def routes() -> dict[str, str]:
        asked.append(1)
        return {}  # the ingress routes nothing yet

    monkeypatch.setattr(deployer, "ingress_routes", routes)
    assert deployer.wait_running(["vector-store"], internal={"vector-store"}) == {"vector-store": None}
    assert asked == []  # nothing to wait for: the ingress is not even asked
    results = deployer.wait_running(["add", "vector-store"], internal={"vector-store"})
    assert results["vector-store"] is None
    assert "did not route /add" in str(results["add"])
    monkeypatch.setattr(deployer, "ingress_routes", lambda: {"/add": "add"})
    assert deployer.wait_running(["add", "vector-store"], internal={"vector-store"}) == {"add": None, "vector-store": None}
