"""Streams between functions: a function reads, as an argument, a stream another function is producing.

Serve's streaming handles cannot be passed on (a ``DeploymentResponseGenerator`` is not an argument another
deployment can read) and have no back-pressure: a producer faster than its reader fills the reader's memory. So a
stream passed as an argument travels as what produces it (``fn._stream.StreamSource``: function, arguments,
version), and the function that reads it starts it: the producer's replica runs the generator and puts each chunk
into a bounded queue of the stream broker (one detached actor), the reader takes them in small batches. The caller
that passed the stream relays nothing, a put waits while the queue is full (at most ``CAPACITY`` chunks wait in
the broker, ``BATCH`` in the reader), and a reader that stops early cancels the stream, which stops the producer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fn import ClientError, FnError, Unavailable
from fn._platform import StreamSource, status_error

BROKER_NAME = "fn-streams"
NAMESPACE = "fn"
CAPACITY = 16  # chunks waiting in the broker per stream
BATCH = 16  # chunks one take hands the reader
TAKE_WAIT_S = 20.0  # a take answers empty after this long, and the reader asks again (no call held forever)
IDLE_S = 600.0  # a stream nobody put to or took from for this long is dropped
_END, _ERROR, _CHUNK = "end", "error", "chunk"


class StreamBroker:
    """The actor: one bounded queue per stream id."""

    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[tuple[str, Any]]] = {}
        self._cancelled: set[str] = set()
        self._seen: dict[str, float] = {}

    def _queue(self, sid: str) -> asyncio.Queue[tuple[str, Any]]:
        self._seen[sid] = time.monotonic()
        queue = self._queues.get(sid)
        if queue is None:
            queue = self._queues[sid] = asyncio.Queue(maxsize=CAPACITY)
            self._sweep()
        return queue

    def _sweep(self) -> None:
        old = [sid for sid, at in self._seen.items() if time.monotonic() - at > IDLE_S]
        for sid in old:
            self._drop(sid)

    def _drop(self, sid: str) -> None:
        self._queues.pop(sid, None)
        self._seen.pop(sid, None)

    async def put(self, sid: str, chunks: list[Any]) -> bool:
        """Add chunks, waiting while the queue is full; False once the reader cancelled, or took nothing for IDLE_S (its
        replica died without cancelling): the producer stops rather than wait forever."""
        for chunk in chunks:
            if sid in self._cancelled:
                return False
            try:
                await asyncio.wait_for(self._queue(sid).put((_CHUNK, chunk)), IDLE_S)
            except TimeoutError:
                self.cancel(sid)
                return False
        return sid not in self._cancelled

    async def finish(self, sid: str, error: dict[str, Any] | None = None) -> None:
        if sid not in self._cancelled:
            await self._queue(sid).put((_ERROR, error) if error is not None else (_END, None))

    async def take(self, sid: str) -> list[tuple[str, Any]]:
        """The next chunks (at least one, at most BATCH), or [] after TAKE_WAIT_S with none."""
        queue = self._queue(sid)
        try:
            items = [await asyncio.wait_for(queue.get(), TAKE_WAIT_S)]
        except TimeoutError:
            return []
        while len(items) < BATCH and not queue.empty() and items[-1][0] == _CHUNK:
            items.append(queue.get_nowait())
        if items[-1][0] != _CHUNK:
            self._drop(sid)
        return items

    def cancel(self, sid: str) -> None:
        """The reader is gone: puts answer False from now on, and a put waiting for room is released."""
        self._cancelled.add(sid)
        queue = self._queues.get(sid)
        while queue is not None and not queue.empty():
            queue.get_nowait()
        self._drop(sid)
        if len(self._cancelled) > 100_000:  # ids are random: forgetting the oldest never mixes streams up
            self._cancelled.clear()

    def streams(self) -> int:
        return len(self._queues)


_broker: Any = None
_broker_lock = threading.Lock()


def broker() -> Any:
    global _broker
    import ray

    with _broker_lock:
        if _broker is None:
            actor_cls: Any = ray.remote(StreamBroker)
            _broker = actor_cls.options(name=BROKER_NAME, namespace=NAMESPACE, get_if_exists=True, lifetime="detached",
                                        num_cpus=0, max_restarts=-1, max_concurrency=10_000,
                                        enable_task_events=False).remote()
        return _broker


async def pump(chunks: AsyncIterator[Any], sid: str) -> int:
    """The producer's side: its chunks into the broker until the end, an error or the reader's cancel."""
    count = 0
    queue = broker()
    try:
        async for chunk in chunks:
            count += 1
            if not await queue.put.remote(sid, [chunk]):
                return count
    except Exception as exc:  # noqa: BLE001 - the reader raises it
        body = {"type": type(exc).__name__, "message": str(exc), "status": 500}
        if isinstance(exc, ClientError):
            body.update(type=exc.error_type or type(exc).__name__, message=exc.message, status=exc.status or 500)
        await queue.finish.remote(sid, body)
        return count
    finally:
        with contextlib.suppress(Exception):
            await chunks.aclose()  # type: ignore[attr-defined]
    await queue.finish.remote(sid, None)
    return count


class StreamReader:
    """The reader's side: what a function gets for a stream argument. Iterate it once, with ``for`` (a sync
    function, on its worker thread) or ``async for``; not yet iterated, it can be passed on to another function."""

    def __init__(self, source: StreamSource, start: Any) -> None:
        self.source = source
        self._start = start  # (source, stream id) -> starts the producer's pump
        self.sid: str | None = None
        self.producer: Any = None
        self._done = False

    def _open(self) -> str:
        if self.sid is not None:
            raise RuntimeError(f"this stream of {self.source.function} is already being read; a stream is read once")
        self.sid = f"s{uuid.uuid4().hex}"
        self.producer = self._start(self.source, self.sid)  # kept while the stream is read
        return self.sid

    def _items(self, batch: list[tuple[str, Any]]) -> Iterator[Any]:
        for kind, value in batch:
            if kind == _CHUNK:
                yield value
                continue
            self._done = True
            if kind == _ERROR:
                raise status_error(int(value.get("status") or 500), f"{self.source.function}: {value.get('message')}",
                                   error_type=value.get("type"))
            return

    def _producer_ended(self, finished: bool, error: BaseException | None) -> None:
        """After a take that waited TAKE_WAIT_S for nothing: a producer whose call ended without ending the stream
        (its replica died, or the call never started) will send nothing more."""
        if finished:
            self._done = True
            cause = f": {type(error).__name__}: {error}" if error is not None else ""
            raise Unavailable(f"the stream of {self.source.function} broke: its producer stopped{cause}", status=503)

    def __iter__(self) -> Iterator[Any]:
        import ray

        sid = self._open()
        queue = broker()
        try:
            while not self._done:
                batch = ray.get(queue.take.remote(sid))
                if not batch:
                    self._producer_ended(*_sync_state(self.producer))
                yield from self._items(batch)
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:
            raise Unavailable(f"the stream of {self.source.function} broke: {exc}", status=503) from None
        finally:
            self.close()

    async def __aiter__(self) -> AsyncIterator[Any]:
        sid = self._open()
        queue = broker()
        watch: asyncio.Future[Any] | None = None
        try:
            while not self._done:
                batch = await queue.take.remote(sid)
                if not batch:
                    if watch is None:  # the producer's call, awaited once in the background
                        watch = asyncio.ensure_future(_awaited(self.producer))
                    self._producer_ended(*_done_state(watch))
                for chunk in self._items(batch):
                    yield chunk
        except FnError:
            raise
        except Exception as exc:  # noqa: BLE001 - Ray's own errors: the stream broke, not the function
            raise Unavailable(f"the stream of {self.source.function} broke: {exc}", status=503) from None
        finally:
            self.close()

    def close(self) -> None:
        """Stop the producer if the stream was started and not read to its end (the function returned early)."""
        if self.sid is not None and not self._done:
            self._done = True
            with contextlib.suppress(Exception):
                broker().cancel.remote(self.sid)


def _sync_state(producer: Any) -> tuple[bool, BaseException | None]:
    """(whether the producer's call has ended, its error): from a worker thread."""
    try:
        producer.result(timeout_s=0.01)
    except TimeoutError:
        return False, None
    except Exception as exc:  # noqa: BLE001 - its failure is the reader's error
        return (False, None) if type(exc).__name__ == "GetTimeoutError" else (True, exc)
    return True, None


def _done_state(watch: asyncio.Future[Any]) -> tuple[bool, BaseException | None]:
    """(whether the producer's call has ended, its error), from its background wait."""
    if not watch.done():
        return False, None
    return True, watch.exception()


async def _awaited(producer: Any) -> Any:
    return await producer


def passable(value: Any) -> Any:
    """What a stream argument travels as: its source, if nobody has started reading it."""
    if isinstance(value, StreamReader):
        if value.sid is not None:
            raise RuntimeError(f"a stream of {value.source.function} that is being read cannot be passed on")
        return value.source
    return value
