"""The generic replica: one class serves every function.

A replica fetches its bundle (verifying its hash) into a node-local cache, imports the entry
point, runs ``setup()`` for models, and then serves calls from HTTP (validated against the type
hints, errors as JSON with a request id) and from handles (Python objects, no HTTP).
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import os
import sys
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fn import ClientError, FunctionSpec, Timeout
from fn._platform import install_artifacts, install_state, install_transport, shadow_call, status_error
from fnplatform.bundles.packaging import MANIFEST_NAME, Manifest
from fnplatform.storage.blobs import StoreConfig, fetch_artifact, fetch_bundle
from fnplatform.storage.cache import CachePolicy

from . import logs as replica_logs
from . import ray_compat, streaming, tracing
from . import secrets as replica_secrets
from . import versions as routing
from .auth import KeyCache
from .coldstart import ARRIVED_HEADER, HEADER, LOG_MARK, Breakdown, ColdStarts, ReplicaStart
from .forwarding import Forwarder
from .handles import HandleTransport
from .http import (
    client_error_response,
    error_response,
    not_found_response,
    read_arguments,
    rebuild_request,
    result_response,
)
from .hub import lazy_hub
from .metrics import RECORDER, Recorder, ship_now, ship_to_hub
from .overrun import OverrunCalls, Ticket
from .shadow import ShadowCopies
from .signature import Signature
from .state_client import StateClient


class SetupFailed(Exception):
    """Importing the entry point or running setup() failed; the message shows the user's frames."""


@dataclass
class Loaded:
    target: Callable[..., Any]
    signature: Signature
    is_async: bool
    is_stream: bool = False  # a generator (sync or async): its chunks are streamed (serving.streaming)


def _user_traceback(exc: BaseException, bundle_dir: Path) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(str(bundle_dir))]
    lines = [f'  File "{Path(f.filename).relative_to(bundle_dir)}", line {f.lineno}, in {f.name}' for f in frames]
    return "\n".join(lines)


def cpu_threads(spec: FunctionSpec) -> int:
    return max(1, int(spec.cpus))


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "FN_CPU_THREADS")


def _limit_threads(threads: int) -> None:
    # Libraries take every core by default; several replicas on one node would then thrash. The variables
    # reach libraries loaded from now on; threadpoolctl resizes the BLAS/OpenMP pools already loaded.
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def cap_onnxruntime_threads(threads: int) -> None:
    """Make onnxruntime sessions default to *threads* intra-op threads (it ignores OMP_NUM_THREADS).

    Installed before user code is imported: patches the module when it is first imported, so a
    session created in ``setup()`` already has the cap; an explicit user setting wins.
    """
    if "onnxruntime" in sys.modules:
        _patch_onnxruntime(sys.modules["onnxruntime"], threads)
        return
    sys.meta_path.insert(0, _PatchOnImport("onnxruntime", lambda module: _patch_onnxruntime(module, threads)))


class _PatchOnImport(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, patch: Callable[[Any], None]) -> None:
        self.name = name
        self.patch = patch

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original = loader.exec_module
        patch = self.patch

        def exec_module(module: Any) -> None:
            original(module)
            patch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _patch_onnxruntime(module: Any, threads: int) -> None:
    session_class = module.InferenceSession
    if getattr(session_class, "_fn_threads_capped", False):
        return
    original_init = session_class.__init__

    def __init__(self: Any, path_or_bytes: Any, sess_options: Any = None, *args: Any, **kwargs: Any) -> None:
        if sess_options is None:
            sess_options = module.SessionOptions()
        if sess_options.intra_op_num_threads == 0:
            sess_options.intra_op_num_threads = threads
        if sess_options.inter_op_num_threads == 0:
            sess_options.inter_op_num_threads = 1
        original_init(self, path_or_bytes, sess_options, *args, **kwargs)

    session_class.__init__ = __init__
    session_class._fn_threads_capped = True


def load_target(spec: FunctionSpec, bundle_sha256: str, store: StoreConfig, cache_dir: str,
                cache_policy: CachePolicy | None = None, start: ReplicaStart | None = None) -> Loaded:
    """Fetch, import and set up the function; raises SetupFailed with the user's error. *start* gets the
    moments its bundle was fetched, its entry point imported and its model set up (serving.coldstart)."""
    target = load_entry(spec, bundle_sha256, store, cache_dir, cache_policy, start)
    signature = Signature(target, spec.name, batched=spec.max_batch_size > 1)
    return Loaded(target=target, signature=signature, is_async=inspect.iscoroutinefunction(target),
                  is_stream=streaming.is_stream(target))


def load_entry(spec: FunctionSpec, bundle_sha256: str, store: StoreConfig, cache_dir: str,
               cache_policy: CachePolicy | None = None, start: ReplicaStart | None = None) -> Any:
    """What serves calls: the function, a model instance's ``__call__`` after ``setup()``, or the ASGI app a web
    app's builder returned (``@fn.asgi``)."""
    start = start or ReplicaStart()
    _limit_threads(cpu_threads(spec))
    bundle_dir = fetch_bundle(store, bundle_sha256, cache_dir, cache_policy)
    if spec.artifacts:
        manifest = Manifest.from_json((bundle_dir / MANIFEST_NAME).read_bytes())
        install_artifacts({name: fetch_artifact(store, ref.sha256, cache_dir, cache_policy)
                           for name, ref in manifest.artifacts_of(spec).items()})
    start.stamp("fetched")
    cap_onnxruntime_threads(cpu_threads(spec))
    if str(bundle_dir) not in sys.path:
        sys.path.insert(0, str(bundle_dir))
    module_name, _, qualname = spec.entrypoint.partition(":")
    stage = f"importing {module_name}"
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        start.stamp("imported")
        if spec.kind == "model":
            stage = f"creating {qualname}()"
            instance = obj()
            setup = getattr(instance, "setup", None)
            if setup is not None:
                stage = "setup()"
                result = setup()
                if inspect.isawaitable(result):
                    asyncio.run(_await(result))
            target = instance.__call__
        elif spec.kind == "asgi":
            stage = f"building the app with {qualname}()"
            target = obj()
            if inspect.isawaitable(target):
                target = asyncio.run(_await(target))
            if not callable(target):
                raise TypeError(f"{qualname}() returned a {type(target).__name__}, not an ASGI app; return the "
                                f"FastAPI or Starlette app it builds")
        else:
            target = obj
    except BaseException as exc:  # noqa: BLE001 - any failure of user code becomes a readable deploy error
        frames = _user_traceback(exc, bundle_dir)
        raise SetupFailed(f"{stage} raised {type(exc).__name__}: {exc}" + (f"\n{frames}" if frames else "")) from None
    start.stamp("set_up")
    _limit_threads(cpu_threads(spec))
    return target


async def _await(awaitable: Any) -> Any:
    return await awaitable


def validate_version(spec_json: str, bundle_sha256: str, store: dict[str, Any], cache_dir: str,
                     cache_policy: dict[str, Any] | None = None) -> str | None:
    """Body of the deploy-time check actor: None when the function loads, else the error."""
    try:
        spec = FunctionSpec.model_validate_json(spec_json)
        replica_secrets.install(spec, lazy_hub())  # setup() in the check sees them as a replica would
        load = load_entry if spec.kind == "asgi" else load_target
        load(spec, bundle_sha256, StoreConfig(**store), cache_dir, CachePolicy.from_dict(cache_policy))
    except SetupFailed as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - the deploy check reports every failure as text
        return f"{type(exc).__name__}: {exc}"
    return None


def validate_versions(spec_jsons: list[str], bundle_sha256: str, store: dict[str, Any], cache_dir: str,
                      cache_policy: dict[str, Any] | None = None) -> list[str | None]:
    """The deploy-time check of several functions of one bundle in one process (the deployer groups only
    functions with the same runtime env, pool and secrets): the bundle is fetched and imported once."""
    return [validate_version(spec_json, bundle_sha256, store, cache_dir, cache_policy) for spec_json in spec_jsons]


@dataclass
class Boot:
    """A replica process's first moments, shared by functions and web apps: its log shipper, handle transport and
    secrets in place before the user's module is imported."""

    spec: FunctionSpec
    hub: Any
    shipper: replica_logs.LogShipper
    start: ReplicaStart
    started: float

    @classmethod
    def of(cls, spec_json: str) -> Boot:
        start = ReplicaStart()
        spec = FunctionSpec.model_validate_json(spec_json)
        hub = lazy_hub()
        install_transport(HandleTransport())  # fn.call inside user code goes through Serve handles
        install_state(StateClient())  # fn.Dict / fn.Queue: the state server directly
        shipper = replica_logs.LogShipper(spec.name, uuid.uuid4().hex[:8], hub)
        replica_logs.install(shipper)
        started = time.perf_counter()
        replica_secrets.install(spec, hub)  # before the user's module is imported
        return cls(spec, hub, shipper, start, started)

    def ready(self, bundle_sha256: str) -> ColdStarts:
        """The replica serves from now: its cold start counted and shipped, and timed phase by phase."""
        RECORDER.cold_start(self.spec.name)
        ship_to_hub(self.hub)
        self.shipper.line("INFO", f"replica ready: {self.spec.name} bundle {bundle_sha256[:12]} loaded in "
                                  f"{replica_logs.elapsed_ms(self.started):.0f} ms (pid {os.getpid()})")
        cold = ColdStarts(self.spec.name, self.start, RECORDER, self.shipper)
        self.start.stamp("ready")
        cold.learn_schedule(ray_compat.replica_scheduled_at)
        return cold


class FunctionReplica(streaming.StreamingMethods):
    """The Serve deployment class behind every function."""

    def __init__(self, spec_json: str, bundle_sha256: str, store: dict[str, Any], cache_dir: str,
                 cache_policy: dict[str, Any] | None = None, version: int = 0) -> None:
        up = Boot.of(spec_json)
        loaded = load_target(up.spec, bundle_sha256, StoreConfig(**store), cache_dir,
                             CachePolicy.from_dict(cache_policy), up.start)
        # the process's one table: fn.call's handles in this process route by it too
        self._serve(up.spec, loaded, up.hub, up.shipper, RECORDER, version, routing.table(up.hub))
        self._cold = up.ready(bundle_sha256)

    @classmethod
    def around(cls, spec: FunctionSpec, loaded: Loaded, hub: Any, shipper: replica_logs.LogShipper, *,
               recorder: Recorder | None = None, version: int = 0) -> FunctionReplica:
        """A replica serving an already-loaded function, leaving the process as it is (no log capture, no
        transport, no thread caps, its own metrics not shipped): the seam the unit tests use."""
        replica = cls.__new__(cls)
        replica._serve(spec, loaded, hub, shipper, recorder or Recorder(), version, routing.TrafficTable(hub))
        start = ReplicaStart()
        start.stamp("ready")
        replica._cold = ColdStarts(spec.name, start, replica.metrics, shipper)
        return replica

    def _serve(self, spec: FunctionSpec, loaded: Loaded, hub: Any, shipper: replica_logs.LogShipper,
               recorder: Recorder, version: int, traffic: routing.TrafficTable) -> None:
        self.spec = spec
        self.metrics = recorder
        self._version = str(version)  # the registry's version number: a label of every call it counts
        self._number = version
        self._traffic = traffic
        self._handles = HandleTransport()
        self._sample = tracing.configured_ratio()  # FN_TRACE_SAMPLE: the share of new traces recorded
        self.replica_id = shipper.replica_id
        self.loaded = loaded
        self._shipper = shipper
        self._keys = KeyCache(hub)
        workers = min(spec.max_concurrency, 64)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fn-call")
        self._overrun = OverrunCalls(workers)
        self._shadows = ShadowCopies(spec, version, self._handles, shipper, self._pool)
        self._forwarder = Forwarder(spec, version, self._traffic, self._handles, self._keys, recorder)
        self._batched: Callable[[dict[str, Any]], Any] | None = None
        if spec.max_batch_size > 1:
            from ray import serve

            self._batched = serve.batch(max_batch_size=spec.max_batch_size,
                                        batch_wait_timeout_s=spec.max_wait_ms / 1000)(self._run_batch)

    async def _run_batch(self, calls: list[dict[str, Any]]) -> list[Any]:
        """Serve's batcher hands over the queued calls: one call of the function with a list per parameter."""
        columns = {name: [call[name] for call in calls] for name in calls[0]}
        started = time.perf_counter()
        if self.loaded.is_async:
            results = await self.loaded.target(**columns)
        else:
            context = contextvars.copy_context()
            results = await asyncio.get_running_loop().run_in_executor(
                self._pool, lambda: context.run(self.loaded.target, **columns))
        if not isinstance(results, list | tuple) or len(results) != len(calls):
            got = f"{len(results)} results" if isinstance(results, list | tuple) else f"a {type(results).__name__}"
            raise TypeError(f"{self.spec.name} is batched (max_batch_size={self.spec.max_batch_size}): it must return "
                            f"a list with one result per input; it got {len(calls)} inputs and returned {got}")
        self._shipper.line("INFO", f"batch of {len(calls)} in {replica_logs.elapsed_ms(started):.1f} ms")
        return list(results)

    async def _invoke(self, arguments: dict[str, Any], kind: str = "internal") -> Any:
        """Run the function; on the active version's replicas, a share of calls is also copied to the shadow
        version once answered (serving.shadow)."""
        entry = await self._traffic.aget(self.spec.name)
        shadow = entry.shadowed() if entry is not None and entry.active == self._number else None
        if shadow is None:
            return await self._traced(arguments, kind)
        started = time.perf_counter()
        copied = dict(arguments)  # before the function sees (and might change) them
        try:
            result = await self._traced(arguments, kind)
        except Exception as exc:
            self._shadows.send(shadow, copied, None, exc, (time.perf_counter() - started) * 1000,
                               replica_logs.request_id_var.get())
            raise
        self._shadows.send(shadow, copied, result, None, (time.perf_counter() - started) * 1000,
                           replica_logs.request_id_var.get())
        return result

    async def _traced(self, arguments: dict[str, Any], kind: str) -> Any:
        """Run the function, in a span of the request's trace (its parent: the edge's span, or the caller's
        span across a handle hop); a handle call the function makes hangs from this span."""
        trace = tracing.current.get()
        if trace is None:
            return await self._run(arguments)
        span = trace.begin(self.spec.name, kind=kind)  # where it ran is the source of its line: no attribute repeats it
        trace.parent = span.span
        try:
            return await self._run(arguments)
        except BaseException as exc:
            span.error = tracing.failed(exc)
            raise
        finally:
            span.end = time.time()

    async def _run(self, arguments: dict[str, Any]) -> Any:
        values = self.loaded.signature.validate(arguments)
        if self.loaded.is_stream:  # a plain call of a streaming function: its chunks as one list
            return [chunk async for chunk in self._chunks(values)]
        ticket: Ticket | None = None
        if self._batched is not None:
            work = self._batched(values)
        elif self.loaded.is_async:
            work = self.loaded.target(**values)
        else:
            context = contextvars.copy_context()
            run, ticket = self._overrun.track(lambda: context.run(self.loaded.target, **values))
            work = asyncio.get_running_loop().run_in_executor(self._pool, run)
        try:
            return await asyncio.wait_for(work, timeout=self.spec.timeout_s)
        except TimeoutError:
            if ticket is not None:  # its thread cannot be stopped: it holds a worker until the function returns
                self._overrun.abandon(ticket)
                self._shipper.line("WARNING", f"{self.spec.name} ran past timeout_s: {self._overrun.describe()}")
            raise Timeout(f"{self.spec.name} ran past its timeout_s of {self.spec.timeout_s:g} s", status=504) from None

    async def __call__(self, request: Request, request_id: str | None = None) -> Response:
        parent = tracing.parse_traceparent(request.headers.get(tracing.HEADER))
        # A caller's traceparent names the trace, and the trace id is the request id (one id finds everything).
        request_id = parent.trace if parent else tracing.plain_request_id(
            request_id or ray_compat.request_id(request.headers))
        replica_logs.request_id_var.set(request_id)
        try:
            target = await self._forwarder.route(request)
        except ClientError as exc:
            return client_error_response(exc, request_id)
        if target is not None:  # another version answers, and counts the call
            return await self._forwarder.http(request, request_id, target)
        routed = time.time()
        cold = await self._cold.of_call(request.headers.get(ARRIVED_HEADER))
        trace = tracing.trace_for(request_id, parent, self._sample)
        edge = trace.begin(f"{request.method} /{self.spec.name}", {"fn.version": self._version},
                           kind="server", start=routed - (cold.total if cold is not None else 0.0))
        trace.parent = edge.span
        if cold is not None:
            _cold_spans(trace, cold, edge.start)
        token = tracing.current.set(trace)
        try:
            with self.metrics.call(self.spec.name, self._version) as code:
                response = await self._answer(request, request_id, cold)
                code[0] = response.status_code
        finally:
            tracing.current.reset(token)
            edge.end = time.time()
        edge.attrs["http.status_code"] = response.status_code
        edge.error = response.status_code >= 500
        response.headers[tracing.HEADER] = tracing.traceparent(trace.trace_id, edge.span, trace.sampled)
        response.headers[routing.VERSION_HEADER] = self._version  # which version answered
        self._ship(trace)
        return response

    def _ship(self, trace: tracing.Trace) -> None:
        if trace.sampled:
            self._shipper.line(tracing.LEVEL, trace.line_text(), trace.trace_id)

    async def _answer(self, request: Request, request_id: str, cold: Breakdown | None = None) -> Response:
        if self.spec.internal:  # the last line: the deployer gives it no route and the gateway no entry
            return not_found_response(request.url.path, request_id)
        started = time.perf_counter()
        try:
            if not self.spec.public:
                (await self._keys.authenticate(request.headers)).require_function(self.spec.name)
            if request.method not in {"GET", "POST", "PUT"}:
                raise ClientError(f"method {request.method} is not allowed; use POST", status=405)
            arguments = await read_arguments(request, self.loaded.signature.bytes_params)
            if self.loaded.is_stream:
                response = await self._stream_response(request, arguments, request_id, started)
            else:
                response = result_response(await self._invoke(arguments), request_id)
        except ClientError as exc:
            response = client_error_response(exc, request_id)
        except Exception as exc:  # noqa: BLE001 - the user's exception becomes a 500, the replica keeps serving
            self._shipper.line("ERROR", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}", request_id)
            response = error_response(500, type(exc).__name__, str(exc), request_id)
        waited = ""
        if cold is not None:  # this call waited for the replica to start: why, phase by phase
            response.headers[HEADER] = cold.header()
            waited = f", {LOG_MARK} {cold.header()}"
        self._shipper.line("INFO", f"{request.method} /{self.spec.name} -> {response.status_code} "
                                   f"in {replica_logs.elapsed_ms(started):.1f} ms{waited}", request_id)
        return response

    async def http(self, request_id: str, scope: dict[str, Any], body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """An HTTP request the catch-all gateway took for this function (the ingress did not know its route
        yet): answered exactly as on the function's own route, key check included (an internal function: 404)."""
        response = await self(rebuild_request(scope, body), request_id)
        frames = getattr(response, "body_iterator", None)
        if isinstance(frames, AsyncIterator):  # a stream: passed on whole
            return response.status_code, list(response.raw_headers), b"".join([bytes(part) async for part in frames])
        body_bytes = getattr(response, "body", None)
        if not isinstance(body_bytes, bytes):
            response = error_response(500, "NotForwardable", f"{self.spec.name} returned a {type(response).__name__}, "
                                      f"which cannot be forwarded; call /{self.spec.name} again", request_id)
            body_bytes = bytes(response.body)
        return response.status_code, list(response.raw_headers), body_bytes

    async def call(self, hop: str | None, /, **arguments: Any) -> Any:
        """The handle path: Python objects in and out, no HTTP; errors as fn errors that pickle. *hop* is the
        caller's request id, with the caller's span when it has one (``tracing.hop_token``)."""
        pinned = arguments.pop(routing.VERSION_ARGUMENT, None)
        forwarded = bool(arguments.pop(routing.FORWARDED_ARGUMENT, False))
        shadow = bool(arguments.pop(routing.SHADOW_ARGUMENT, False))
        if shadow:
            shadow_call.set(True)  # fn.is_shadow() in the function, and on the calls it makes
        if pinned is not None and pinned != self._number:  # the caller's table was a moment old, or the version idle
            return await self._forwarder.call(hop, arguments, int(pinned), forwarded, shadow)
        request_id, parent = tracing.from_hop(hop)
        rid = request_id or tracing.new_trace_id()
        replica_logs.request_id_var.set(rid)
        trace = tracing.trace_for(rid, parent, self._sample)
        token = tracing.current.set(trace)
        try:
            with self.metrics.call(self.spec.name, self._version) as code:
                result = await self._call(rid, arguments, code)
                code[0] = 200
        finally:
            tracing.current.reset(token)
            self._ship(trace)
        return result

    async def _call(self, rid: str, arguments: dict[str, Any], code: list[int]) -> Any:
        started = time.perf_counter()
        for key, value in arguments.items():
            if _is_object_ref(value):  # large values (flow uploads) travel by reference
                arguments[key] = await value
        readers = self._readers(arguments)  # stream arguments: read from their producer while it produces
        try:
            result = await self._invoke(arguments, kind="server")
        except ClientError as exc:
            code[0] = exc.status or 400  # the status it travels with (below)
            self._shipper.line("INFO", f"call {self.spec.name} -> {exc.status} in {replica_logs.elapsed_ms(started):.1f} ms")
            if type(exc).__module__.split(".")[0] != "fn":
                # A user's subclass would not unpickle where the bundle is not importable (the route gateway):
                # it travels as the fn error for its status, keeping its type name, message and detail.
                raise status_error(exc.status or 400, exc.message, request_id=exc.request_id or rid,
                                   error_type=exc.error_type or type(exc).__name__, detail=exc.detail) from None
            exc.request_id = exc.request_id or rid
            raise
        except Exception as exc:  # noqa: BLE001 - user exceptions may not unpickle in the caller: send their gist
            raise self._gist(exc, rid) from None
        finally:
            for reader in readers:
                reader.close()
        self._shipper.line("INFO", f"call {self.spec.name} -> ok in {replica_logs.elapsed_ms(started):.1f} ms")
        return result

    def check_health(self) -> None:
        """Serve calls this every health_check_period_s and replaces the replica after 3 raises in a row."""
        self._overrun.check(self.spec.name)

    async def warm(self) -> bool:
        """A no-op request: makes Serve scale the function up from zero (flows prewarm later steps)."""
        return True

    def __del__(self) -> None:
        shipper = getattr(self, "_shipper", None)
        if shipper is not None:
            shipper.stop()
        ship_now()  # the process may be killed before its exit handlers run


def _cold_spans(trace: tracing.Trace, cold: Breakdown, start: float) -> None:
    """The wait for a replica as a span of the request, with a child span per phase, end to end."""
    span = trace.begin("cold start", {"fn.cold_start_s": round(cold.total, 3)}, start=start)
    at = start
    for phase, seconds in cold.phases.items():
        trace.begin(phase, parent=span.span, start=at).end = at + seconds
        at += seconds
    span.end = at


def _is_object_ref(value: Any) -> bool:
    return type(value).__name__ == "ObjectRef" and type(value).__module__.startswith("ray")
