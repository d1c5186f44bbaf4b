"""The platform process: ``python -m fnplatform.control.server`` (what ``fnctl up`` and ``fnctl server`` run).

Start-up order: registry and first admin key, Ray (local, or the cluster at FN_RAY_ADDRESS), Serve,
the hub, the catch-all gateway, reconcile the registry into Serve, and only then the HTTP API, so
an answering ``/healthz`` means ready. SIGTERM stops the API, then Serve and the local Ray.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fn._platform import CREDENTIALS_FILE
from fnplatform.state.server import ensure_state_server

from .settings import STATE_FILE, PlatformSettings

log = logging.getLogger("fnplatform")
BOOTSTRAP_KEY_NAME = "admin (FN_ADMIN_KEY)"
METRICS_KEY_NAME = "metrics (FN_METRICS_KEY)"
METRICS_KEY_ROLE = "invoke"  # the least role GET /metrics takes (control/edge.py); there is no read-only one


def _write_private(path: Path, data: dict[str, Any]) -> None:
    # A fresh temporary file (never a stale one, which O_CREAT would reuse with its old mode), made
    # 0600 before a byte is written, then renamed over the target.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def private_home(home: Path) -> None:
    """FN_HOME holds the registry, the credentials and the store: the user's only (0700). The process's
    files are created private too (umask 077), SQLite's journal files included."""
    os.umask(0o077)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    if home.is_symlink() or home.stat().st_uid != os.getuid():
        raise SystemExit(f"FN_HOME {home} is a link or belongs to another user; use a folder of your own")
    home.chmod(0o700)


def ensure_admin_key(settings: PlatformSettings, registry: Any) -> None:
    """Keep a working admin key in the credentials file; create the first one on a fresh registry. With
    FN_ADMIN_KEY set, make sure that exact key exists instead, and write no file: its owner keeps it."""
    if settings.admin_key:
        record, created = registry.ensure_key(settings.admin_key, BOOTSTRAP_KEY_NAME)
        if created:
            log.info("stored the FN_ADMIN_KEY admin API key as %s", record.id)
        elif record.revoked:
            # Revoking the bootstrap key once narrower keys exist is legitimate; a restart must not undo it.
            log.warning("FN_ADMIN_KEY is revoked (key %s); it stays revoked. Set a new FN_ADMIN_KEY to get an admin key",
                        record.id)
        elif record.role != "admin":
            log.warning("FN_ADMIN_KEY is key %s with role %r, not admin; it is left as it is", record.id, record.role)
        return
    path = settings.home / CREDENTIALS_FILE
    stored: dict[str, Any] = {}
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except ValueError:
            stored = {}
    key = stored.get("api_key")
    if not key or registry.verify_key(key) is None:
        record, key = registry.create_key("admin (fnctl up)", "admin")
        log.info("created admin API key %s", record.id)
    _write_private(path, {"api_url": settings.api_url, "http_url": settings.http_url, "api_key": key})


def ensure_metrics_key(settings: PlatformSettings, registry: Any) -> None:
    """With FN_METRICS_KEY set, make sure that exact key exists: role invoke, no scope, stored only as its hash,
    so a scraper given the same Secret reads GET /metrics across restarts without anyone running fnctl."""
    if not settings.metrics_key:
        return
    record, created = registry.ensure_key(settings.metrics_key, METRICS_KEY_NAME, role=METRICS_KEY_ROLE)
    if created:
        log.info("stored the FN_METRICS_KEY API key (role %s, no scope) as %s", METRICS_KEY_ROLE, record.id)
    elif record.revoked:
        # Like the admin key: a revocation is the operator's decision, a restart must not undo it.
        log.warning("FN_METRICS_KEY is revoked (key %s); it stays revoked and GET /metrics answers it 401. "
                    "Set a new FN_METRICS_KEY to scrape again", record.id)
    elif record.role != METRICS_KEY_ROLE or record.functions is not None or record.flows is not None:
        # The same plaintext was stored earlier as another key: changing its grant here would widen or narrow
        # a key someone else may rely on, so it is only reported.
        log.warning("FN_METRICS_KEY is key %s (%r) with role %r%s, not an unscoped %s key; it is left as it is",
                    record.id, record.name, record.role,
                    " and a scope (GET /metrics answers it 403)" if record.functions is not None
                    or record.flows is not None else "", METRICS_KEY_ROLE)


BLOB_GC_INTERVAL_S = 3600.0
BLOB_GC_FIRST_S = 60.0  # the first pass reads every bundle in use: not while the platform starts


def _start_housekeeping(control: Any, use: Any, sample: Any = None, interval_s: float = 10.0,
                        hub_check_s: float = 1.0) -> None:
    """Every second, refill a hub that restarted empty and store new log lines (the hub's, the control plane's);
    every *interval_s*: re-publish the data plane's state, have every unfinished flow run held by its host (so a
    run whose host restarted finishes even if nobody asks about it), forget runs and log lines past their
    retention, record keys' last use and *sample* the metrics for the console's charts. Each task fails on its
    own (the registry, the store or the hub unreachable) and is tried again next time: the thread never stops."""

    def attempt(what: str, task: Any) -> None:
        try:
            task()
        except Exception as exc:  # noqa: BLE001 - keep trying; replicas keep their last copy meanwhile
            log.warning("housekeeping: could not %s: %s: %s", what, type(exc).__name__, exc)

    def refill() -> None:
        if control.refill_hub():
            log.info("the hub actor started empty (restarted?): published keys, functions and secrets to it")

    def loop() -> None:
        last = time.monotonic()
        while True:
            time.sleep(hub_check_s)
            attempt("refill the hub", refill)
            attempt("store log lines", control.logbook.tick)
            if time.monotonic() - last < interval_s:
                continue
            last = time.monotonic()
            attempt("record when keys were last used", lambda: control.registry.touch_keys(use.take()))
            attempt("publish state to the hub", control.push_state)
            attempt("resume flow runs", control.resume_runs)
            attempt("expire old flow runs", control.expire_runs)
            attempt("prune stored log lines", control.logbook.prune)
            if sample is not None:
                attempt("sample the metrics for the console", sample)

    def traffic() -> None:
        # A thread of its own: a traffic change may wait for Serve to start a version, which must not hold up
        # storing logs or refilling the hub.
        while True:
            time.sleep(hub_check_s)
            attempt("advance traffic (pinned versions, rollouts)", control.traffic.tick)

    def store_collection() -> None:
        # A thread of its own: a pass lists the whole store and reads every bundle in use the first time.
        time.sleep(BLOB_GC_FIRST_S)
        while True:
            attempt("delete unused bundles and artifacts from the store", control.collect_blobs)
            time.sleep(BLOB_GC_INTERVAL_S)

    threading.Thread(target=loop, name="fn-housekeeping", daemon=True).start()
    threading.Thread(target=store_collection, name="fn-store-collection", daemon=True).start()
    threading.Thread(target=traffic, name="fn-traffic", daemon=True).start()
    start_job_housekeeping(control, hub_check_s)


def start_job_housekeeping(control: Any, every_s: float = 1.0) -> threading.Event:
    """Every second, fire due schedules and deliver due webhooks, each on a thread of its own: a slow receiver must
    hold up neither a tick nor storing logs. Every 5 s the schedules are matched to the active specs first, and the job
    runner and the shared-state server (fn.Dict, fn.Queue) are started if they are gone for good."""

    def report(what: str, task: Any) -> None:
        try:
            task()
        except Exception as exc:  # noqa: BLE001 - keep trying; the database may be away for a moment
            log.warning("jobs: could not %s: %s: %s", what, type(exc).__name__, exc)

    def schedules() -> None:
        last_sync = 0.0
        while not stop.is_set():
            # Never reconnect a process that shut Ray down: Ray's calls (the runner's, a fired schedule's) would
            # start a new local Ray instance.
            if not _ray_connected():
                stop.wait(every_s)
                continue
            if time.monotonic() - last_sync >= 5:
                last_sync = time.monotonic()
                report("match schedules to the deployed functions", control.background.sync_schedules)
                report("make sure the job runner runs", control.background.ensure_runner)
                report("make sure the shared-state server runs", ensure_state_server)
            report("fire schedules", control.background.tick)
            stop.wait(every_s)

    def webhooks() -> None:
        while not stop.is_set():
            report("deliver webhooks", control.background.deliver_webhooks)
            stop.wait(every_s)

    stop = threading.Event()  # set it to end both threads (an embedding process that stops its control plane)
    threading.Thread(target=schedules, name="fn-schedules", daemon=True).start()
    threading.Thread(target=webhooks, name="fn-webhooks", daemon=True).start()
    return stop


def _ray_connected() -> bool:
    import ray

    return bool(ray.is_initialized())


def run(settings: PlatformSettings) -> None:
    from .local import prepare_environment

    private_home(settings.home)
    prepare_environment(settings)

    import uvicorn

    from fnplatform.flows.state import FlowState
    from fnplatform.serving.hub import HubClient, get_or_create_hub
    from fnplatform.storage.blobs import S3Store, open_store
    from fnplatform.storage.registry import Registry
    from fnplatform.storage.secrets import MASTER_KEY_ENV, SecretStore, open_cipher

    from .api import create_app
    from .console.history import History
    from .console.routes import sampler
    from .deployer import DeployContext, Deployer
    from .edge import KeyUse
    from .local import start_ray, start_serve, stop_ray
    from .plane import ControlPlane

    assert settings.store is not None
    registry = Registry(settings.database_url)
    ensure_admin_key(settings, registry)
    ensure_metrics_key(settings, registry)
    secrets = SecretStore(settings.database_url, open_cipher(settings.home))
    # read: the local Ray's workers and the replicas must not inherit them
    for read in (MASTER_KEY_ENV, "FN_ADMIN_KEY", "FN_METRICS_KEY"):
        os.environ.pop(read, None)
    unreadable = secrets.foreign()
    if unreadable:
        log.error("%d secret(s) (%s) were encrypted with another master key than this one: functions that use them "
                  "will not start; set %s to the key they were made with, or set them again", len(unreadable),
                  ", ".join(unreadable), MASTER_KEY_ENV)
    store = open_store(settings.store)
    if isinstance(store, S3Store):
        try:
            store.ensure_bucket()
        except Exception as exc:  # noqa: BLE001 - deploys will say so; serving does not need the store
            log.warning("bundle store not reachable at start: %s", exc)
    state_path = settings.home / STATE_FILE
    start_ray(settings)
    try:
        # Created first: its worker process starts while Serve's controller and proxies start theirs.
        hub = get_or_create_hub()
        start_serve(settings)
        deployer = Deployer(registry, DeployContext(store=settings.store, cache_dir=settings.cache_dir,
                                                    strict_resources=settings.ray_address is None,
                                                    timeout_s=settings.deploy_timeout_s,
                                                    ingress_url=settings.http_url,
                                                    cache_policy=settings.cache_policy.to_dict()),
                            secrets)
        control = ControlPlane(settings, registry, store, deployer, HubClient(hub), FlowState(settings.database_url),
                               secrets)
        logging.getLogger("fnplatform").addHandler(control.logbook.handler)  # stored by the housekeeping thread
        control.push_state()
        interrupted = registry.fail_unfinished("the control plane restarted during this deploy; run 'fnctl deploy' again")
        if interrupted:
            log.warning("%d versions were mid-deploy when the control plane stopped; marked failed", interrupted)
        use = KeyUse()
        history = History()
        _start_housekeeping(control, use, sampler(control, history))
        deployer.ensure_gateway()
        deployer.reconcile(control.traffic.extras())
        resumed = control.resume_runs()
        if resumed:
            log.info("resumed %d unfinished flow runs from their checkpoints", resumed)
        if settings.ray_address is None and settings.warm_workers:
            from .warm_pool import keep_workers_warm

            # Only now: on 2 cores its new worker processes would slow the gateways' own to start.
            keep_workers_warm(settings.warm_workers)
        _write_private(state_path, {"pid": os.getpid(), "api_url": settings.api_url, "http_url": settings.http_url,
                                    "runtime_dir": str(settings.runtime_dir), "home": str(settings.home)})
        log.info("fn platform ready: API %s, functions %s", settings.api_url, settings.http_url)
        uvicorn.run(create_app(control, use, history), host=settings.api_host, port=settings.api_port, log_level="warning",
                    access_log=False)
    finally:
        log.info("stopping")
        try:
            stop_ray(settings)
        finally:
            state_path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fnplatform.control.server", description=__doc__)
    parser.add_argument("--api-host", default="127.0.0.1")
    parser.add_argument("--api-port", type=int, default=8080)
    parser.add_argument("--http-host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--cpus", type=float, default=None)
    parser.add_argument("--gpus", type=float, default=0)
    parser.add_argument("--ray-address", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request (the deployer polls the ingress's routes)
    settings = PlatformSettings.from_env(api_host=args.api_host, api_port=args.api_port, http_host=args.http_host,
                                         http_port=args.http_port, cpus=args.cpus, gpus=args.gpus,
                                         ray_address=args.ray_address)
    run(settings)


if __name__ == "__main__":
    main()
