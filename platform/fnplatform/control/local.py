"""The local cluster: one Ray node that declares every pool, started and stopped by the control plane.

Hazards handled: a unique, short, private runtime folder per FN_HOME for every socket (so two
platforms never share sockets, and FN_HOME can be any length), ``address="local"`` so we never
attach to someone else's cluster, no dashboard, and never ``ray stop``: survivors are found by
our runtime folder in their command line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from pathlib import Path

import psutil

from fn import ConfigError
from fnplatform.pools import DEFAULT_POOLS, NODE_POOL_CAPACITY, pool_resource
from fnplatform.serving import arrival, autoscaling, ray_compat

from .settings import PlatformSettings, ensure_private_dir

log = logging.getLogger("fnplatform")


def prepare_environment(settings: PlatformSettings) -> None:
    """Environment for the Ray we start; must run before Ray is imported (it reads it at import)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if settings.ray_address:
        return
    # The flows gateway and run actors read the checkpoint database from their environment (never from
    # init arguments, which Ray and Serve keep and show); the local Ray's workers inherit this process's.
    os.environ["FN_DATABASE_URL"] = settings.database_url  # fnplatform.storage.db.DATABASE_URL_ENV
    # A developer receives their jobs' webhooks on this machine; a cluster refuses loopback (jobs/webhooks.py).
    os.environ.setdefault("FN_WEBHOOK_ALLOW_LOOPBACK", "1")
    ensure_private_dir(settings.runtime_dir)
    temp_dir = settings.ray_temp_dir
    temp_dir.mkdir(mode=0o700, exist_ok=True)
    os.environ["RAY_TMPDIR"] = str(temp_dir)
    # Every worker process imports Serve's replica and our runtime before it takes work, so a replica
    # started on an idle worker (replicas carry no runtime env, see deployer.runtime_env) skips that.
    os.environ.setdefault("RAY_preload_python_modules", ",".join(ray_compat.PRELOAD_MODULES))
    os.environ.setdefault(ray_compat.HARDEN_HAPROXY_ENV, "1")  # HAProxy's stats and metrics on 127.0.0.1 only
    # Ray kills idle workers above this many processes; the default (the CPU count) is below what the
    # platform's own actors use, so no idle worker would survive for warm_pool to hand out.
    os.environ.setdefault("RAY_num_workers_soft_limit", "64")
    # What the GCS keeps of ended actors and tasks, for Ray's state API, which the platform does not use:
    # Ray's defaults (100,000 of each) let a long-lived node grow by hundreds of MiB (bench/soak.py).
    for name, value in RAY_RECORD_BOUNDS.items():
        os.environ.setdefault(name, value)
    # Ray's own metrics (its agent keeps a series per replica process, and replicas come and go) have no
    # reader on a local node: no dashboard runs. The platform's own metrics are GET /metrics.
    os.environ.setdefault("RAY_enable_metrics_collection", "0")
    # Serve's proxy stamps when each request arrived (HAProxy does too, first): a cold call's breakdown starts there.
    os.environ.setdefault(arrival.PROXY_CALLBACK_ENV, arrival.ARRIVAL_STAMP)
    if settings.ingress == "haproxy":
        # HAProxy in front of the replicas' own HTTP ports (Serve's direct ingress) instead of the Python
        # proxy: measured 10x the requests per second on 2 cores. Its files and side ports are this
        # platform's own, so two platforms on a host do not collide.
        base = settings.haproxy_dir  # Serve nests <node id>/admin.sock under it: kept short (settings.RUNTIME_DIR_MAX_LEN)
        base.mkdir(mode=0o700, exist_ok=True)
        os.environ.update({
            "RAY_SERVE_ENABLE_HA_PROXY": "1",
            "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(base / "haproxy.cfg"),
            "RAY_SERVE_HAPROXY_SOCKET_PATH": str(base / "admin.sock"),
            "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(base / "metrics.sock"),
            "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(base),
            "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(base / "server-state"),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(_free_port()),
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(_free_port()),
        })
        # A stopping replica stays reachable this long so HAProxy can drop it first, holding its CPUs and GPUs
        # meanwhile: Serve's 30 s kept a flow's steps from the room an idle function had just given back. On one
        # node HAProxy reloads about a second after the controller stops a replica, and closes the old
        # process's idle connections, so late requests are those already dispatched; refused later ones retry.
        os.environ.setdefault(autoscaling.DRAINING_ENV, "5")
    # Token auth with a token of this platform's own, kept under FN_HOME (Ray would write ~/.ray).
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = _auth_token(settings.home / "ray-auth-token")


RAY_RECORD_BOUNDS = {
    "RAY_maximum_gcs_destroyed_actor_cached_count": "1000",
    "RAY_task_events_max_num_task_in_gcs": "10000",
}


# Logical CPUs per core that the local node declares. Ray's CPUs are a scheduling count, not a
# reservation, and each replica caps its threads to its own cpus (serving.replica.cpu_threads); an
# idle replica holds its CPUs until idle_timeout_s. Counting cores alone, the identity flow's five
# steps (3.75 CPUs) could not all be placed on 2 cores, and each case waited minutes for idle replicas
# to time out (functions/auth/bench/on_defaults.py measures both).
CPUS_PER_CORE = 2
MIN_DEFAULT_CPUS = 4


def default_cpus(cores: int | None = None) -> int:
    """CPUs the local node declares when `fnctl up` is not given --cpus."""
    return max(CPUS_PER_CORE * (cores or os.cpu_count() or 1), MIN_DEFAULT_CPUS)


def start_ray(settings: PlatformSettings) -> None:
    import ray

    ray_compat.check_ray_version()
    if settings.ray_address:
        ray.init(address=settings.ray_address, namespace="fn", log_to_driver=False)
        return
    ray.init(
        address="local",
        namespace="fn",
        include_dashboard=False,
        _temp_dir=str(settings.ray_temp_dir),
        num_cpus=settings.cpus if settings.cpus is not None else default_cpus(),  # type: ignore[arg-type]
        num_gpus=settings.gpus,  # type: ignore[arg-type]  # Ray takes fractional fake GPUs despite its hint
        resources={pool_resource(pool): NODE_POOL_CAPACITY for pool in DEFAULT_POOLS},
        log_to_driver=False,
    )


# HAProxy binds its side ports seconds after they are chosen: picked below the kernel's ephemeral range
# (32768+, where any outgoing connection may take one meanwhile) and above Ray's worker ports (10002-19999).
SIDE_PORTS = range(20000, 32000)


def _free_port() -> int:
    import random
    import socket

    for port in random.sample(SIDE_PORTS, 50):
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise ConfigError(f"no free port in {SIDE_PORTS.start}-{SIDE_PORTS.stop - 1} for HAProxy's stats and metrics")


def _auth_token(path: Path) -> str:
    if not path.is_file():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip()


def start_serve(settings: PlatformSettings) -> None:
    from ray import serve

    serve.start(http_options={"host": settings.http_host, "port": settings.http_port},
                logging_config={"enable_access_log": False})


def ray_processes(runtime_dir: Path) -> list[psutil.Process]:
    """Processes of the Ray node (and its HAProxy) whose command line names a path under *runtime_dir*."""
    marker = str(runtime_dir)
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if marker in cmdline and proc.pid != os.getpid():
            found.append(proc)
    return found


STOPPED_NODE_GRACE_S = 1.0


def kill_survivors(runtime_dir: Path, grace_s: float = 5.0) -> int:
    procs = ray_processes(runtime_dir)
    names = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            names[proc.pid] = proc.name()
            proc.terminate()
    started = time.monotonic()
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    if procs:
        log.info("stopped %d processes left by Ray's node (%s) in %.1f s; %d of them killed after %g s",
                 len(procs), ", ".join(sorted(set(names.values()))), time.monotonic() - started, len(alive), grace_s)
    return len(procs)


def stop_ray(settings: PlatformSettings) -> None:
    import ray

    if settings.ray_address:
        ray.shutdown()  # a cluster's Serve and replicas keep running without the control plane
        return
    # The whole local node goes: no serve.shutdown(), which waits out Serve's 30 s ingress draining period
    # (made for replicas leaving a live cluster) and made 'fnctl down' take 35 s. The API stopped first.
    started = time.monotonic()
    ray.shutdown()
    log.info("Ray's node shut down in %.1f s", time.monotonic() - started)
    time.sleep(0.5)
    # What is left is the node's own (its GCS still flushing events, an agent): nothing of ours is in it, and
    # the 5 s it took some of them to heed SIGTERM was half of 'fnctl down'.
    kill_survivors(settings.runtime_dir, grace_s=STOPPED_NODE_GRACE_S)
