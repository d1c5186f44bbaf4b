"""Every use of a private Ray or Serve API, in one place, each saying which public API is missing.

They are tied to the Ray version ``pyproject.toml`` pins (``RAY_VERSION``): ``check_ray_version``
runs at control-plane start and refuses another version, because any of these may move in a
release. Ray is imported inside each function, so importing this module costs nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import uuid
from typing import Any

from fnplatform.deadlines import SERVE_CALL_TIMEOUT_S, ray_get, unavailable

from . import ingress_errors

RAY_VERSION = "2.60.0"

# Preloaded into every Ray worker (RAY_preload_python_modules) so a replica starting on an idle worker skips
# importing them. Missing public API: a way to name the replica runtime to preload, or a warm-worker hook.
PRELOAD_MODULES = ("ray.serve", "ray.serve._private.replica", "fnplatform.serving.replica")


def check_ray_version() -> None:
    import ray

    if ray.__version__ != RAY_VERSION:
        from fn import ConfigError

        raise ConfigError(f"fn needs ray=={RAY_VERSION} (its private Serve APIs are pinned, see fnplatform.serving."
                          f"ray_compat), but ray {ray.__version__} is installed; pip install 'ray[serve]=={RAY_VERSION}'")


def set_code_version(deployment: Any, version: str) -> None:
    """Serve 2.60 removed the public ``version`` option and gives each Python-API deploy a random code
    version, so re-applying the registry would restart every replica. The private field still feeds the
    deploy call; with it, an unchanged function is a no-op. Missing public API: ``Deployment.options(version=)``."""
    deployment._version = version


def delete_app_without_waiting(name: str) -> None:
    """``serve.delete`` blocks about 2.4 s per application. Missing public API: a non-blocking delete."""
    from ray import serve

    serve.delete(name, _blocking=False)


def serve_instance_details(timeout_s: float = SERVE_CALL_TIMEOUT_S) -> dict[str, Any]:
    """Per-replica states (id, pid, node, start time) of every application; 503 when Serve's controller does not
    answer within *timeout_s*. Missing public API: ``serve.status()`` gives counts, not replicas; the state API
    needs the dashboard, which the local platform does not run."""
    import ray
    from ray.serve.context import _get_global_client

    if not ray.is_initialized():  # _get_global_client would start a Ray of its own in this process
        raise unavailable("Serve's controller", "this process is not connected to Ray")
    client: Any = _get_global_client()
    details: dict[str, Any] = ray_get(client._controller.get_serve_instance_details.remote(), "Serve's controller",
                                      timeout_s)
    return details


def replica_scheduled_at(timeout_s: float = SERVE_CALL_TIMEOUT_S) -> float | None:
    """When Serve's controller asked Ray for this replica's actor (wall-clock seconds), or None when it does not
    say. Called from inside a replica, off its event loop. Missing public API: the replica context has no
    start time, and the controller's deployment details are only reachable through its actor handle."""
    import ray
    from ray import serve
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    replica = serve.get_replica_context().replica_id
    controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    details = ray_get(controller.get_deployment_details.remote(replica.deployment_id.app_name,
                                                               replica.deployment_id.name), "Serve's controller", timeout_s)
    for found in details.replicas:
        if found.replica_id == replica.unique_id:
            return float(found.start_time_s) or None  # 0 until the controller has asked for the actor
    return None


def pending_demands(timeout_s: int = 5) -> list[dict[str, float]]:
    """The resources of each task and actor waiting for room in the cluster (what ``ray status`` lists as pending
    demands). Missing public API: Ray's pending demands are read through the autoscaler's own SDK."""
    import ray
    from ray.autoscaler.v2.sdk import get_cluster_status

    status = get_cluster_status(ray.get_runtime_context().gcs_address, timeout=timeout_s)
    return [dict(request.bundle) for demand in status.resource_demands.ray_task_actor_demand
            for request in demand.bundles_by_count]


def request_id(headers: Any) -> str:
    """The id Serve gave the current HTTP request (so log lines match Serve's own), else the caller's
    ``x-request-id``, else a new one. Missing public API: reading the request context in a deployment."""
    try:
        from ray.serve.context import _get_serve_request_context

        rid = _get_serve_request_context().request_id
        if rid:
            return str(rid)
    except Exception:  # noqa: BLE001 - the internal moved: fall back to our own id
        pass
    return str(headers.get("x-request-id") or uuid.uuid4().hex)


# Serve's HAProxy config binds its stats and Prometheus ports on every interface, makes its admin
# socket mode 666 and lists every route to anyone; on the local platform they are meant for this
# machine only. Missing public API: HAProxy bind addresses, socket mode and route listing in Serve's
# options. (The admin socket is also inside the runtime folder, 0700, so only the user reaches it.)
_HAPROXY_HARDENING = (
    ("stats socket {{ config.socket_path }} mode 666", "stats socket {{ config.socket_path }} mode 600"),
    ("bind :{{ config.metrics_port }}", "bind 127.0.0.1:{{ config.metrics_port }}"),
    ("bind *:{{ config.stats_port }}", "bind 127.0.0.1:{{ config.stats_port }}"),
    # The route list (every function's name) answers this machine only, where the deployer asks it; from
    # elsewhere /-/routes falls through to the catch-all gateway, which needs a key and answers 404.
    ("    acl routes path -i /-/routes\n", "    acl routes path -i /-/routes\n    acl routes_local src 127.0.0.1 ::1\n"),
    ('string "{{ route_info.routes_message }}" if routes\n', 'string "{{ route_info.routes_message }}" if routes routes_local\n'),
)
# Serve answers HAProxy's own 502/503/504 with a plain-text 500 (one errorfile); fn answers them with its
# JSON error (ingress_errors). Missing public API: error pages and a request id rule in Serve's options.
_SERVE_ERROR_FILES = """    # Normalize 502/503/504 to 500 per Serve's default behavior. 503
    # covers HAProxy's own "all retries exhausted / no server" response.
    {%- if config.error_file_path %}
    errorfile 502 {{ config.error_file_path }}
    errorfile 503 {{ config.error_file_path }}
    errorfile 504 {{ config.error_file_path }}
    {%- endif %}
"""
_HTTP_FRONTEND_BIND = "    bind {{ config.frontend_host }}:{{ config.frontend_port }}\n"
_HAPROXY_JSON_ERRORS = (
    (_SERVE_ERROR_FILES, "    # HAProxy's own errors as fn's JSON error (fnplatform.serving.ingress_errors)\n"
                         + ingress_errors.error_rules()),
    (_HTTP_FRONTEND_BIND, _HTTP_FRONTEND_BIND + ingress_errors.request_id_rules()),
    ("    http-request return status 404 content-type text/plain lf-string \"Path '%[path]' not found. Ping "
     "http://.../-/routes for available routes.\"\n", "    " + ingress_errors.no_route_rule() + "\n"),
)
# A replica that dies on a connection HAProxy had reused gets the caller's connection closed with no
# answer at all (HAProxy leaves the retry to the client); one connection per request makes it the JSON
# 502. It costs throughput under many concurrent callers (docs/benchmarks.md), so FN_INGRESS_REUSE=1
# keeps Serve's connection reuse for those who prefer that.
_HAPROXY_ONE_CONNECTION_PER_REQUEST = (("    http-reuse always\n", "    http-reuse always\n    option http-server-close\n"),)
INGRESS_REUSE_ENV = "FN_INGRESS_REUSE"
HARDEN_HAPROXY_ENV = "FN_HAPROXY_LOCAL_ONLY"


def patch_haproxy_template(template: str, *, reuse: bool = False) -> tuple[str, int]:
    """*template* (Serve's HAProxy config template) with fn's rewrites, and how many of them applied."""
    applied = 0
    rewrites = _HAPROXY_HARDENING + _HAPROXY_JSON_ERRORS + (() if reuse else _HAPROXY_ONE_CONNECTION_PER_REQUEST)
    for old, new in rewrites:
        if old in template and new not in template:
            template, applied = template.replace(old, new), applied + 1
    return template, applied


def harden_haproxy_config() -> int:
    """Rewrite Serve's HAProxy config template in this process (before Serve's HAProxy module imports it):
    stats and metrics on 127.0.0.1, the admin socket 0600, /-/routes for local callers, and HAProxy's own
    errors as fn's JSON error with the request id. Returns how many of the rewrites applied."""
    from ray.serve._private import haproxy_templates

    haproxy_templates.HAPROXY_CONFIG_TEMPLATE, applied = patch_haproxy_template(
        haproxy_templates.HAPROXY_CONFIG_TEMPLATE, reuse=os.environ.get(INGRESS_REUSE_ENV) == "1")
    return applied


if os.environ.get(HARDEN_HAPROXY_ENV) == "1":  # set by the local platform for its Ray workers (PRELOAD_MODULES)
    harden_haproxy_config()


# Serve's controller, on every control-loop step, builds HAProxy's target groups: for each application it asks for
# every deployment's running replicas (one dict over all deployments, per application: quadratic in the number of
# functions) and then builds the ingress deployment's details (pydantic models, deep copies) even when none runs.
# With 100 functions at zero that was a quarter of the controller's CPU at idle (py-spy). The patch computes the
# running replicas once per broadcast and skips the details of a deployment with none; the result is the same.
# Missing public API: none, this is Serve's own cost; the fix belongs upstream. Applied in the controller's process
# only, when Serve imports its controller module (so replicas never import it).
CONTROLLER_MODULE = "ray.serve._private.controller"


def speed_up_target_groups(controller_cls: Any) -> None:
    from ray.serve._private.common import DeploymentID

    broadcast = controller_cls.broadcast_target_groups_if_changed
    details = controller_cls._get_running_replica_details_for_deployment

    def broadcast_once(self: Any) -> None:
        manager = self.deployment_state_manager
        running = manager.get_running_replica_infos()
        manager.get_running_replica_infos = lambda: running  # shadows the method for this synchronous call only
        try:
            broadcast(self)
        finally:
            del manager.get_running_replica_infos

    def running_details(self: Any, app_name: str, deployment_name: str) -> Any:
        if not self.deployment_state_manager.get_running_replica_infos().get(DeploymentID(name=deployment_name,
                                                                                          app_name=app_name)):
            return []  # what Serve's own method returns then, without building the deployment's details
        return details(self, app_name, deployment_name)

    controller_cls.broadcast_target_groups_if_changed = broadcast_once
    controller_cls._get_running_replica_details_for_deployment = running_details


class _PatchController(importlib.abc.MetaPathFinder):
    """Applies speed_up_target_groups right after Serve's controller module is imported in this process."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != CONTROLLER_MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module: Any) -> None:
            exec_module(module)
            speed_up_target_groups(module.ServeController)

        spec.loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


if os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") == "1" and CONTROLLER_MODULE not in sys.modules:  # target groups: HAProxy's
    sys.meta_path.insert(0, _PatchController())
