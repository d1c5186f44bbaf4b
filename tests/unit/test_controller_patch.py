"""ray_compat.speed_up_target_groups: Serve's controller builds HAProxy's target groups with the running replicas
computed once per broadcast instead of once per application, and with the same result."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from fnplatform.serving import ray_compat


class FakeManager:
    def __init__(self, running: dict[Any, list[str]]) -> None:
        self.running, self.calls, self.details_built = running, 0, 0

    def get_running_replica_infos(self) -> dict[Any, list[str]]:
        self.calls += 1
        return dict(self.running)


def controller_class() -> type:
    from ray.serve._private.common import DeploymentID

    class Controller:
        """The shape of Serve's: a broadcast that asks for each app's running ingress replicas."""

        def __init__(self, apps: list[str], manager: FakeManager) -> None:
            self.apps, self.deployment_state_manager, self.sent = apps, manager, None

        def broadcast_target_groups_if_changed(self) -> None:
            self.sent = {app: self._get_running_replica_details_for_deployment(app, app) for app in self.apps}

        def _get_running_replica_details_for_deployment(self, app_name: str, deployment_name: str) -> list[str]:
            self.deployment_state_manager.details_built += 1
            infos = self.deployment_state_manager.get_running_replica_infos()
            return [f"detail of {r}" for r in infos.get(DeploymentID(name=deployment_name, app_name=app_name), [])]

    return Controller


def test_the_running_replicas_are_computed_once_per_broadcast_with_the_same_target_groups() -> None:
    from ray.serve._private.common import DeploymentID

    apps = [f"f{i}" for i in range(50)]
    running = {DeploymentID(name="f7", app_name="f7"): ["r1", "r2"]}
    original_cls, patched_cls = controller_class(), controller_class()
    ray_compat.speed_up_target_groups(patched_cls)
    original = original_cls(apps, FakeManager(running))
    patched = patched_cls(apps, FakeManager(running))
    original.broadcast_target_groups_if_changed()
    patched.broadcast_target_groups_if_changed()
    assert patched.sent == original.sent == {**{a: [] for a in apps}, "f7": ["detail of r1", "detail of r2"]}
    assert original.deployment_state_manager.calls == 50
    assert patched.deployment_state_manager.calls == 1
    assert patched.deployment_state_manager.details_built == 1  # only the app with running replicas
    patched.deployment_state_manager.running = {}  # outside a broadcast nothing is cached
    assert patched._get_running_replica_details_for_deployment("f7", "f7") == []
    assert "get_running_replica_infos" not in vars(patched.deployment_state_manager)


def test_serve_still_has_what_the_patch_replaces() -> None:
    import inspect

    from ray.serve._private.controller import ServeController
    from ray.serve._private.deployment_state import DeploymentStateManager

    def parameters(method: Any) -> list[str]:
        # Ray adds _ray_trace_ctx to an actor class's methods once the class has been made an actor in this process
        return [n for n in inspect.signature(method).parameters if n != "_ray_trace_ctx"]

    assert parameters(ServeController._get_running_replica_details_for_deployment) == [
        "self", "app_name", "deployment_name"]
    assert parameters(ServeController.broadcast_target_groups_if_changed) == ["self"]
    assert parameters(DeploymentStateManager.get_running_replica_infos) == ["self"]


@pytest.mark.parametrize(("haproxy", "patched"), [("1", True), ("0", False)])
def test_the_controller_is_patched_when_serve_imports_it_in_a_process_with_haproxy(haproxy: str, patched: bool) -> None:
    code = ("import sys, fnplatform.serving.ray_compat\n"
            "assert 'ray.serve._private.controller' not in sys.modules\n"
            "from ray.serve._private.controller import ServeController\n"
            "print(ServeController.broadcast_target_groups_if_changed.__name__)")
    run = subprocess.run([sys.executable, "-c", code], env={**os.environ, "RAY_SERVE_ENABLE_HA_PROXY": haproxy},
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == ("broadcast_once" if patched else "broadcast_target_groups_if_changed")
