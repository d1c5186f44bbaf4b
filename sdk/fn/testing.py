"""Run decorated functions and flows in-process, for your own tests: no cluster, no HTTP, no platform.

    import fn.testing

    def test_pipeline():
        with fn.testing.local():
            assert fn.call("add", a=2, b=3) == 5
            run = fn.flows.start("documents")
            run.put("front", b"...")
            assert run.result()["decision"] == "approve"

Inside ``local()`` every ``fn.call`` / ``fn.acall`` / ``fn.map`` / ``fn.ref`` goes to the functions
decorated in this process (import their modules first), and ``fn.flows.start`` runs the flows
declared with ``fn.Flow``, step by step as their inputs arrive. As on the platform: arguments are
validated against the type hints (``fn.ValidationFailed`` names the fields), a model's ``setup()``
runs once, batched functions get lists of one item, a function that raises surfaces as
``fn.RemoteError`` with its exception's type (an ``fn`` error is kept as raised), ``timeout_s`` is
enforced (``fn.Timeout``), failing flow steps are retried ``retries`` times, and ``run.close_inputs()``
lets a run finish without its optional inputs (their steps get None). What it does not
do: placement, autoscaling, HTTP bodies (raw bytes, multipart), keys.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pydantic

from . import _transport, flows
from ._client import Pending
from ._decorators import registered
from ._errors import ClientError, Conflict, FnError, NotFound, RemoteError, Timeout, ValidationFailed
from ._flow import FlowSpec, declared_flows
from ._spec import FunctionSpec

__all__ = ["LocalPlatform", "LocalRun", "local"]


class _Function:
    def __init__(self, spec: FunctionSpec, obj: Any) -> None:
        self.spec = spec
        self._obj = obj
        self._target: Any = None
        self._lock = threading.Lock()

    def target(self) -> Any:
        with self._lock:  # a model is created and set up once, as in one replica
            if self._target is None:
                if self.spec.kind == "model":
                    instance = self._obj()
                    setup = getattr(instance, "setup", None)
                    if setup is not None and inspect.iscoroutine(result := setup()):
                        asyncio.run(result)
                    self._target = pydantic.validate_call(instance.__call__)
                else:
                    self._target = pydantic.validate_call(self._obj)
            return self._target

    def run(self, kwargs: dict[str, Any]) -> Any:
        batched = self.spec.max_batch_size > 1
        arguments = {k: [v] for k, v in kwargs.items()} if batched else kwargs
        try:
            result = self.target()(**arguments)
            if inspect.iscoroutine(result):
                result = asyncio.run(result)
        except pydantic.ValidationError as exc:
            detail = [{"field": ".".join(str(p) for p in e["loc"]) or "(arguments)", "message": e["msg"]} for e in exc.errors()]
            message = "; ".join(f"{d['field']}: {d['message']}" for d in detail)
            raise ValidationFailed(f"invalid arguments for {self.spec.name}: {message}", status=422, detail=detail) from None
        except FnError:
            raise
        except Exception as exc:  # noqa: BLE001 - as on the platform: the type and message reach the caller
            raise RemoteError(str(exc), status=500, error_type=type(exc).__name__) from None
        if batched:
            if not isinstance(result, list | tuple) or len(result) != 1:
                raise RemoteError(f"{self.spec.name} is batched: it must return a list with one result per input",
                                  status=500, error_type="TypeError")
            return result[0]
        return result


class _LocalTransport:
    """fn's Transport over the functions decorated in this process."""

    def __init__(self, platform: LocalPlatform) -> None:
        self._platform = platform
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="fn-local")
        self._specs: dict[Future[Any], FunctionSpec] = {}  # each pending call's spec, for its timeout_s

    def submit(self, name: str, kwargs: dict[str, Any], version: int | None = None) -> Future[Any]:
        function = self._platform.function(name)  # one version of each here: a pinned *version* is this one
        future = self._pool.submit(lambda: function.run({k: v.result() if isinstance(v, Pending) else v
                                                         for k, v in kwargs.items()}))
        self._specs[future] = function.spec
        return future

    def _limit(self, pending: Future[Any], timeout: float) -> tuple[float, str]:
        spec = self._specs.pop(pending, None)
        if spec is not None and spec.timeout_s <= timeout:
            return spec.timeout_s, f"{spec.name} ran past its timeout_s of {spec.timeout_s:g} s"
        return timeout, f"no answer within {timeout:g} s"

    def result(self, pending: Future[Any], timeout: float) -> Any:
        limit, message = self._limit(pending, timeout)
        try:
            return pending.result(timeout=limit)
        except FutureTimeout:
            raise Timeout(message, status=504) from None

    async def aresult(self, pending: Future[Any], timeout: float) -> Any:
        limit, message = self._limit(pending, timeout)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(pending), limit)
        except TimeoutError:
            raise Timeout(message, status=504) from None

    def stream(self, name: str, kwargs: dict[str, Any], version: int | None = None) -> Iterator[Any]:
        """A generator function's chunks, as it yields them; an async generator's too."""
        produced = self._platform.function(name).target()(**kwargs)
        if inspect.isasyncgen(produced):
            yield from _drain(produced)
        elif inspect.isgenerator(produced):
            yield from produced
        else:
            raise TypeError(f"{name} is not a generator function: call it, or make it yield its results to stream them")

    async def astream(self, name: str, kwargs: dict[str, Any], version: int | None = None) -> AsyncIterator[Any]:
        produced = self._platform.function(name).target()(**kwargs)
        if inspect.isasyncgen(produced):
            async for chunk in produced:
                yield chunk
        else:
            for chunk in self.stream(name, kwargs, version) if not inspect.isgenerator(produced) else produced:
                yield chunk

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _drain(produced: Any) -> Iterator[Any]:
    """An async generator read from sync code (a test's for loop), one chunk at a time on a private loop."""
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(produced.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.close()


class LocalRun:
    """A flow run in this process: a step runs as soon as the inputs it needs have been put."""

    def __init__(self, platform: LocalPlatform, spec: FlowSpec) -> None:
        self.flow = spec.name
        self.id = uuid.uuid4().hex[:16]
        self._platform = platform
        self._spec = spec
        self._inputs: dict[str, Any] = {}
        self._inputs_closed = False
        self._results: dict[str, Any] = {}
        self._steps: dict[str, dict[str, Any]] = {s.name: {"status": "waiting", "attempts": 0} for s in spec.steps}
        self._error: dict[str, Any] | None = None

    def put(self, name: str, data: Any) -> dict[str, Any]:
        if name not in self._spec.inputs:
            raise NotFound(f"flow {self.flow!r} has no input {name!r}; its inputs: {', '.join(self._spec.inputs)}",
                           status=404)
        if name in self._inputs:
            raise Conflict(f"input {name!r} of run {self.id} was already given; the first is kept", status=409)
        if self._inputs_closed:
            raise Conflict(f"inputs of run {self.id} are closed: input {name!r} is refused", status=409)
        self._inputs[name] = data.read_bytes() if isinstance(data, Path) else data
        self._advance()
        return self.status()

    def close_inputs(self) -> dict[str, Any]:
        """No more inputs: steps taking an optional input never given run with None for it (as on the platform)."""
        if self.status()["status"] in {"succeeded", "failed"}:
            return self.status()
        missing = [name for name in self._spec.inputs if name not in self._inputs and name not in self._spec.optional]
        if missing:
            optional = (f"only its optional inputs {list(self._spec.optional)} may be missing" if self._spec.optional
                        else f"flow {self.flow!r} has no optional inputs")
            raise Conflict(f"cannot close the inputs of run {self.id}: required input(s) "
                           f"{', '.join(repr(n) for n in missing)} not given yet ({optional}); give them first",
                           status=409)
        self._inputs_closed = True
        self._advance()
        return self.status()

    def _advance(self) -> None:
        progressed = True
        while progressed and self._error is None:
            progressed = False
            for step in self._spec.steps:
                state = self._steps[step.name]
                sources = {param: src.split(":", 1) for param, src in step.inputs.items()}
                absent = self._spec.optional if self._inputs_closed else ()
                have = {**{f"input:{k}": None for k in absent},
                        **{f"input:{k}": v for k, v in self._inputs.items()},
                        **{f"step:{k}": v for k, v in self._results.items()}}
                if state["status"] != "waiting" or any(f"{kind}:{ref}" not in have for kind, ref in sources.values()):
                    continue
                arguments = {param: have[f"{kind}:{ref}"] for param, (kind, ref) in sources.items()}
                self._run_step(step.name, step.function, step.retries, arguments)
                progressed = True

    def _run_step(self, name: str, function: str, retries: int, arguments: dict[str, Any]) -> None:
        state = self._steps[name]
        for attempt in range(retries + 1):
            state["attempts"] = attempt + 1
            try:
                self._results[name] = self._platform.call(function, arguments)
            except ClientError as exc:
                error = {"type": exc.error_type or type(exc).__name__, "message": exc.message, "step": name}
                continue
            except FnError as exc:
                error = {"type": type(exc).__name__, "message": str(exc), "step": name}
                continue
            state["status"] = "succeeded"
            return
        state["status"] = "failed"
        self._error = error

    def status(self, wait: float = 0) -> dict[str, Any]:
        state: dict[str, Any] = {"id": self.id, "flow": self.flow, "inputs": sorted(self._inputs),
                                 "optional": list(self._spec.optional), "inputs_closed": self._inputs_closed,
                                 "steps": {k: dict(v) for k, v in self._steps.items()}}
        if self._error is not None:
            return {**state, "status": "failed", "error": self._error}
        if self._spec.output in self._results:
            return {**state, "status": "succeeded", "output": self._results[self._spec.output]}
        return {**state, "status": "running" if self._inputs or self._inputs_closed else "pending"}

    def result(self, timeout: float = 600) -> Any:
        state = self.status()
        if state["status"] == "succeeded":
            return state["output"]
        if state["status"] == "failed":
            raise RemoteError(str(state["error"]["message"]), status=500, error_type=state["error"]["type"],
                              request_id=self.id, detail=state)
        missing = sorted(set(self._spec.inputs) - set(self._inputs))
        required = [name for name in missing if name not in self._spec.optional]
        if required:
            note = f"inputs {', '.join(missing)} were never put"
        else:  # only optional ones are missing: closing the inputs is what the run waits for
            note = (f"optional inputs {', '.join(missing)} were never put and its inputs were not closed; call "
                    f"run.close_inputs() to finish without them")
        raise Timeout(f"run {self.id} of {self.flow} cannot finish: {note}", status=504)


class LocalPlatform:
    """What ``local()`` yields: the functions and flows declared in this process, callable directly too."""

    def __init__(self) -> None:
        self.transport = _LocalTransport(self)
        self._functions: dict[str, _Function] = {}
        self.runs: dict[str, LocalRun] = {}

    def function(self, name: str) -> _Function:
        if name not in self._functions:
            declared = registered().get(name)
            if declared is None:
                known = ", ".join(sorted(registered())) or "none (import the modules that declare them first)"
                raise NotFound(f"no function named {name!r} is declared in this process; declared: {known}", status=404)
            self._functions[name] = _Function(*declared)
        return self._functions[name]

    def call(self, name: str, arguments: dict[str, Any]) -> Any:
        function = self.function(name)
        return self.transport.result(self.transport.submit(name, arguments), function.spec.timeout_s)

    def start(self, flow: str) -> LocalRun:
        declared = declared_flows().get(flow)
        if declared is None:
            known = ", ".join(sorted(declared_flows())) or "none"
            raise NotFound(f"no flow named {flow!r} is declared in this process; declared: {known}", status=404)
        run = LocalRun(self, declared.spec())
        self.runs[run.id] = run
        return run

    def run(self, flow: str, run_id: str) -> LocalRun:
        found = self.runs.get(run_id)
        if found is None or found.flow != flow:
            raise NotFound(f"no run {run_id!r} of flow {flow!r}", status=404)
        return found


@contextmanager
def local() -> Iterator[LocalPlatform]:
    """Route fn's calls and flow runs to what this process declares, until the block ends."""
    platform = LocalPlatform()
    previous = _transport.current()
    _transport.install(platform.transport)
    flows.install_local(platform)
    try:
        yield platform
    finally:
        flows.install_local(None)
        _transport.install(previous)
        platform.transport.close()
