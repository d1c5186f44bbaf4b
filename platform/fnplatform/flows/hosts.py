"""Run hosts: a few named, detached Ray actors that hold every unfinished flow run between them.

A run is held by the host its id hashes to (``host_name``), as a ``FlowRun`` in that host's event
loop; the host loads it from its checkpoint on the first call that names it and forgets it once its
end is recorded. One actor per run cost a worker process (about 230 MiB and a second to start) for
every unfinished run, and the cluster kept a record and task events of every one that ended: a soak
of a run every 10 s grew Ray's GCS, its dashboard agent and the flows gateway steadily
(bench/soak.py). A host that dies is restarted empty by Ray; the next call for each of its runs, and
the control plane's resume sweep, load them again from their checkpoints.

The number of hosts (``FN_FLOW_RUN_HOSTS``, default 2) must be the same for every process of a
cluster: a run found on two hosts at once would run its steps twice.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from typing import Any

from fnplatform.pools import REPLICA_POOL_SHARE, pool_resource
from fnplatform.serving import metrics, tracing
from fnplatform.serving.hub import lazy_hub
from fnplatform.serving.logs import LogShipper
from fnplatform.storage.blobs import StoreConfig, open_store
from fnplatform.storage.db import database_url_from_env
from fnplatform.storage.registry import Registry

from .run import FlowRun, RayRuntime
from .spans import Ship
from .state import FlowState

HOST_PREFIX = "fn-runs-"
NAMESPACE = "fn"
DEFAULT_HOSTS = 2
# Each unfinished run's status long-polls hold a slot; the flows' active-run caps bound how many runs wait.
HOST_MAX_CONCURRENCY = 10_000


def host_count() -> int:
    raw = os.environ.get("FN_FLOW_RUN_HOSTS", "")
    try:
        count = int(raw) if raw else DEFAULT_HOSTS
    except ValueError:
        count = 0
    if not 1 <= count <= 64:
        from fn import ConfigError

        raise ConfigError(f"FN_FLOW_RUN_HOSTS is {raw!r}; it must be a whole number from 1 to 64 (the default is "
                          f"{DEFAULT_HOSTS}), and the same in every process of the cluster")
    return count


def host_name(run_id: str, hosts: int | None = None) -> str:
    digest = hashlib.sha256(run_id.encode()).digest()
    return f"{HOST_PREFIX}{int.from_bytes(digest[:4], 'big') % (hosts or host_count())}"


class FlowRuns:
    """The run host actor: calls name a run; the run is loaded from its checkpoint if it is not held yet."""

    def __init__(self, store: dict[str, Any], *, database_url: str | None = None,
                 runtime: Callable[[Callable[[], None]], Any] | None = None, spans: Ship | None = None) -> None:
        self._store_config = store
        self._db = FlowState(database_url or database_url_from_env())
        self._blobs = open_store(StoreConfig(**store))
        self._registry = Registry(self._db.url)
        self._handles: dict[str, Any] = {}  # Serve handles to step functions, shared by the runs
        # A run's runtime, given what to call when the run is over (tests stand in for the cluster side).
        self._new_runtime = runtime or (lambda on_exit: RayRuntime(self._handles, on_exit=on_exit))
        self._runs: dict[str, FlowRun] = {}
        self._spans = spans
        self._shippers: dict[str, LogShipper] = {}  # one per flow: its runs' spans, from source flow:<name>
        if runtime is None:  # the actor (not a test): its runs' counts and spans go to the hub every few seconds
            self._hub = lazy_hub()
            metrics.ship_to_hub(self._hub)
            self._spans = spans or self._ship_spans

    def _ship_spans(self, flow: str, trace: tracing.Trace) -> None:
        shipper = self._shippers.get(flow)
        if shipper is None:
            shipper = self._shippers[flow] = LogShipper(f"flow:{flow}", f"runs-{os.getpid()}", self._hub)
            shipper.start()
        shipper.line(tracing.LEVEL, trace.line_text(), trace.trace_id)

    def _run(self, run_id: str) -> FlowRun:
        run = self._runs.get(run_id)
        if run is None:
            run = FlowRun(run_id, self._store_config, runtime=self._new_runtime(lambda: self._forget(run_id, run)),
                          db=self._db, blobs=self._blobs, registry=self._registry, spans=self._spans)
            self._runs[run_id] = run
        return run

    def _forget(self, run_id: str, run: FlowRun | None) -> None:
        if self._runs.get(run_id) is run:
            del self._runs[run_id]

    async def _ask(self, run_id: str, method: str, *args: Any) -> dict[str, Any]:
        run = self._run(run_id)
        try:
            result: dict[str, Any] = await getattr(run, method)(*args)
        except KeyError:  # not in the registry (expired, or never was): nothing to hold
            self._forget(run_id, run)
            raise
        return result

    async def put(self, run_id: str, name: str) -> dict[str, Any]:
        return await self._ask(run_id, "put", name)

    async def close(self, run_id: str) -> dict[str, Any]:
        return await self._ask(run_id, "close")

    async def state(self, run_id: str) -> dict[str, Any]:
        return await self._ask(run_id, "state")

    async def wait(self, run_id: str, timeout: float) -> dict[str, Any]:
        return await self._ask(run_id, "wait", timeout)

    async def held(self) -> list[str]:
        """The ids of the runs this host holds now."""
        return sorted(self._runs)


def host_options() -> dict[str, Any]:
    # Task events off: every status call would otherwise leave a record in the GCS.
    return {"num_cpus": 0, "max_restarts": -1, "max_concurrency": HOST_MAX_CONCURRENCY, "namespace": NAMESPACE,
            "lifetime": "detached", "enable_task_events": False,
            "resources": {pool_resource("api"): REPLICA_POOL_SHARE}}


_handles: dict[str, Any] = {}
_handles_lock = threading.Lock()


def host_for(run_id: str, store: dict[str, Any], *, fresh: bool = False) -> Any:
    """The handle of the host that holds *run_id*: the live actor, or a new one (this process keeps it).
    *fresh* looks it up again, for callers that never see a call fail (fire-and-forget)."""
    import ray

    name = host_name(run_id)
    with _handles_lock:
        handle = None if fresh else _handles.get(name)
    if handle is not None:
        return handle
    try:
        handle = ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        actor_cls: Any = ray.remote(FlowRuns)
        handle = actor_cls.options(name=name, get_if_exists=True, **host_options()).remote(store)
    with _handles_lock:
        _handles[name] = handle
    return handle


def resume(run_ids: list[str], store: dict[str, Any]) -> None:
    """Have each run loaded by its host (one that holds it already just answers); one lookup per host."""
    hosts: dict[str, Any] = {}
    for run_id in run_ids:
        name = host_name(run_id)
        if name not in hosts:
            hosts[name] = host_for(run_id, store, fresh=True)
        hosts[name].state.remote(run_id)


def forget_host(run_id: str) -> None:
    """Drop the kept handle after a call to the host failed: the next call looks the host up (or starts it) again."""
    with _handles_lock:
        _handles.pop(host_name(run_id), None)
