"""One flow run, held by a run host (``flows.hosts``): its state and events; it runs steps as soon
as their inputs exist, checkpoints every result before moving on, and resumes from the checkpoint
when its host is restarted or recreated. A step that was running when the host died runs again.
Once the run's inputs are closed, an optional input never given counts as given, with the value None.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pydantic_core

from fn import FlowSpec, FunctionSpec, Timeout
from fn._platform import StepSpec
from fnplatform.serving import versions as routing
from fnplatform.serving.handles import translate_error
from fnplatform.storage.blobs import StoreConfig, open_store
from fnplatform.storage.db import database_url_from_env
from fnplatform.storage.registry import Registry

from .capacity import placement_note
from .metrics import run_finished, step_succeeded
from .spans import RunTrace, Ship
from .state import FlowState, StoredValue, run_state

FINISHED_GRACE_S = 30.0
WATCHDOG_INTERVAL_S = 5.0
# A checkpoint write (database or store) that fails is tried this many times in all, waiting
# CHECKPOINT_BACKOFF_S, then twice that, ... in between (1 + 2 + 4 s: a database restart or a lock
# held for a few seconds is ridden out); after that the run fails with what could not be written.
CHECKPOINT_ATTEMPTS = 4
CHECKPOINT_BACKOFF_S = 1.0
# A step call's deadline: the function's own timeout_s (enforced by its replica once the call runs)
# plus this long to be queued and placed; a call that no replica can take would otherwise wait forever.
STEP_PLACEMENT_S = 600.0
# The function's timeout_s when its active version cannot be read: the largest a spec allows, so a
# legitimate long call is never cut short by a lookup that failed.
STEP_TIMEOUT_FALLBACK_S = 86400.0
# A step call still unanswered after this long, whose function has no running replica, gets a note in
# the run's state saying which pool lacks what (Serve only shows it as a queued request).
PLACEMENT_NOTE_AFTER_S = 15.0
PLACEMENT_NOTE_TIMEOUT_S = 5.0  # Serve's status and Ray's resource counts, asked from a thread

log = logging.getLogger(__name__)


# Everything flows write to the store is under this prefix: the Ray pods may write there and nowhere else
# (terraform/modules/ray, local.flow_blobs_prefix; terraform/tests ties the two together).
BLOB_PREFIX = "blobs/"


def blob_key(run_id: str, kind: str, name: str) -> str:
    return f"{BLOB_PREFIX}runs/{run_id}/{kind}/{name}"


def _error(exc: BaseException) -> dict[str, Any]:
    return {"type": getattr(exc, "error_type", None) or type(exc).__name__,
            "message": getattr(exc, "message", None) or str(exc)}


class CheckpointError(Exception):
    """A checkpoint write kept failing: the run cannot go on without losing what it decided."""

    error_type = "CheckpointFailed"


class RayRuntime:
    """What a run needs from the cluster: calling a step's function, warming it, holding blobs, ending itself."""

    def __init__(self, handles: dict[str, Any] | None = None, on_exit: Callable[[], None] | None = None) -> None:
        self._handles: dict[str, Any] = {} if handles is None else handles  # shared by a host's runs
        self._on_exit = on_exit
        self._warming: dict[str, Any] = {}

    async def pick(self, function: str, pinned: int | None) -> int | None:
        """The version a step's call goes to: its pin, else one drawn by the function's split (None: the active one)."""
        if pinned is not None:
            return pinned
        entry = await routing.table_of_process().aget(function)
        return entry.pick() if entry is not None and entry.split[0] else None

    async def call(self, function: str, request_id: str, kwargs: dict[str, Any], version: int | None = None) -> Any:
        from ray import serve

        # The step's own call scales its function up now: its warm request, still queued beside it, would count
        # as a second caller and start a second replica for nothing.
        warming = self._warming.pop(function, None)
        if warming is not None:
            with contextlib.suppress(Exception):  # its assignment may have failed already: the step's call says why
                warming.cancel()
        app = routing.choose(function, version, kwargs)[0] if version is not None else function
        if app not in self._handles:
            self._handles[app] = serve.get_deployment_handle(function, app_name=app).options(method_name="call")
        return await self._handles[app].remote(request_id, **kwargs)

    def warm(self, functions: set[str]) -> None:
        from ray import serve

        for function in functions:
            # Prewarming is an optimisation; a missing function is reported by its step.
            with contextlib.suppress(Exception):
                handle = serve.get_deployment_handle(function, app_name=function).options(method_name="warm")
                self._warming[function] = handle.remote()

    def hold(self, data: bytes) -> Any:
        """Large values travel to steps through Ray's object store, put there once."""
        import ray

        return ray.put(data)

    def exit(self) -> None:
        """The run is over and recorded: its host forgets it (and the objects it held in Ray's store)."""
        if self._on_exit is not None:
            self._on_exit()


class FlowRun:
    def __init__(self, run_id: str, store: dict[str, Any], *, runtime: Any = None, database_url: str | None = None,
                 db: FlowState | None = None, blobs: Any = None, registry: Registry | None = None,
                 spans: Ship | None = None) -> None:
        # A host passes its one database, store and registry client to all its runs (an engine each would not do).
        self.run_id = run_id
        self._runtime = runtime or RayRuntime()
        self._db = db or FlowState(database_url or database_url_from_env())
        self._store = blobs or open_store(StoreConfig(**store))
        self._loading: asyncio.Task[None] | None = None
        self._inputs: dict[str, StoredValue] = {}
        self._inputs_closed = False  # no more inputs will come: an absent optional input is None
        self._objects: dict[str, Any] = {}  # blob inputs, put in Ray's object store once
        self._results: dict[str, Any] = {}
        self._steps: dict[str, dict[str, Any]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._registry: Registry | None = registry
        self._specs: dict[str, FunctionSpec] = {}  # each step function's active spec, read for its deadline
        # ... and its version number, recorded with the step's result: which code decided (a run's evidence).
        self._versions: dict[str, int] = {}
        self._pins: dict[str, int] = {}  # function -> version, for this run's steps (fnctl flow run --version)
        self._unrecorded = False  # failed in memory, but finish_run has not written it yet
        self._recording = asyncio.Lock()
        self._status = "pending"
        self._output: Any = None
        self._error: dict[str, Any] | None = None
        self._last_activity = time.time()
        self._ship_spans = spans

    # lifecycle ----------------------------------------------------------------------------
    async def _ensure(self) -> None:
        # Concurrent first calls (the gateway, the control plane resuming runs) share one load.
        # A load that failed (database down, a blob unreadable) is tried again by the next call,
        # not kept as the answer for the actor's lifetime.
        loading = self._loading
        if loading is None or (loading.done() and (loading.cancelled() or loading.exception() is not None)):
            loading = self._loading = asyncio.get_running_loop().create_task(self._load_checkpoint())
        await asyncio.shield(loading)

    async def _load_checkpoint(self) -> None:
        self._done = asyncio.Event()
        record = await asyncio.to_thread(self._db.run, self.run_id)
        if record is None:
            raise KeyError(f"run {self.run_id} is not in the registry")
        self.spec: FlowSpec = record.spec
        self._trace = RunTrace(self.run_id, self.spec.name, self._ship_spans)
        self._created_at = record.created_at
        self._steps = {s.name: {"status": "waiting", "attempts": 0} for s in self.spec.steps}
        self._inputs_closed = record.inputs_closed
        self._pins = record.pins
        for value in record.values.values():
            if value.kind == "input":
                self._inputs[value.name] = value
            elif value.status == "done" and value.name in self._steps:
                self._results[value.name] = await self._load(value)
                self._steps[value.name].update(status="succeeded", attempts=value.attempts)
        self._status = record.status
        if record.status in {"succeeded", "failed"}:
            self._output, self._error = record.output, record.error
            self._finish_locally()
            return
        asyncio.get_running_loop().create_task(self._watchdog())
        if self.spec.output in self._results:  # the output was checkpointed, the run's end was not written
            asyncio.get_running_loop().create_task(self._succeed())
            return
        if self.spec.prewarm:
            self._prewarm()
        self._schedule()

    def _prewarm(self) -> None:
        """Ask every step's deployment to scale up now, so cold starts overlap the early steps."""
        self._runtime.warm({s.function for s in self.spec.steps})

    async def _watchdog(self) -> None:
        while self._status in {"pending", "running"} or self._unrecorded:
            await asyncio.sleep(min(WATCHDOG_INTERVAL_S, self.spec.ttl_s / 2))
            try:
                await self._watch()
            except Exception:  # the watchdog must outlive any one failed check
                log.exception("flow run %s: watchdog check failed", self.run_id)

    async def _watch(self) -> None:
        if self._unrecorded:
            await self._record_failure()
            return
        if self._status not in {"pending", "running"}:
            return
        for name, step in self._steps.items():
            task = self._tasks.get(name)
            if step["status"] == "running" and (task is None or task.done()):
                # _run_step turns every exception into a failed run; this catches what slipped past it.
                step["status"] = "failed"
                await self._fail({"type": "StepLost", "step": name,
                                  "message": f"step {name!r} ended without a result or an error"})
                return
            if step["status"] == "running":
                await self._note_placement(name, step)
        idle = time.time() - self._last_activity
        if not self._tasks and idle > self.spec.ttl_s:
            await self._fail({"type": "Abandoned", "message": f"no progress for {idle:.0f} s (ttl_s {self.spec.ttl_s:g})"})

    def _finish_locally(self) -> None:
        self._done.set()
        asyncio.get_running_loop().create_task(self._exit_later())

    async def _exit_later(self) -> None:
        # Linger a little so waiters and status calls still reach us; the registry has the final state.
        await asyncio.sleep(min(FINISHED_GRACE_S, self.spec.ttl_s))
        self._runtime.exit()

    # values -------------------------------------------------------------------------------
    async def _load(self, value: StoredValue) -> Any:
        if value.blob_key is None:
            return value.value
        data = await asyncio.to_thread(self._store.read, value.blob_key)
        return self._runtime.hold(data)

    async def _input(self, name: str) -> Any:
        if name not in self._inputs:
            return None  # _ready let it through: an optional input absent when the inputs were closed
        if name not in self._objects:
            self._objects[name] = await self._load(self._inputs[name])
        return self._objects[name]

    def _has_input(self, name: str) -> bool:
        return name in self._inputs or (self._inputs_closed and name in self.spec.optional)

    def _ready(self, step: StepSpec) -> bool:
        for source in step.inputs.values():
            kind, _, ref = source.partition(":")
            if (kind == "input" and not self._has_input(ref)) or (kind == "step" and ref not in self._results):
                return False
        return True

    def _schedule(self) -> None:
        if self._status not in {"pending", "running"}:
            return
        for step in self.spec.steps:
            if self._steps[step.name]["status"] == "waiting" and self._ready(step):
                self._steps[step.name]["status"] = "running"
                self._tasks[step.name] = asyncio.get_running_loop().create_task(self._run_step(step))

    # steps --------------------------------------------------------------------------------
    async def _run_step(self, step: StepSpec) -> None:
        # The task leaves the table only once everything it decided is written: an empty table
        # means the checkpoint database holds the run's state (tests and shutdown rely on that).
        try:
            await self._attempt_step(step)
        except Exception as exc:  # whatever ended the task ends the step and the run, visibly
            log.exception("flow run %s: step %s failed outside its call", self.run_id, step.name)
            self._steps[step.name].update(status="failed", error=_error(exc))
            await self._fail({**_error(exc), "step": step.name})
        finally:
            self._tasks.pop(step.name, None)

    async def _attempt_step(self, step: StepSpec) -> None:
        state = self._steps[step.name]
        while True:
            state["attempts"] += 1
            state["started_at"] = time.time()
            trace, span = self._trace.attempt(step.name, step.function, state["attempts"])
            try:
                kwargs = {param: await self._input(src[6:]) if src.startswith("input:") else self._results[src[5:]]
                          for param, src in step.inputs.items()}
                deadline = await self._call_deadline(step.function)
                version = await self._runtime.pick(step.function, self._pins.get(step.function))
                state["version"] = version if version is not None else self._versions.get(step.function)
                hop = self._trace.hop(step.name, trace, span)
                call = self._runtime.call(step.function, hop, kwargs, version)
                try:
                    result = await asyncio.wait_for(call, deadline)
                except TimeoutError:
                    note = state.get("waiting_for")
                    raise Timeout(f"step {step.name!r}: {step.function} could not be placed or did not answer "
                                  f"within {deadline:g} s (its timeout_s plus {STEP_PLACEMENT_S:g} s to be placed)"
                                  + (f": {note}" if note else "")) from None
                finally:
                    state.pop("waiting_for", None)
                self._trace.attempt_ended(trace, span)
                break
            except Exception as exc:  # noqa: BLE001 - a failed attempt is retried, then fails the run with its error
                error = _error(translate_error(exc, step.function))
                state["error"] = error
                self._trace.attempt_ended(trace, span, error.get("message"))
                if state["attempts"] > step.retries:
                    state["status"] = "failed"
                    await self._write(f"the failure of step {step.name!r}", self._db.record_step, self.run_id,
                                      step.name, attempts=state["attempts"], error=error, **self._provenance(step))
                    await self._fail({**error, "step": step.name, "attempts": state["attempts"]})
                    return
                await asyncio.sleep(min(0.5 * 2 ** (state["attempts"] - 1), 5.0))
        state["duration_ms"] = round((time.time() - state["started_at"]) * 1000, 1)
        step_succeeded(self.spec.name, step.name, state["duration_ms"] / 1000)
        await self._checkpoint(step, result, state["attempts"])
        state.update(status="succeeded", error=None)
        self._last_activity = time.time()
        if step.name == self.spec.output:
            await self._succeed()
        else:
            self._schedule()

    async def _succeed(self) -> None:
        output = self._results[self.spec.output]
        try:
            await self._write("the run's output", self._db.finish_run, self.run_id, output_json=json.dumps(output))
        except Exception as exc:  # noqa: BLE001 - an output that cannot be recorded fails the run, visibly
            await self._fail({**_error(exc), "step": self.spec.output})
            return
        run_finished(self.spec.name, "succeeded")
        self._trace.run_ended("succeeded", self._created_at)
        self._status, self._output = "succeeded", output
        self._finish_locally()

    async def _checkpoint(self, step: StepSpec, result: Any, attempts: int) -> None:
        provenance = self._provenance(step)
        if isinstance(result, bytes | bytearray):
            key = blob_key(self.run_id, "steps", step.name)
            await self._write(f"the result of step {step.name!r} to the store", self._store.write, key, bytes(result))
            await self._write(f"the result of step {step.name!r}", self._db.record_step, self.run_id, step.name,
                              attempts=attempts, blob_key=key, **provenance)
            self._results[step.name] = self._runtime.hold(bytes(result))
            return
        text = pydantic_core.to_json(result).decode()
        await self._write(f"the result of step {step.name!r}", self._db.record_step, self.run_id, step.name,
                          attempts=attempts, value_json=text, **provenance)
        self._results[step.name] = json.loads(text)  # what a resumed run would load

    def _provenance(self, step: StepSpec) -> dict[str, Any]:
        """The version of the function the step's last attempt called (the active one when it was called) and
        when that attempt began."""
        started = self._steps[step.name].get("started_at")
        return {"version": self._steps[step.name].get("version", self._versions.get(step.function)),
                "started_at": datetime.fromtimestamp(started, UTC).replace(tzinfo=None) if started else None}

    async def _fail(self, error: dict[str, Any]) -> None:
        if self._status in {"succeeded", "failed"}:
            return
        self._status, self._error, self._unrecorded = "failed", error, True
        self._done.set()  # waiters see the failure now; the actor stays until it is recorded
        current = asyncio.current_task()
        for name, task in list(self._tasks.items()):
            if task is current:
                continue
            task.cancel()
            self._steps[name]["status"] = "cancelled"
        await self._record_failure()

    async def _record_failure(self) -> None:
        # _fail and the watchdog may both try; one write at a time, and the actor ends once.
        async with self._recording:
            if not self._unrecorded:
                return
            try:
                await self._write("the run's failure", self._db.finish_run, self.run_id, error=self._error)
            except CheckpointError:
                # The run stays failed in memory and the actor stays up: the watchdog tries again, and
                # if the actor dies first, the resumed run is still unfinished in the database and reruns.
                log.exception("flow run %s: could not record its failure; retrying later", self.run_id)
                return
            self._unrecorded = False
            run_finished(self.spec.name, "failed")
            self._trace.run_ended("failed", self._created_at)
            self._finish_locally()

    async def _write(self, what: str, write: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """One checkpoint write, retried with backoff; CheckpointError says what and why when it keeps failing."""
        for attempt in range(1, CHECKPOINT_ATTEMPTS + 1):
            try:
                await asyncio.to_thread(write, *args, **kwargs)
                return
            except Exception as exc:  # any failed write is retried, then reported with its cause
                if attempt == CHECKPOINT_ATTEMPTS:
                    raise CheckpointError(f"could not write {what} after {attempt} attempts: "
                                          f"{type(exc).__name__}: {exc}") from exc
                log.warning("flow run %s: writing %s failed (%s), retrying", self.run_id, what, exc)
                await asyncio.sleep(CHECKPOINT_BACKOFF_S * 2 ** (attempt - 1))

    async def _call_deadline(self, function: str) -> float:
        try:
            if self._registry is None:
                self._registry = Registry(self._db.url)
            version = await asyncio.to_thread(self._registry.active, function)
            if version:
                self._specs[function], self._versions[function] = version.spec, version.number
        except Exception:  # an unknown timeout falls back to the largest allowed
            log.warning("flow run %s: could not read %s's timeout_s", self.run_id, function, exc_info=True)
            version = None
        return (version.spec.timeout_s if version else STEP_TIMEOUT_FALLBACK_S) + STEP_PLACEMENT_S

    async def _note_placement(self, name: str, step: dict[str, Any]) -> None:
        spec = self._specs.get(next(s.function for s in self.spec.steps if s.name == name))
        if spec is None or time.time() - step.get("started_at", time.time()) < PLACEMENT_NOTE_AFTER_S:
            return
        try:
            note = await asyncio.wait_for(asyncio.to_thread(placement_note, spec), PLACEMENT_NOTE_TIMEOUT_S)
        except Exception:  # an explanation that cannot be had is left out, never fails the run
            log.warning("flow run %s: could not tell why step %s waits", self.run_id, name, exc_info=True)
            return
        if step["status"] != "running":
            return
        if note:
            step["waiting_for"] = note
        else:
            step.pop("waiting_for", None)

    # API for the gateway ------------------------------------------------------------------
    async def put(self, name: str) -> dict[str, Any]:
        """An input was checkpointed by the gateway: pick it up and start what it unblocks."""
        await self._ensure()
        record = await asyncio.to_thread(self._db.run, self.run_id)
        if record is not None and name in record.values:
            self._inputs[name] = record.values[name]
        return self._progress()

    async def close(self) -> dict[str, Any]:
        """The gateway checkpointed that no more inputs will come: absent optional inputs are None from now on."""
        await self._ensure()
        record = await asyncio.to_thread(self._db.run, self.run_id)
        if record is not None:
            # Every input checkpointed before the close, as well: one whose put has not reached this host yet
            # must not be taken for absent and replaced by None.
            for value in record.values.values():
                if value.kind == "input":
                    self._inputs.setdefault(value.name, value)
            self._inputs_closed = self._inputs_closed or record.inputs_closed
        return self._progress()

    def _progress(self) -> dict[str, Any]:
        if self._status == "pending":
            self._status = "running"
        self._last_activity = time.time()
        self._schedule()
        return self.snapshot()

    async def state(self) -> dict[str, Any]:
        await self._ensure()
        return self.snapshot()

    async def wait(self, timeout: float) -> dict[str, Any]:
        await self._ensure()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._done.wait(), timeout=timeout)
        return self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        steps = {name: {k: v for k, v in s.items() if k != "started_at"} for name, s in self._steps.items()}
        return run_state(self.run_id, self.spec, self._status, set(self._inputs), steps, self._output, self._error,
                         inputs_closed=self._inputs_closed)

