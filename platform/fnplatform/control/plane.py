"""The control plane's core: deploy jobs, listing and describing functions, keys, logs.

Transport-free: ``api.py`` maps HTTP onto these methods. Blocking Ray and database calls happen
here, so the HTTP layer runs them in threads.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from fn import Conflict, FlowSpec, FunctionSpec, NotFound, PayloadTooLarge, Unavailable
from fnplatform.bundles.packaging import inspect_bundle
from fnplatform.bundles.safety import BundleTooLarge
from fnplatform.flows.hosts import resume as resume_runs
from fnplatform.flows.state import FlowState
from fnplatform.keys import Grant
from fnplatform.serving import coldstart, ray_compat, shadow
from fnplatform.serving.hub import HubClient
from fnplatform.serving.versions import TOPIC as TRAFFIC_TOPIC
from fnplatform.serving.versions import app_name
from fnplatform.storage.blobs import (
    BundleStore,
    artifact_key,
    bundle_key,
    bundle_manifest_from_store,
    bundle_missing,
    put_artifact,
    put_bundle,
)
from fnplatform.storage.db import utcnow
from fnplatform.storage.logs import LogStore
from fnplatform.storage.registry import Registry, VersionRecord
from fnplatform.storage.secrets import SecretStore, open_cipher

from . import otlp
from .blob_gc import BlobCollector, Collected
from .deployer import Deployer
from .jobs import JobsControl
from .logbook import Logbook
from .metrics import ControlMetrics, render, replica_gauges
from .secrets import Secrets
from .settings import PlatformSettings
from .traffic import TrafficControl

KEPT_JOBS = 200


@dataclass
class DeployJob:
    id: str
    bundle_sha256: str
    functions: list[str]
    state: str = "running"  # running | succeeded | failed
    events: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    _changed: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def emit(self, function: str, stage: str, message: str = "") -> None:
        with self._changed:
            self.events.append({"seq": len(self.events) + 1, "time": time.time(), "function": function,
                                "stage": stage, "message": message})
            self._changed.notify_all()

    def finish(self) -> None:
        with self._changed:
            failed = any(r["status"] == "failed" for r in self.results.values())
            self.state = "failed" if failed else "succeeded"
            self.finished_at = time.time()
            self._changed.notify_all()

    def wait(self, after: int, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: len(self.events) > after or self.state != "running", timeout=timeout)

    def to_json(self, after: int = 0) -> dict[str, Any]:
        with self._changed:
            return {"id": self.id, "bundle_sha256": self.bundle_sha256, "functions": self.functions,
                    "state": self.state, "events": [e for e in self.events if e["seq"] > after],
                    "results": dict(self.results), "started_at": self.started_at, "finished_at": self.finished_at}


class ControlPlane:
    def __init__(self, settings: PlatformSettings, registry: Registry, store: BundleStore, deployer: Deployer,
                 hub: HubClient, flows: FlowState, secrets: SecretStore | None = None) -> None:
        self.settings = settings
        self.flows = flows
        self.registry = registry
        self.store = store
        self.deployer = deployer
        self.hub = hub
        self.jobs: dict[str, DeployJob] = {}
        self.blobs = BlobCollector(store, lambda: registry.bundles_in_use() | flows.bundles_in_use(),
                                   self._bundle_artifacts, settings.bundle_gc_after_s)
        self._blob_lock = threading.Lock()  # a deploy's bundle is checked and its job recorded between passes
        self._filled_hub: str | None = None  # the start id of the hub last refilled whole
        self.metrics = ControlMetrics()
        secret_store = secrets or SecretStore(registry.url, open_cipher(settings.home))
        self.secrets = Secrets(secret_store, registry, hub, deployer, deploying=self._deploying)
        self.logbook = Logbook(LogStore(registry.url), hub, retention_s=settings.log_retention_s,
                               max_bytes=settings.log_max_bytes, export=otlp.from_environment())
        self.traffic = TrafficControl(registry, deployer, hub, self.push_state, settings.keep_versions,
                                      settings.pin_idle_s)
        assert settings.store is not None
        self.background = JobsControl(registry, secret_store.cipher, settings.store.to_dict())  # schedules, webhooks

    # bundles -------------------------------------------------------------------------------
    def has_bundle(self, sha256: str) -> bool:
        self.blobs.named(bundle_key(sha256))  # fnctl deploy skips what is there: kept for its deploy (blob_gc)
        return self.store.exists(bundle_key(sha256))

    def upload_bundle(self, sha256: str, data: bytes) -> dict[str, Any]:
        try:
            manifest = inspect_bundle(data, expected_sha256=sha256, max_bytes=self.settings.max_bundle_bytes,
                                      limits=self.settings.bundle_limits)
        except BundleTooLarge as exc:
            raise PayloadTooLarge(str(exc), status=413) from None
        self.blobs.named(bundle_key(sha256))
        uploaded = put_bundle(self.store, sha256, data)
        return {"sha256": sha256, "uploaded": uploaded, "functions": [s.name for s in manifest.functions]}

    def has_artifact(self, sha256: str) -> bool:
        self.blobs.named(artifact_key(sha256))
        return self.store.exists(artifact_key(sha256))

    def upload_artifact(self, sha256: str, path: Path) -> dict[str, Any]:
        self.blobs.named(artifact_key(sha256))
        return {"sha256": sha256, "uploaded": put_artifact(self.store, sha256, path)}

    # deploys -------------------------------------------------------------------------------
    def _check_routes(self, specs: list[FunctionSpec]) -> None:
        """A route must not start with a function's name (Serve would send it to that function) nor repeat one."""
        deploying = {s.name for s in specs}
        others = [v.spec for v in self.registry.actives() if v.spec.name not in deploying]
        everyone = others + specs
        names = {s.name for s in everyone}
        seen: dict[str, str] = {}
        for spec in everyone:
            if spec.route is None:
                continue
            root = spec.route_root or ""
            if root in names:
                raise Conflict(f"{spec.name}: route {spec.route} starts with /{root}, the endpoint of function {root!r}; "
                               f"choose another route or rename that function", status=409)
            shape = re.sub(r"\{[^}]+\}", "{}", spec.route)
            if shape in seen and seen[shape] != spec.name:
                raise Conflict(f"{spec.name}: route {spec.route} is already served by {seen[shape]!r}", status=409)
            seen[shape] = spec.name

    def _bundle_artifacts(self, sha256: str) -> set[str]:
        manifest = bundle_manifest_from_store(self.store, sha256, self.settings.max_bundle_bytes,
                                              self.settings.bundle_limits)
        return {ref.sha256 for ref in manifest.artifacts.values()}

    def collect_blobs(self, now: float | None = None) -> Collected | None:
        """Delete the store's bundles and artifacts that no version or deploy uses (control.blob_gc)."""
        if self.settings.bundle_gc_after_s <= 0:
            return None
        return self.blobs.collect(self._running_bundles, self._blob_lock, now)

    def _running_bundles(self) -> set[str]:
        return {job.bundle_sha256 for job in list(self.jobs.values()) if job.state == "running"}

    def start_deploy(self, sha256: str, canary: dict[str, Any] | None = None, by: str | None = None) -> DeployJob:
        """Deploy the bundle's functions; with *canary* (percent, steps, interval_s, gates), each changed function
        that has an active version runs the new one beside it at the first weight (control.traffic)."""
        manifest = bundle_manifest_from_store(self.store, sha256, self.settings.max_bundle_bytes,
                                              self.settings.bundle_limits)
        specs = [spec.model_copy(update={"requirements": tuple(sorted(set(spec.requirements) | set(manifest.requirements)))})
                 for spec in manifest.functions]
        self._check_routes(specs)
        self.secrets.check(specs)
        with self._blob_lock:  # the store collection deletes only under it: what is here now stays for the job
            if not self.store.exists(bundle_key(sha256)):
                raise bundle_missing(sha256)
            missing = sorted(path for path, ref in manifest.artifacts.items()
                             if not self.store.exists(artifact_key(ref.sha256)))
            if missing:
                raise NotFound(f"artifact(s) {', '.join(missing)} of bundle {sha256[:12]} are not in the store; "
                               f"'fnctl deploy' uploads them (PUT /v1/artifacts/<sha256>)", status=404)
            clash = sorted(self._deploying() & {s.name for s in specs})
            if clash:
                raise Conflict(f"a deploy of {', '.join(clash)} is already running; wait for it ('fnctl deploy' shows "
                               f"it)", status=409)
            job = DeployJob(id=uuid.uuid4().hex[:12], bundle_sha256=sha256,
                            functions=[s.name for s in specs] + [f"flow:{f.name}" for f in manifest.flows])
            self.secrets.hold(job.id, specs)
            self.jobs[job.id] = job
        self._forget_old_jobs()
        threading.Thread(target=self._run_deploy, args=(job, specs, manifest.flows, canary, by),
                         name=f"deploy-{job.id}", daemon=True).start()
        return job

    def _run_deploy(self, job: DeployJob, specs: list[FunctionSpec], flows: tuple[FlowSpec, ...],
                    canary: dict[str, Any] | None = None, by: str | None = None) -> None:
        try:
            self._deploy(job, specs, canary, by)
            self._record_flows(job, flows)
        except Exception as exc:  # noqa: BLE001 - a deploy job must always end, with its reason
            for spec in specs:
                if spec.name not in job.results:
                    job.results[spec.name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                    job.emit(spec.name, "failed", str(exc))
        finally:
            self.secrets.release(job.id)
            job.finish()
            self.metrics.deploy_finished(job.state, (job.finished_at or job.started_at) - job.started_at)

    def _deploying(self) -> set[str]:
        return {name for job in self.jobs.values() if job.state == "running" for name in job.functions}

    def _fail(self, job: DeployJob, version: VersionRecord, error: str) -> None:
        self.registry.finish_version(version.function, version.number, error=error)
        job.results[version.function] = {"status": "failed", "version": version.number, "error": error}
        job.emit(version.function, "failed", error)

    def _deploy(self, job: DeployJob, specs: list[FunctionSpec], canary: dict[str, Any] | None = None,
                by: str | None = None) -> None:
        changed: list[VersionRecord] = []
        for spec in specs:
            active = self.registry.active(spec.name)
            if active and active.spec == spec and active.bundle_sha256 == job.bundle_sha256:
                job.results[spec.name] = {"status": "unchanged", "version": active.number}
                job.emit(spec.name, "unchanged", f"version {active.number} is already this code and spec")
                continue
            version = self.registry.create_version(spec, job.bundle_sha256, by)
            job.emit(spec.name, "recorded", f"version {version.number}")
            problem = self.deployer.placement_problem(spec)
            if problem:
                self._fail(job, version, problem)
            else:
                changed.append(version)
        if not changed:
            return
        for version in changed:
            job.emit(version.function, "loading", "importing the code and running setup() once")
        errors = self.deployer.validate(changed)
        ready = []
        for version in changed:
            if errors.get(version.function):
                self._fail(job, version, str(errors[version.function]))
            else:
                job.emit(version.function, "loaded")
                ready.append(version)
        if not ready:
            return
        if canary is not None:
            ready = self._canaries(job, ready, canary, by)
        for version in ready:
            route = "with no HTTP route (internal)" if version.spec.internal else f"/{version.function}"
            job.emit(version.function, "deploying", f"Serve application {route}")
        outcome = self.deployer.apply(ready)
        deployed = []
        for version in ready:
            error = outcome.get(version.function)
            if error:
                self._fail(job, version, error)
                previous = self.registry.active(version.function)
                if previous is not None:  # put the last good version back in Serve
                    self.deployer.apply([previous], wait=False)
                else:
                    self.deployer.remove(version.function)
            else:
                self.registry.finish_version(version.function, version.number)
                self.traffic.deployed(version, by)
                deployed.append(version)
        if deployed:
            self.push_state()  # once for all: the catch-all gateway knows them before the deploy says "deployed"
        for version in deployed:
            job.results[version.function] = {"status": "deployed", "version": version.number}
            where = "internal: called by functions and flows only" if version.spec.internal else f"at /{version.function}"
            job.emit(version.function, "deployed", f"version {version.number} {where}")

    def _canaries(self, job: DeployJob, ready: list[VersionRecord], canary: dict[str, Any], by: str | None
                  ) -> list[VersionRecord]:
        """Start each version whose function has an active one as a canary beside it; the rest (first versions:
        nothing to compare with) are returned to be deployed as usual."""
        first = [v for v in ready if self.registry.active(v.function) is None]
        for version in (v for v in ready if v not in first):
            job.emit(version.function, "deploying", f"Serve application {app_name(version.function, version.number)} "
                                                    f"(canary)")
            error = self.deployer.apply([version], extra=True).get(version.function)
            if error:
                self._fail(job, version, error)
                self.deployer.remove(app_name(version.function, version.number))
                continue
            self.registry.finish_version(version.function, version.number, activate=False)
            what = self.traffic.start_canary(version, canary, by)
            job.results[version.function] = {"status": "canary", "version": version.number, "detail": what}
            job.emit(version.function, "canary", f"version {version.number}: {what}")
        for version in first:
            job.emit(version.function, "note", "no active version to compare a canary with: deployed at 100%")
        return first

    def _record_flows(self, job: DeployJob, flows: tuple[FlowSpec, ...]) -> None:
        """A flow is recorded once every function its steps call is serving."""
        for flow in flows:
            key = f"flow:{flow.name}"
            missing = sorted({s.function for s in flow.steps if self.registry.active(s.function) is None})
            if missing:
                error = (f"flow {flow.name!r} calls {', '.join(repr(m) for m in missing)}, which "
                         f"{'is' if len(missing) == 1 else 'are'} not deployed (or failed to deploy in this bundle)")
                job.results[key] = {"status": "failed", "error": error}
                job.emit(key, "failed", error)
                continue
            self.flows.put_flow(flow, job.bundle_sha256)
            job.results[key] = {"status": "deployed"}
            job.emit(key, "deployed", f"POST /flows/{flow.name}/runs")

    def resume_runs(self) -> int:
        """Make sure every unfinished run is held by its host (a restarted host resumes it from its checkpoint)."""
        ids = self.flows.unfinished_runs()
        resume_runs(ids, self.store.config.to_dict())
        return len(ids)

    def expire_runs(self) -> int:
        """Forget flow runs finished more than FN_RUN_RETENTION_DAYS ago, their uploads and step blobs too."""
        before = utcnow() - timedelta(seconds=self.settings.run_retention_s)
        blobs = self.flows.expire_runs(before)
        for key in blobs:
            self.store.delete(key)
        return len(blobs)

    def list_flows(self, grant: Grant) -> list[dict[str, Any]]:
        """Declared flows the key may run, each with its latest runs: only the key's own runs, unless admin."""
        owner = None if grant.has_role("admin") else grant.key_id
        return [{"name": f.name, "inputs": list(f.inputs), "optional": list(f.optional),
                 "steps": {s.name: s.function for s in f.steps},
                 "output": f.output, "runs": self.flows.runs(f.name, limit=5, owner=owner)}
                for f in self.flows.flows() if grant.may_run(f.name)]

    def _forget_old_jobs(self) -> None:
        """Keep the latest KEPT_JOBS finished deploy jobs (their events are for the client that waits)."""
        finished = [job_id for job_id, job in self.jobs.items() if job.state != "running"]  # oldest first
        for job_id in finished[:max(0, len(finished) - KEPT_JOBS)]:
            self.jobs.pop(job_id, None)

    def job(self, job_id: str) -> DeployJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no deploy job {job_id!r}", status=404)
        return job

    # functions -----------------------------------------------------------------------------
    def _details(self) -> dict[str, Any]:
        applications: dict[str, Any] = ray_compat.serve_instance_details().get("applications", {})
        return applications

    def _replicas(self, apps: dict[str, Any], name: str) -> dict[str, Any]:
        app = apps.get(name) or {}
        deployment = (app.get("deployments") or {}).get(name) or {}
        replicas = deployment.get("replicas") or []
        return {
            "app_status": app.get("status", "NOT_DEPLOYED"),
            "running": sum(1 for r in replicas if r.get("state") == "RUNNING"),
            "target": deployment.get("target_num_replicas", 0),
            "replicas": [{"replica_id": r.get("replica_id"), "state": r.get("state"), "pid": r.get("pid"),
                          "node_ip": r.get("node_ip"), "start_time_s": r.get("start_time_s")} for r in replicas],
            "message": deployment.get("message") or app.get("message") or "",
        }

    def list_functions(self) -> list[dict[str, Any]]:
        apps = self._details()
        rows = []
        for version in self.registry.actives():
            state = self._replicas(apps, version.function)
            rows.append({"name": version.function, "pool": version.spec.pool, "kind": version.spec.kind,
                         "version": version.number, "status": state["app_status"], "running": state["running"],
                         "target": state["target"], "endpoint": self._endpoint(version.spec),
                         "public": version.spec.public, "internal": version.spec.internal})
        return rows

    def describe(self, name: str) -> dict[str, Any]:
        versions = self.registry.versions(name)
        if not versions:
            raise NotFound(f"no function named {name!r}; list functions with 'fnctl ls'", status=404)
        active = self.registry.active(name)
        spec = active.spec if active else versions[-1].spec
        return {"name": name, "endpoint": self._endpoint(spec), "internal": spec.internal,
                "active_version": active.number if active else None,
                "spec": spec.model_dump(mode="json"),
                "bundle_sha256": active.bundle_sha256 if active else None,
                "versions": [v.to_json() for v in versions], **self._replicas(self._details(), name),
                "cold_starts": self._cold_starts(name)}

    def _cold_starts(self, name: str, last: int = 5) -> list[dict[str, Any]]:
        """The last calls of *name* that waited for a replica, with their breakdown (from their log lines)."""
        found = []
        for entry in self.logbook.read(name, limit=last, grep=coldstart.LOG_MARK)["entries"]:
            phases = coldstart.parse_breakdown(str(entry["text"]).rpartition(coldstart.LOG_MARK)[2])
            if phases:  # a line of the user's own that happens to hold the mark is not one
                found.append({"at": entry["at"], "request_id": entry["request_id"], "seconds": phases})
        return found

    def _endpoint(self, spec: FunctionSpec) -> str | None:
        """Where HTTP reaches the function; None for an internal one (only other functions and flows call it)."""
        return None if spec.internal else f"{self.settings.http_url}/{spec.name}"

    def delete(self, name: str, with_flows: bool = False) -> list[str]:
        """Remove the function; the flows that call it are refused by name, or removed too with *with_flows*."""
        if not self.registry.versions(name):
            raise NotFound(f"no function named {name!r}; list functions with 'fnctl ls'", status=404)
        users = sorted(f.name for f in self.flows.flows() if any(step.function == name for step in f.steps))
        if users and not with_flows:
            raise Conflict(f"{name!r} is called by flow(s) {', '.join(users)}; remove them with it "
                           f"('fnctl rm {name} --with-flows') or deploy them without it first", status=409)
        for flow in users:
            self.flows.delete_flow(flow)
        self.traffic.store.forget(name)
        self.registry.delete_function(name)
        self.deployer.remove(name)
        for number in self.deployer.extra_versions(name):
            self.deployer.remove(app_name(name, number))
        self.push_state()
        self.hub.forget(name)
        return users

    def logs(self, name: str, after: int, limit: int, **query: str | None) -> dict[str, Any]:
        """A page of *name*'s stored lines (control.logbook); *query*: since, request_id, grep."""
        if not self.registry.versions(name):
            raise NotFound(f"no function named {name!r}; list functions with 'fnctl ls'", status=404)
        return {"function": name, **self.logbook.read(name, after=after, limit=limit, **query)}

    def shadow_records(self, name: str, limit: int) -> list[dict[str, Any]]:
        """The newest *limit* compared calls of *name*'s shadow version (serving.shadow's stored lines)."""
        if not self.registry.versions(name):
            raise NotFound(f"no function named {name!r}; list functions with 'fnctl ls'", status=404)
        entries = self.logbook.read(name, limit=limit, grep=shadow.MARK.strip())["entries"]
        records = [shadow.parse(str(e["text"])) for e in entries if e.get("level") == shadow.LEVEL]
        return [r for r in records if r is not None]

    def metrics_text(self) -> bytes:
        """The Prometheus text of ``GET /metrics``: the hub's sums of the data plane's counts, and the deploys'."""
        try:
            data_plane = self.hub.metrics()
        except Unavailable:  # the deploy counts are still worth a scrape; fn_data_plane_metrics_up says 0
            data_plane = None
        try:
            replicas = replica_gauges(self._details(), (v.function for v in self.registry.actives()))
        except Unavailable:  # Serve's controller busy or restarting: fn_replicas is left out of this scrape
            replicas = None
        try:
            jobs = self.background.jobs.counts()
        except SQLAlchemyError:  # the database away: fn_jobs is left out of this scrape
            jobs = None
        return render(data_plane, self.metrics.totals(), replicas, jobs)

    # keys ----------------------------------------------------------------------------------
    def push_state(self) -> None:
        """Publish what the data plane reads from the registry (key grants by hash, active functions, the secrets
        they name) through the hub."""
        actives = self.registry.actives()
        functions = [v.spec.model_dump(mode="json") for v in actives]
        keys = {digest: grant.to_json() for digest, grant in self.registry.grants().items()}
        self.hub.publish({"keys": keys, "functions": functions, TRAFFIC_TOPIC: self.traffic.table()})
        self.secrets.publish(actives)

    def refill_hub(self) -> bool:
        """Publish everything at once to a hub that started since it was last refilled, or lacks a topic or the
        secrets (Ray restarted it empty); True when it did. Until then it answers "nothing published", so the
        data plane keeps its copies (serving.hub)."""
        status = self.hub.status()
        start_id = str(status["start_id"])
        topics = {"keys", "functions", TRAFFIC_TOPIC}
        if start_id == self._filled_hub and status.get("secrets") and topics <= set(status["topics"]):
            return False
        self.push_state()
        self._filled_hub = start_id
        return True

    def create_key(self, name: str, role: str = "invoke", functions: list[str] | None = None,
                   flows: list[str] | None = None, rate_limit: float | None = None) -> dict[str, Any]:
        record, plaintext = self.registry.create_key(name, role, functions=functions, flows=flows, rate_limit=rate_limit)
        self.push_state()
        return {**record.to_json(), "key": plaintext}

    def revoke_key(self, key_id: str) -> None:
        if not self.registry.revoke_key(key_id):
            raise NotFound(f"no active key with id {key_id!r}; list keys with 'fnctl keys ls'", status=404)
        self.push_state()
