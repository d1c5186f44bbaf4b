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
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Executor
from typing import Any

import pydantic_core

from fn import ClientError, Timeout

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
