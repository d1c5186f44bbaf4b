"""The job runner: one named, detached Ray actor that runs every queued job through the function's Serve handle.

A job costs a row in the database while it waits and an awaited handle call while it runs, never a process:
10,000 queued jobs are 10,000 rows. The runner claims due jobs as each function's ``job_concurrency`` and the
runner's own cap allow, so jobs reach the function's replicas as calls do and feed its autoscaling the same way.
It holds a lease on each running job and renews it; if the runner dies, Ray restarts it and the new one puts the
old one's jobs back in the queue at once (a job's run cut short by the platform does not use its retries).

The loop runs on a thread of its own with its own event loop: Ray gives an actor's constructor no loop to start
one in, and a runner restarted by Ray must start working without anyone calling it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pydantic_core

from fn import ClientError, FnError
from fnplatform.pools import REPLICA_POOL_SHARE, pool_resource
from fnplatform.serving import versions as routing
from fnplatform.serving.handles import BUSY_TYPE, HandleTransport
from fnplatform.serving.hub import lazy_hub
from fnplatform.serving.logs import request_id_var
from fnplatform.storage.blobs import StoreConfig, open_store
from fnplatform.storage.db import utcnow
from fnplatform.storage.group_commit import GroupCommit
from fnplatform.storage.jobs import Ending, Job, JobStore
from fnplatform.storage.registry import Registry

from .settings import JobSettings

log = logging.getLogger("fnplatform.jobs")
RUNNER_NAME = "fn-jobs"
NAMESPACE = "fn"
LEASE_S = 60.0
RENEW_S = 10.0
MAX_BUSY_S = 3600.0  # a function at capacity this long after the job was accepted: its attempts count from then on
RUNNING_LOOK_S = 0.5  # while jobs run: cancellations asked for, and due jobs a poke did not announce
IDLE_LOOK_S = 5.0
INLINE_RESULT_BYTES = 256 * 1024
# Error types of the platform failing a call (the replica or its node gone), not the function: the attempt is given back.
LOST_TYPES = frozenset({"ActorDiedError", "RayActorError", "ActorUnavailableError", "WorkerCrashedError", "NodeDiedError",
                        "OwnerDiedError", "ObjectLostError", "RaySystemError", "DeploymentUnavailableError"})


def result_key(job_id: str) -> str:
    return f"jobs/{job_id}/result.json"


def arguments_key(job_id: str) -> str:
    return f"jobs/{job_id}/arguments.json"


def error_of(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, ClientError):
        return {"type": exc.error_type or type(exc).__name__, "status": exc.status or 500, "message": exc.message}
    return {"type": type(exc).__name__, "status": 500, "message": str(exc) or type(exc).__name__}


def outcome(error: dict[str, Any]) -> str:
    """What a failed attempt means: 'lost' (the platform failed: try again, the attempt given back), 'busy' (the
    function's queue is full: wait, given back too), 'retry' (the function failed or ran out of time: by the job's
    retries) or 'final' (the call itself is wrong: a missing function, bad arguments; retrying cannot help)."""
    status, kind = int(error.get("status") or 500), str(error.get("type") or "")
    if kind in LOST_TYPES:
        return "lost"
    if kind == BUSY_TYPE:  # the platform's back-pressure only: a function raising a 503 is the function failing
        return "busy"
    if status in {408, 429, 500, 504} or status >= 500:
        return "retry"
    return "final"


class JobRunner:
    """The actor. ``poke`` wakes it at once (a job was just queued); it also looks for due jobs by itself (_until_next)."""

    def __init__(self, store: dict[str, Any], database_url: str | None = None) -> None:
        self.settings = JobSettings.from_env(database_url)
        self._store_config = store
        self._store_config = store
        self.owner = f"runner-{uuid.uuid4().hex[:12]}"
        self._transport = HandleTransport()
        routing.table(lazy_hub())  # handles in this process choose versions by the published traffic table
        self._running: dict[str, asyncio.Task[None]] = {}
        self._per_function: dict[str, int] = {}
        self._caps: dict[str, int] = {}
        self._caps_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._thread, name="fn-job-runner", daemon=True).start()
        self._ready.wait(10)

    # the actor's methods ------------------------------------------------------------------------
    def poke(self) -> None:
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def stats(self) -> dict[str, Any]:
        return {"owner": self.owner, "running": len(self._running), "per_function": dict(self._per_function),
                "pid": os.getpid()}

    # the loop ---------------------------------------------------------------------------------
    def _thread(self) -> None:
        # Whatever ends the loop, it starts again: a live actor whose loop died would run no job, and Ray would
        # never restart it. Jobs it was running keep their lease until it runs out, then are queued again.
        while True:
            try:
                asyncio.run(self._main())
            except BaseException as exc:  # noqa: BLE001 - logged, then the loop starts again
                log.error("job runner loop ended (%s: %s); starting it again", type(exc).__name__, exc)
            self._running.clear()
            self._per_function.clear()
            time.sleep(2)

    def _open(self) -> None:
        """The database and the store, opened in the loop (not the constructor): an actor whose constructor failed
        would be dead for good, and the database may be away just when the runner restarts."""
        self._db = JobStore(self.settings.database_url)
        self._registry = Registry(self.settings.database_url)
        self._blobs = open_store(StoreConfig(**self._store_config))
        self._endings = GroupCommit(self._db.finish_many)  # jobs ending together are written together
        moved = self._db.requeue_expired(utcnow(), owner_other_than=self.owner)
        if moved:
            log.warning("put %d jobs of a runner that is gone back in the queue", moved)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._ready.set()
        wait = 1.0
        while True:
            try:
                await asyncio.to_thread(self._open)
                break
            except Exception as exc:  # noqa: BLE001 - the database away: try again, more slowly each time
                log.warning("job runner: cannot open the jobs database yet (%s: %s)", type(exc).__name__, exc)
                await asyncio.sleep(wait)
                wait = min(wait * 2, 30.0)
        last_renew = last_sweep = time.monotonic()
        pause = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
            self._wake.clear()
            pause = IDLE_LOOK_S
            try:
                now = time.monotonic()
                if now - last_renew >= RENEW_S:
                    last_renew = now
                    await asyncio.to_thread(self._db.renew, list(self._running), self.owner, LEASE_S)
                    await asyncio.to_thread(self._db.requeue_expired, utcnow())
                if now - last_sweep >= 60:
                    last_sweep = now
                    await asyncio.to_thread(self._purge)
                if self._running:
                    for job_id in await asyncio.to_thread(self._db.cancels, self.owner):
                        task = self._running.get(job_id)
                        if task is not None:
                            task.cancel()
                await self._fill()
                pause = await self._until_next()
            except Exception as exc:  # noqa: BLE001 - the database away for a moment: try again next turn
                log.warning("job runner: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(1)

    async def _fill(self) -> None:
        room = self.settings.max_running - len(self._running)
        if room <= 0:
            return
        await self._refresh_caps()
        full = {f for f, n in self._per_function.items() if n >= self._caps.get(f, self.settings.default_cap)}
        chosen: list[str] = []
        counts = dict(self._per_function)
        for job in await asyncio.to_thread(self._db.due, utcnow(), min(room * 2, 512), skip=full):
            if len(chosen) >= room:
                break
            if job.id in self._running:  # its lease ran out while it runs here (renewals stalled): not a second run
                continue
            if counts.get(job.function, 0) < self._caps.get(job.function, self.settings.default_cap):
                counts[job.function] = counts.get(job.function, 0) + 1
                chosen.append(job.id)
        # one transaction for all of them: a job cancelled meanwhile is not claimed
        for claimed in await asyncio.to_thread(self._db.claim_many, chosen, self.owner, LEASE_S) if chosen else []:
            self._per_function[claimed.function] = self._per_function.get(claimed.function, 0) + 1
            self._running[claimed.id] = asyncio.get_running_loop().create_task(self._attempt(claimed))

    async def _until_next(self) -> float:
        """How long to sleep unless woken: a new job, a free slot or a cancellation wakes it or is looked for within
        a second while jobs run; a retry waits for its time; an idle runner looks every IDLE_LOOK_S (another gateway's
        poke may have missed it)."""
        if self._running:
            return RUNNING_LOOK_S
        due = await asyncio.to_thread(self._db.next_due)
        if due is None:
            return IDLE_LOOK_S
        return min(IDLE_LOOK_S, max(0.05, (due - utcnow()).total_seconds()))

    async def _refresh_caps(self) -> None:
        if time.monotonic() - self._caps_at < 5:
            return
        self._caps_at = time.monotonic()
        actives = await asyncio.to_thread(self._registry.actives)
        self._caps = {v.spec.name: v.spec.job_concurrency for v in actives}

    async def _attempt(self, job: Job) -> None:
        request_id_var.set(job.id)  # the function's log lines for this attempt carry the job's id
        try:
            arguments = await asyncio.to_thread(self._arguments, job)
            pending = self._transport.submit(job.function, arguments, job.version)
            result = await self._transport.aresult(pending, job.timeout_s)
        except asyncio.CancelledError:
            cancelled = Ending(job.id, self.owner, "cancelled",
                               error={"type": "Cancelled", "status": 409, "message": "cancelled on request"})
            await self._record(lambda: self._endings.write(cancelled))
            return
        except Exception as exc:  # noqa: BLE001 - every failure is recorded with the job, then retried or final
            error = error_of(exc)
            await self._record(lambda: asyncio.to_thread(self._failed, job, error))
        else:
            ending = await asyncio.to_thread(self._success, job, result)
            await self._record(lambda: self._endings.write(ending))
        finally:
            self._running.pop(job.id, None)
            left = self._per_function.get(job.function, 1) - 1
            if left > 0:
                self._per_function[job.function] = left
            else:
                self._per_function.pop(job.function, None)
            if self._wake is not None:
                self._wake.set()  # a slot is free

    async def _record(self, write: Callable[[], Awaitable[Any]]) -> None:
        """Write a job's end, trying again for about a minute while the database is away: the job stays this runner's
        (its lease renewed) meanwhile, so it is not run again because one write failed."""
        for pause in (0.5, 1, 2, 4, 8, 15, 30):
            try:
                await write()
                return
            except Exception as exc:  # noqa: BLE001 - tried again; after the last, its lease runs out and it is requeued
                log.warning("job runner: cannot record a job's end yet (%s: %s)", type(exc).__name__, exc)
                await asyncio.sleep(pause)

    def _arguments(self, job: Job) -> dict[str, Any]:
        import json

        text = job.arguments if job.arguments is not None else self._blobs.read(job.arguments_blob or "").decode()
        value = json.loads(text)
        return dict(value) if isinstance(value, dict) else {}

    def _success(self, job: Job, result: Any) -> Ending:
        """How a job that returned *result* ends: its JSON inline, or (large) in the store."""
        try:
            encoded = pydantic_core.to_json(result, bytes_mode="base64")
        except pydantic_core.PydanticSerializationError as exc:
            return Ending(job.id, self.owner, "failed", error={
                "type": "ResultNotSerializable", "status": 500,
                "message": f"{job.function} returned a {type(result).__name__} that cannot be JSON-encoded: {exc}"})
        if len(encoded) > INLINE_RESULT_BYTES:
            key = result_key(job.id)
            self._blobs.write(key, encoded)
            return Ending(job.id, self.owner, "succeeded", result_blob=key)
        return Ending(job.id, self.owner, "succeeded", result=encoded.decode())

    def _succeeded(self, job: Job, result: Any) -> None:
        self._db.finish_many([self._success(job, result)])

    def _failed(self, job: Job, error: dict[str, Any]) -> None:
        kind = outcome(error)
        if error.get("type") == "NotDeployed" and job.function in self._caps:
            kind = "busy"  # registered but not (yet) in Serve: a restarted control plane is still deploying it
        if kind == "busy" and utcnow() - job.created < timedelta(seconds=MAX_BUSY_S):
            self._db.retry_later(job.id, self.owner, 2.0, error, busy=True)
            return
        if kind == "lost" and job.lost < self.settings.max_lost:
            self._db.retry_later(job.id, self.owner, min(30.0, 2.0 ** min(job.lost, 5)), error, lost=True)
            return
        if kind != "final" and job.attempts < job.max_attempts:
            delay = job.backoff_s * (2 ** (job.attempts - 1))
            self._db.retry_later(job.id, self.owner, min(delay, 3600.0), error)
            return
        if job.attempts >= job.max_attempts and job.max_attempts > 1:
            error = {**error, "message": f"{error['message']} (attempt {job.attempts} of {job.max_attempts}: a dead "
                                         f"letter; re-drive it with 'fnctl jobs retry {job.id}')"}
        self._db.finish(job.id, self.owner, "failed", error=error)

    def _purge(self) -> None:
        for key in self._db.purge(utcnow() - timedelta(seconds=self.settings.retention_s)):
            with contextlib.suppress(FnError, OSError):
                self._blobs.delete(key)


def runner_options() -> dict[str, Any]:
    return {"num_cpus": 0, "max_restarts": -1, "max_concurrency": 100, "namespace": NAMESPACE, "lifetime": "detached",
            "enable_task_events": False, "resources": {pool_resource("api"): REPLICA_POOL_SHARE}}


_handle: Any = None
_handle_lock = threading.Lock()


def runner(store: dict[str, Any], *, fresh: bool = False) -> Any:
    """The runner's handle: the live actor, or a new one."""
    global _handle
    import ray

    with _handle_lock:
        if _handle is not None and not fresh:
            return _handle
    try:
        handle = ray.get_actor(RUNNER_NAME, namespace=NAMESPACE)
    except ValueError:
        actor_cls: Any = ray.remote(JobRunner)
        handle = actor_cls.options(name=RUNNER_NAME, get_if_exists=True, **runner_options()).remote(store)
    with _handle_lock:
        _handle = handle
    return handle


_looked_up = 0.0
LOOKUP_S = 30.0  # a kept handle is looked up again this often: a runner that died for good was replaced meanwhile


def poke(store: dict[str, Any]) -> None:
    """Wake the runner (fire and forget); a runner not found is started. Its own look finds the job anyway."""
    global _looked_up
    fresh = time.monotonic() - _looked_up > LOOKUP_S
    if fresh:
        _looked_up = time.monotonic()
    try:
        runner(store, fresh=fresh).poke.remote()
    except Exception:  # noqa: BLE001 - a stale handle: look it up again once
        with contextlib.suppress(Exception):
            runner(store, fresh=True).poke.remote()
