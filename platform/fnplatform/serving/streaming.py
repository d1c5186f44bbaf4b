"""Streaming results: a generator function's chunks, sent as they are produced.

Over HTTP a stream is Server-Sent Events when the caller asks for them (``Accept: text/event-stream``: one
``data:`` event per chunk, then ``event: end``, or ``event: error`` with the error's JSON), JSON lines otherwise
(one JSON value per line; a failure after the first chunk ends the stream with a line ``{"error": {...}}``, since
the status has been sent by then). Handle callers get the chunks as Python objects (``fn.stream`` in a function).
The first chunk is awaited before the answer starts, so an error before it is an ordinary error answer with its
status; the time to the first chunk is that chunk's time, not the whole stream's.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import time
import traceback
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Executor
from typing import Any

import pydantic_core
from starlette.requests import Request
from starlette.responses import Response

from fn import ClientError, FunctionSpec, RemoteError, Timeout
from fn._platform import StreamSource, status_error

from . import logs, streams, tracing
from . import versions as routing

SSE = "text/event-stream"
JSON_LINES = "application/x-ndjson"
_END = object()
NOTHING = object()  # a stream that produced no chunk at all


def is_stream(target: Callable[..., Any]) -> bool:
    return inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target)


def wants_events(headers: Mapping[str, str]) -> bool:
    return SSE in headers.get("accept", "")


def encode(chunk: Any) -> bytes:
    return pydantic_core.to_json(chunk, bytes_mode="base64")


async def chunks(target: Callable[..., Any], values: dict[str, Any], pool: Executor, name: str,
                 timeout_s: float) -> AsyncIterator[Any]:
    """The function's chunks; the whole stream must end within *timeout_s*. A sync generator advances on the
    replica's worker threads (each ``next`` one call), so its work never blocks the event loop."""
    deadline = time.monotonic() + timeout_s
    loop = asyncio.get_running_loop()

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout(f"{name} streamed past its timeout_s of {timeout_s:g} s", status=504)
        return remaining

    if inspect.isasyncgenfunction(target):
        agen = target(**values)
        try:
            while True:
                try:
                    yield await asyncio.wait_for(agen.__anext__(), left())
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise Timeout(f"{name} streamed past its timeout_s of {timeout_s:g} s", status=504) from None
        finally:
            await agen.aclose()
    context = contextvars.copy_context()
    gen = context.run(target, **values)
    try:
        while True:
            try:
                item = await asyncio.wait_for(loop.run_in_executor(pool, lambda: context.run(next, gen, _END)), left())
            except TimeoutError:
                raise Timeout(f"{name} streamed past its timeout_s of {timeout_s:g} s", status=504) from None
            if item is _END:
                return
            yield item
    finally:
        with contextlib.suppress(ValueError):  # still running on its thread (a timeout): it stops when next() returns
            gen.close()


def error_body(exc: BaseException, request_id: str) -> dict[str, Any]:
    if isinstance(exc, ClientError):
        return {"type": exc.error_type or type(exc).__name__, "message": exc.message, "status": exc.status,
                "request_id": request_id}
    return {"type": type(exc).__name__, "message": str(exc), "status": 500, "request_id": request_id}


async def http_frames(first: Any, rest: AsyncIterator[Any], events: bool, request_id: str,
                      on_error: Callable[[BaseException], None], on_end: Callable[[int], None]) -> AsyncIterator[bytes]:
    """The answer's body: the first chunk (already produced; NOTHING for an empty stream), then the rest as they come."""
    count = 0
    if first is not NOTHING:
        count = 1
        yield _frame(first, events)
    try:
        async for chunk in rest:
            count += 1
            yield _frame(chunk, events)
    except Exception as exc:  # noqa: BLE001 - the status is sent: the error travels in the stream
        on_error(exc)
        error = pydantic_core.to_json(error_body(exc, request_id))
        yield b"event: error\ndata: " + error + b"\n\n" if events else b'{"error": ' + error + b"}\n"
        return
    finally:
        on_end(count)
    if events:
        yield b"event: end\ndata: {}\n\n"


def _frame(chunk: Any, events: bool) -> bytes:
    return b"data: " + encode(chunk) + b"\n\n" if events else encode(chunk) + b"\n"


STREAM_ID_ARGUMENT = "__fn_stream_id"  # a pump call's stream id, beside the producer's own arguments
_ROUTING_ARGUMENTS = (routing.VERSION_ARGUMENT, routing.FORWARDED_ARGUMENT, routing.SHADOW_ARGUMENT)


class StreamingMethods:
    """The replica's streaming side (``FunctionReplica`` inherits it): its HTTP stream, the handle methods ``stream``
    (another function iterates its chunks) and ``pump`` (its chunks into the broker, for a function reading them as
    an argument), and the readers of the stream arguments it receives."""

    spec: FunctionSpec
    loaded: Any
    metrics: Any
    _pool: Executor
    _shipper: Any
    _version: str
    _handles: Any

    def _gist(self, exc: Exception, rid: str) -> RemoteError:
        """A user's exception, logged with its traceback, as the fn error a handle caller can unpickle."""
        self._shipper.line("ERROR", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        return RemoteError(str(exc), status=500, error_type=type(exc).__name__, request_id=rid)

    def _chunks(self, values: dict[str, Any]) -> AsyncIterator[Any]:
        return chunks(self.loaded.target, values, self._pool, self.spec.name, self.spec.timeout_s)

    def _readers(self, arguments: dict[str, Any]) -> list[streams.StreamReader]:
        """Stream arguments (their sources) become readers that start their producer when first read."""
        readers = []
        for key, value in arguments.items():
            if isinstance(value, StreamSource):
                arguments[key] = reader = streams.StreamReader(value, self._start_pump)
                readers.append(reader)
        return readers

    def _start_pump(self, source: StreamSource, sid: str) -> Any:
        return self._handles.submit(source.function, {**source.kwargs, STREAM_ID_ARGUMENT: sid}, source.version, method="pump")

    async def _stream_response(self, request: Request, arguments: dict[str, Any], request_id: str,
                               started: float) -> Response:
        """The chunks as they come (SSE or JSON lines); an error before the first chunk is an ordinary error answer."""
        from starlette.responses import StreamingResponse

        rest = self._chunks(self.loaded.signature.validate(arguments))
        try:
            first = await anext(rest)
        except StopAsyncIteration:
            first = NOTHING
        events = wants_events(request.headers)

        def failed(exc: BaseException) -> None:
            self._shipper.line("ERROR", f"{self.spec.name} failed mid-stream: {type(exc).__name__}: {exc}", request_id)

        def ended(count: int) -> None:
            self._shipper.line("INFO", f"{request.method} /{self.spec.name} streamed {count} chunk(s) in "
                                       f"{logs.elapsed_ms(started):.1f} ms", request_id)

        return StreamingResponse(http_frames(first, rest, events, request_id, failed, ended),
                                 media_type=SSE if events else JSON_LINES,
                                 headers={"x-request-id": request_id, "cache-control": "no-cache", "x-accel-buffering": "no"})

    def _handle_call(self, hop: str | None, arguments: dict[str, Any]) -> str:
        request_id, _ = tracing.from_hop(hop)
        rid = request_id or tracing.new_trace_id()
        logs.request_id_var.set(rid)
        for key in _ROUTING_ARGUMENTS:
            arguments.pop(key, None)
        if not self.loaded.is_stream:
            raise status_error(400, f"{self.spec.name} is not a generator function: call it (fn.call), or make it yield "
                               f"its results to stream them", request_id=rid, error_type="NotAStream")
        return rid

    async def stream(self, hop: str | None, /, **arguments: Any) -> AsyncIterator[Any]:
        """The handle path of a streaming function (``fn.stream`` in another function): its chunks as they come."""
        rid = self._handle_call(hop, arguments)
        readers = self._readers(arguments)
        with self.metrics.call(self.spec.name, self._version) as code:
            try:
                async for chunk in self._chunks(self.loaded.signature.validate(arguments)):
                    yield chunk
            except ClientError as exc:
                code[0] = exc.status or 400
                raise
            except Exception as exc:  # noqa: BLE001 - user exceptions may not unpickle in the caller: send their gist
                raise self._gist(exc, rid) from None
            finally:
                for reader in readers:
                    reader.close()
            code[0] = 200

    async def pump(self, hop: str | None, /, **arguments: Any) -> int:
        """Produce a stream another function reads as an argument: its chunks into the broker (serving.streams)."""
        sid = str(arguments.pop(STREAM_ID_ARGUMENT))
        try:
            self._handle_call(hop, arguments)
            values = self.loaded.signature.validate(arguments)
        except ClientError as exc:
            await streams.broker().finish.remote(sid, {"type": exc.error_type or type(exc).__name__,
                                                       "message": exc.message, "status": exc.status or 400})
            return 0
        readers = self._readers(values)
        with self.metrics.call(self.spec.name, self._version) as code:
            try:
                count = await streams.pump(self._chunks(values), sid)
            finally:
                for reader in readers:
                    reader.close()
            code[0] = 200
        self._shipper.line("INFO", f"{self.spec.name} streamed {count} chunk(s) to another function")
        return count
