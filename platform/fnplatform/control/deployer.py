"""The deployer: reconciles the registry's desired state into Ray Serve.

One Serve application per function (route ``/<name>``; none for an internal function), built by
``build_application`` from the spec alone. A new version is first loaded by a one-shot Ray task with the replica's exact
resources and runtime environment (so an import error or a failing ``setup()`` is reported with
the user's own message while the previous version keeps serving), then submitted to Serve
without blocking and polled against a deadline.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from fn import ConfigError, FunctionSpec
from fnplatform.pools import REPLICA_POOL_SHARE, pool_resource
from fnplatform.serving import autoscaling, ray_compat
from fnplatform.serving.apps import AppReplica
from fnplatform.serving.replica import FunctionReplica, validate_versions
from fnplatform.serving.versions import app_name
from fnplatform.storage.blobs import StoreConfig
from fnplatform.storage.registry import Registry, VersionRecord
from fnplatform.storage.secrets import SecretStore

from .installed import InstalledRequirements

log = logging.getLogger("fnplatform")
GATEWAY_APP = "_fn_gateway"
FLOWS_APP = "_fn_flows"
JOBS_APP = "_fn_jobs"
MIB = 1024 * 1024
# Tuned for scale-from-zero (measured in docs/benchmarks.md): in Ray 2.60 the deprecated metrics_interval_s
# still sets how often replicas and handles push load, so it bounds how fast a burst is seen.
AUTOSCALING_PROFILE: dict[str, float] = {
    "metrics_interval_s": 0.5,
    "look_back_period_s": 2.0,
    "upscale_delay_s": 0.0,
}

# A replica being stopped (redeploy, downscale, scale to zero) may finish its calls for up to timeout_s plus a margin
# to send the answer: a fixed 5 s cut longer calls off mid-run. Capped because a redeploy or scale-down waits that
# long for a replica; a call still running then would be cut off at the cap.
SHUTDOWN_MARGIN_S = 5.0
MAX_GRACEFUL_SHUTDOWN_S = 600.0


def graceful_shutdown_timeout_s(spec: FunctionSpec) -> float:
    return min(spec.timeout_s + SHUTDOWN_MARGIN_S, MAX_GRACEFUL_SHUTDOWN_S)


@dataclass(frozen=True)
class DeployContext:
    store: StoreConfig
    cache_dir: str
    strict_resources: bool = True  # local clusters cannot grow: refuse what no node could ever place
    timeout_s: float = 300.0
    ingress_url: str = ""  # where callers reach functions; a deploy waits until it routes /<name> ("" skips that)
    cache_policy: dict[str, Any] = field(default_factory=dict)  # CachePolicy.to_dict(): node cache and unpacking caps


def version_tag(version: VersionRecord, secrets_tag: str = "") -> str:
    # Without secrets the spec's JSON is as before the option existed: upgrading the platform restarts nothing.
    spec_json = version.spec.model_dump_json(exclude=None if version.spec.secrets else {"secrets"})
    digest = hashlib.sha256((spec_json + version.bundle_sha256 + secrets_tag).encode()).hexdigest()
    return digest[:16]


def runtime_env(spec: FunctionSpec, pip: bool = True) -> dict[str, Any]:
    """Only what a function asks for. An empty runtime env lets Ray start the replica on an idle, already
    started worker process instead of a new one; thread caps are applied inside the replica instead. Without
    *pip* (the pool's environment already satisfies the requirements: bundles.requirements) no virtualenv either."""
    env: dict[str, Any] = {}
    if spec.env:
        env["env_vars"] = dict(spec.env)
    if spec.requirements and pip:
        env["pip"] = {"packages": sorted(spec.requirements), "pip_check": False}
    return env


def actor_options(spec: FunctionSpec, pip: bool = True) -> dict[str, Any]:
    options: dict[str, Any] = {
        "num_cpus": spec.cpus,
        "num_gpus": spec.gpus,
        "resources": {pool_resource(spec.pool): REPLICA_POOL_SHARE},
        "runtime_env": runtime_env(spec, pip),
    }
    if spec.memory_mb:
        options["memory"] = spec.memory_mb * MIB
    return options


def autoscaling_config(spec: FunctionSpec, give_way: bool = True) -> dict[str, Any]:
    # Serve's delays are 0: the policy holds each downscale for idle_timeout_s itself, and shortens it for an idle
    # function while another one waits for room (serving.autoscaling).
    return {**AUTOSCALING_PROFILE, "min_replicas": spec.min_replicas, "max_replicas": spec.max_replicas,
            "target_ongoing_requests": spec.target_concurrency, "downscale_delay_s": 0.0,
            "downscale_to_zero_delay_s": 0.0, "policy": autoscaling.policy(spec, give_way)}


def build_application(version: VersionRecord, ctx: DeployContext, secrets_tag: str = "", pip: bool = True) -> Any:
    """The Serve application for one function version: the generic replica bound to its spec. *secrets_tag*
    names the revisions of its secrets (never their values): a changed secret is a new Serve version."""
    from ray import serve

    spec = version.spec
    # A web app is Serve's ASGI ingress, its app built in the replica (serving.apps): WebSockets and streaming included.
    deployment: Any = serve.deployment(serve.ingress()(AppReplica) if spec.kind == "asgi" else FunctionReplica)
    deployment = deployment.options(
        name=spec.name,
        ray_actor_options=actor_options(spec, pip),
        autoscaling_config=autoscaling_config(spec, give_way=ctx.strict_resources),
        max_ongoing_requests=spec.max_concurrency,
        max_queued_requests=spec.max_queued,
        graceful_shutdown_timeout_s=graceful_shutdown_timeout_s(spec),
        max_constructor_retry_count=3,
    )
    # re-applying an unchanged function restarts nothing
    ray_compat.set_code_version(deployment, version_tag(version, secrets_tag))
    return deployment.bind(spec.model_dump_json(), version.bundle_sha256, ctx.store.to_dict(), ctx.cache_dir,
                           ctx.cache_policy, version.number)


def route_prefix(spec: FunctionSpec) -> str | None:
    """``/<name>``; None for an internal function: Serve then gives it no HTTP route, only handles reach it."""
    return None if spec.internal else f"/{spec.name}"


def run_target(version: VersionRecord, ctx: DeployContext, secrets_tag: str = "", extra: bool = False,
               pip: bool = True) -> Any:
    """What ``serve.run_many`` takes for one function version: the application ``<name>`` at its route, or with
    *extra* (a canary, shadow or pinned version beside the active one) ``<name>@v<N>``, reached by handles only."""
    from ray.serve.api import RunTarget

    return RunTarget(target=build_application(version, ctx, secrets_tag, pip),
                     name=app_name(version.spec.name, version.number if extra else None),
                     route_prefix=None if extra else route_prefix(version.spec),
                     logging_config={"enable_access_log": False})


MODELS_PER_CHECK = 4


def check_groups(versions: list[VersionRecord], pip: Callable[[FunctionSpec], bool] = lambda spec: True
                 ) -> list[list[VersionRecord]]:
    """Versions that may share one deploy-time check process: one bundle, runtime env, pool, secrets and kind of
    device (a CPU-only function is never checked on a GPU node it would not run on). *pip*: whether a spec's
    requirements need a pip virtualenv (by default they all do)."""
    groups: dict[str, list[VersionRecord]] = {}
    for version in versions:
        spec = version.spec
        key = json.dumps([version.bundle_sha256, runtime_env(spec, pip(spec)), spec.pool, sorted(spec.secrets), spec.gpus > 0,
                          spec.kind], sort_keys=True)
        groups.setdefault(key, []).append(version)
    chunks = []
    for group in groups.values():
        # A model's setup() may hold a large model in memory: a few per process, not every model of the bundle at once.
        size = MODELS_PER_CHECK if group[0].spec.kind == "model" else len(group)
        chunks += [group[i:i + size] for i in range(0, len(group), size)]
    return chunks


class Deployer:
    def __init__(self, registry: Registry, ctx: DeployContext, secrets: SecretStore | None = None) -> None:
        self.registry = registry
        self.ctx = ctx
        self.secrets = secrets or SecretStore(registry.url)  # revisions only: the deployer never decrypts
        self._lock = threading.Lock()  # one Serve reconfiguration at a time
        self.requirements = InstalledRequirements()  # requirement sets a pool's image already meets: no pip

    # checks -------------------------------------------------------------------------------
    def placement_problem(self, spec: FunctionSpec) -> str | None:
        """Why no node could ever run this spec, on a cluster that cannot grow; None if it could."""
        if not self.ctx.strict_resources:
            return None
        import ray

        total: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        resource = pool_resource(spec.pool)
        if resource not in total:
            pools = sorted(k.removeprefix("pool_") for k in total if k.startswith("pool_"))
            return f"no node is in pool {spec.pool!r} (Ray resource {resource}); pools here: {', '.join(pools) or 'none'}"
        if spec.gpus > total.get("GPU", 0):
            return (f"gpus={spec.gpus:g} but the cluster has {total.get('GPU', 0):g} GPUs; "
                    f"start the local platform with 'fnctl up --gpus N' to declare GPUs")
        if spec.cpus > total.get("CPU", 0):
            return f"cpus={spec.cpus:g} but the cluster has {total.get('CPU', 0):g} CPUs"
        return None

    def validate(self, versions: list[VersionRecord]) -> dict[str, str | None]:
        """Load every version once in a throwaway process with the replica's resources; errors by name.

        Functions that would get the same kind of process (one bundle, runtime env, pool, secrets) are checked
        together in one process sized for the largest of them: a worker process started per function made a
        50-function deploy spend most of a minute starting Python. A group whose process dies (a setup() that
        exits or crashes the interpreter) is checked again one function per process, so the culprit is named."""
        import ray

        self.requirements.check(versions)
        groups = check_groups(versions, self.requirements.needs_pip)
        errors: dict[str, str | None] = {}
        deadline = time.monotonic() + self.ctx.timeout_s
        pending = {self._check(group): group for group in groups}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            group = pending.pop(ready[0])
            try:
                results = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - e.g. RuntimeEnvSetupError with pip's own message
                if len(group) > 1 and not isinstance(exc, ray.exceptions.RuntimeEnvSetupError):
                    pending.update({self._check([version]): [version] for version in group})
                    continue
                results = [_ray_error_text(exc)] * len(group)
            errors.update({v.spec.name: error for v, error in zip(group, results, strict=True)})
        for ref, group in pending.items():
            ray.cancel(ref, force=True)
            for version in group:
                errors[version.spec.name] = (
                    f"did not load within {self.ctx.timeout_s:g} s: no node of pool could start it (not enough free "
                    f"CPU/GPU/memory), or installing requirements or setup() is too slow")
        return errors

    def _check(self, group: list[VersionRecord]) -> Any:
        import ray

        options = actor_options(group[0].spec, self.requirements.needs_pip(group[0].spec))
        options["num_cpus"] = max(v.spec.cpus for v in group)
        options["num_gpus"] = max(v.spec.gpus for v in group)
        memory = max(v.spec.memory_mb or 0 for v in group)
        options.pop("memory", None)
        if memory:
            options["memory"] = memory * MIB
        task = ray.remote(max_retries=0, max_calls=1, **options)(validate_versions)
        return task.remote([v.spec.model_dump_json() for v in group], group[0].bundle_sha256,
                           self.ctx.store.to_dict(), self.ctx.cache_dir, self.ctx.cache_policy)

    # Serve ---------------------------------------------------------------------------------
    def apply(self, versions: list[VersionRecord], wait: bool = True, extra: bool = False) -> dict[str, str | None]:
        """Submit the versions to Serve without blocking; with *wait*, poll until each runs or fails (errors by
        function name). With *extra*, each runs as ``<name>@v<N>`` beside the active version (no route)."""
        from ray import serve

        if not versions:
            return {}
        self.requirements.check(versions)
        pip = self.requirements.needs_pip
        targets = [run_target(v, self.ctx, self.secrets_tag(v.spec), extra, pip(v.spec)) for v in versions]
        with self._lock:
            serve.run_many(targets, wait_for_ingress_deployment_creation=False, wait_for_applications_running=False)
        if not wait:
            return {}
        apps = {app_name(v.function, v.number if extra else None): v.function for v in versions}
        outcome = self.wait_running(list(apps), internal={a for a, v in zip(apps, versions, strict=True)
                                                          if extra or v.spec.internal})
        return {apps[app]: error for app, error in outcome.items()}

    def secrets_tag(self, spec: FunctionSpec) -> str:
        revisions = self.secrets.revisions(spec.secrets)
        return ",".join(f"{name}:{revisions.get(name, 0)}" for name in spec.secrets)

    def wait_running(self, names: list[str], internal: Collection[str] = ()) -> dict[str, str | None]:
        """Until each app runs in Serve and the ingress routes ``/<name>`` to it (None), or fails (its error).

        Serve reports an application running before the ingress (HAProxy, reloaded by Serve a little
        later; or the proxies) routes its path: a call made the instant a deploy said "deployed" got a
        404. So the deploy also waits until the ingress's own route table lists the function (an
        *internal* one has no route to wait for)."""
        from ray import serve

        results: dict[str, str | None] = {}
        running: dict[str, float] = {}  # name -> when Serve reported it running
        deadline = time.monotonic() + self.ctx.timeout_s
        while len(results) < len(names) and time.monotonic() < deadline:
            starting = [n for n in names if n not in results and n not in running]
            if starting:
                apps = serve.status().applications
                for name in starting:
                    app = apps.get(name)
                    if app is None:
                        continue
                    if app.status == "RUNNING":
                        running[name] = time.monotonic()
                    elif app.status in {"DEPLOY_FAILED", "UNHEALTHY"}:
                        messages = [d.message for d in app.deployments.values() if d.message]
                        results[name] = "\n".join(messages) or app.message or str(app.status)
            for name in running.keys() & internal:
                results.setdefault(name, None)  # no route to wait for
            unrouted = [n for n in names if n in running and n not in results]
            if unrouted:
                routes = self.ingress_routes() if self.ctx.ingress_url else None
                for name in unrouted:
                    if routes is None or routes.get(f"/{name}") == name:
                        results[name] = None
                        log.info("the ingress routes /%s %.0f ms after Serve reported it running", name,
                                 (time.monotonic() - running[name]) * 1000)
            if len(results) < len(names):
                time.sleep(0.2 if starting else 0.02)
        for name in names:
            if name in running:
                results.setdefault(name, f"Serve runs {name!r} but the ingress at {self.ctx.ingress_url} did not route "
                                         f"/{name} within {self.ctx.timeout_s:g} s")
            results.setdefault(name, f"Serve did not report {name!r} running within {self.ctx.timeout_s:g} s")
        return results

    def ingress_routes(self) -> dict[str, str]:
        """The ingress's own route table (``GET /-/routes``: route prefix -> application), {} while it does not answer."""
        import httpx

        try:
            response = httpx.get(f"{self.ctx.ingress_url}/-/routes", timeout=2.0)
            routes = response.json() if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return {}
        return routes if isinstance(routes, dict) else {}

    def remove(self, name: str) -> None:
        with self._lock:
            ray_compat.delete_app_without_waiting(name)

    def extra_versions(self, name: str) -> list[int]:
        """The versions of *name* that run in Serve beside the active one (applications ``<name>@v<N>``)."""
        from ray import serve

        prefix = app_name(name, 0)[:-1]
        return sorted(int(app[len(prefix):]) for app in serve.status().applications
                      if app.startswith(prefix) and app[len(prefix):].isdigit())

    def ensure_gateway(self) -> None:
        """The platform's own Serve applications (the JSON 404 at ``/``, the flows API at ``/flows``, the jobs API at
        ``/jobs``) and the job runner, which must run even before anyone spawns a job: jobs queued before a restart."""
        from ray import serve
        from ray.serve.api import RunTarget

        from fnplatform.flows.gateway import FlowGateway
        from fnplatform.jobs.gateway import JobGateway
        from fnplatform.jobs.runner import runner
        from fnplatform.serving.gateway import Gateway

        options = {"num_replicas": 1, "max_ongoing_requests": 1000,
                   "ray_actor_options": {"num_cpus": 0, "resources": {pool_resource("api"): REPLICA_POOL_SHARE}}}
        deployment: Any = serve.deployment
        catch_all = deployment(Gateway).options(name="gateway", **options)
        flows = deployment(FlowGateway).options(name="flows", **options)
        jobs = deployment(JobGateway).options(name="jobs", **options)
        targets = [
            RunTarget(target=catch_all.bind(), name=GATEWAY_APP, route_prefix="/",
                      logging_config={"enable_access_log": False}),
            RunTarget(target=flows.bind(self.ctx.store.to_dict()), name=FLOWS_APP,
                      route_prefix="/flows", logging_config={"enable_access_log": False}),
            RunTarget(target=jobs.bind(self.ctx.store.to_dict()), name=JOBS_APP,
                      route_prefix="/jobs", logging_config={"enable_access_log": False}),
        ]
        with self._lock:
            try:
                serve.run_many(targets)
            except RuntimeError as exc:  # Serve says only "Failed to update the deployments": the replicas' own reason
                apps = serve.status().applications
                reasons = [d.message.strip().splitlines()[-1] for t in targets if t.name in apps
                           for d in apps[t.name].deployments.values() if d.message.strip()]
                raise ConfigError(f"the platform's own Serve applications did not start: {exc}"
                                  + "".join(f"\n  {reason}" for reason in reasons)) from exc
        runner(self.ctx.store.to_dict())

    def reconcile(self, extras: Collection[VersionRecord] = ()) -> dict[str, str | None]:
        """Make Serve match the registry: apply every active version and the *extras* running beside them
        (canaries, shadows, pinned: a no-op for unchanged apps), drop the rest."""
        from ray import serve

        actives = self.registry.actives()
        wanted = {v.spec.name for v in actives} | {app_name(v.function, v.number) for v in extras}
        for name in serve.status().applications:
            if name not in wanted and name not in {GATEWAY_APP, FLOWS_APP, JOBS_APP}:
                self.remove(name)
        self.apply(list(extras), wait=False, extra=True)
        return self.apply(actives, wait=False)

    def status(self) -> dict[str, Any]:
        from ray import serve

        return dict(serve.status().applications)


def _ray_error_text(exc: BaseException) -> str:
    text = str(exc)
    marker = "SetupFailed:"
    if marker in text:
        return text.split(marker, 1)[1].strip()
    return text.strip()[-4000:]
