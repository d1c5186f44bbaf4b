"""Function-to-function calls inside the cluster: Serve deployment handles, no HTTP hop.

Handles are resolved by name at run time and cached. The caller's request id rides along as the
first argument of the callee's ``call`` method, with the span of the hop (``tracing.hop_token``), so one
id follows a request through every hop and the callee's span hangs under the caller's.
Errors come back as the ``fn`` error the callee raised (type, message and request id kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fn import FnError, NotFound, Pending, RemoteError, Stream, Timeout, Unavailable
from fn._platform import shadow_call

from . import tracing
from . import versions as routing
from .logs import request_id_var
from .streams import passable

BUSY_TYPE = "AtCapacity"  # the error type of a call shed by the callee's back-pressure (jobs wait and try again)
_SPAN_ATTRIBUTE = "_fn_span"  # the caller's span of a hop, kept on Serve's response object until it is awaited


def _unwrap(value: Any) -> Any:
    # A pending result is handed on as Serve's own response object: Serve resolves it in the
    # callee, so the caller never waits for (or copies) the intermediate value. A stream not yet read is
    # handed on as what produces it: the callee starts it and reads it (serving.streams).
    if isinstance(value, Pending):
        return value.inner
    if isinstance(value, Stream):
        if value.started:
            raise RuntimeError(f"a stream of {value.source.function} that is being read cannot be passed on")
        return value.source
    return passable(value)


def translate_error(exc: BaseException, name: str) -> BaseException:
    cause = getattr(exc, "cause", None) or exc
    if isinstance(cause, FnError):  # the callee's own error (user subclasses too), kept as raised
        return cause
    if type(exc).__name__ in {"TimeoutError", "GetTimeoutError"}:
        return Timeout(f"{name} did not answer in time", status=504, request_id=request_id_var.get())
    if type(cause).__name__ == "BackPressureError":  # the callee's queue (its max_queued) is full: shed, do not wait
        return Unavailable(f"{name} is at capacity: its queue of waiting calls is full (max_queued); retry shortly",
                           status=503, request_id=request_id_var.get(), retry_after=1, error_type=BUSY_TYPE)
    return RemoteError(f"calling {name} failed: {cause}", status=500, error_type=type(cause).__name__,
                       request_id=request_id_var.get())


def _cancel(pending: Any) -> None:
    """Cancel a Serve call nobody waits for any more (awaiting it no longer does not stop it)."""
    cancel = getattr(pending, "cancel", None)
    if cancel is not None:
        with contextlib.suppress(Exception):
            cancel()


class NotDeployed(NotFound):
    """Serve runs no application of that name: a wrong name, or a registered function not (re)deployed yet."""


class HandleTransport:
    def __init__(self) -> None:
        self._handles: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def _handle(self, app: str, method: str = "call") -> Any:
        """The handle of application *app*: ``<name>`` (the active version) or ``<name>@v<N>``."""
        with self._lock:
            handle = self._handles.get((app, method))
        if handle is not None:
            return handle
        from ray import serve

        name = app.partition("@")[0]
        if app not in serve.status().applications:
            raise NotDeployed(f"no function named {name!r} is deployed; list functions with 'fnctl ls'", status=404,
                              request_id=request_id_var.get())
        handle = serve.get_deployment_handle(name, app_name=app).options(method_name=method, stream=method == "stream")
        with self._lock:
            self._handles[(app, method)] = handle
        return handle

    def submit(self, name: str, kwargs: dict[str, Any], version: int | None = None, method: str = "call") -> Any:
        arguments = {key: _unwrap(value) for key, value in kwargs.items()}
        if shadow_call.get():  # a shadow's own calls are shadow calls too (fn.is_shadow() in the callee)
            arguments[routing.SHADOW_ARGUMENT] = True
        app, _ = routing.choose(name, version, arguments)
        handle = self._handle(app, method)
        trace = tracing.current.get()
        span = trace.begin(f"call {name}", kind="client") if trace is not None else None
        pending = handle.remote(tracing.hop_token(request_id_var.get(), trace, span), **arguments)
        if span is not None:
            try:
                setattr(pending, _SPAN_ATTRIBUTE, span)
            except AttributeError:  # a response type without a __dict__: the hop's span ends at once
                span.end = time.time()
        return pending

    def stream(self, name: str, kwargs: dict[str, Any], version: int | None = None) -> Iterator[Any]:
        chunks = self.submit(name, kwargs, version, method="stream")
        done = False
        try:
            yield from chunks
            done = True
        except Exception as exc:  # noqa: BLE001 - every failure becomes the fn error it stands for
            done = True
            raise translate_error(exc, name) from None
        finally:
            if not done:  # the caller stopped reading: the producer stops too
                _cancel(chunks)
            self._ended(chunks, False)

    async def astream(self, name: str, kwargs: dict[str, Any], version: int | None = None) -> AsyncIterator[Any]:
        chunks = self.submit(name, kwargs, version, method="stream")
        done = False
        try:
            async for chunk in chunks:
                yield chunk
            done = True
        except Exception as exc:  # noqa: BLE001 - every failure becomes the fn error it stands for
            done = True
            raise translate_error(exc, name) from None
        finally:
            if not done:
                _cancel(chunks)
            self._ended(chunks, False)

    def submit_http(self, app: str, scope: dict[str, Any], body: bytes) -> Any:
        """An HTTP request for the function's own route, answered by its replica's ``http`` method."""
        return self._handle(app, "http").remote(request_id_var.get(), scope, body)

    def submit_to(self, app: str, hop: str | None, arguments: dict[str, Any]) -> Any:
        """A handle call passed on as it came (its hop token kept) to application *app*."""
        return self._handle(app).remote(hop, **arguments)

    @staticmethod
    def _ended(pending: Any, failed: bool) -> None:
        span = getattr(pending, _SPAN_ATTRIBUTE, None)
        if isinstance(span, tracing.Span) and not span.end:
            span.end = time.time()
            span.error = failed

    def result(self, pending: Any, timeout: float) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("fn.call() blocks; inside an async function use 'await fn.acall(...)'")
        try:
            result = pending.result(timeout_s=timeout)
        except Exception as exc:  # noqa: BLE001 - every failure becomes the fn error it stands for
            error = translate_error(exc, str(getattr(pending, "deployment_name", "function")))
            self._ended(pending, tracing.failed(error))
            raise error from None
        self._ended(pending, False)
        return result

    async def aresult(self, pending: Any, timeout: float) -> Any:
        try:
            result = await asyncio.wait_for(pending, timeout=timeout)
        except asyncio.CancelledError:  # the caller stopped waiting (a job cancelled): the callee stops too
            _cancel(pending)
            raise
        except TimeoutError:
            _cancel(pending)
            self._ended(pending, True)
            raise Timeout(f"no answer within {timeout:g} s", status=504, request_id=request_id_var.get()) from None
        except Exception as exc:  # noqa: BLE001 - every failure becomes the fn error it stands for
            error = translate_error(exc, "function")
            self._ended(pending, tracing.failed(error))
            raise error from None
        self._ended(pending, False)
        return result
