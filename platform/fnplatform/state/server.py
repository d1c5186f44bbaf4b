"""The state server: one detached actor holding every ``fn.Dict`` and ``fn.Queue``, durable in the database.

Each dict and queue is read from the database the first time it is used and then served from memory; every
change is in memory at once (``incr`` is atomic: one actor, one event loop) and in the database before its
call returns, changes arriving together sharing a transaction (group commit). Ray restarts the actor when its
process dies and the control plane re-creates it when it is gone for good; either way it reads its state back
from the database, so a value whose write returned survives a replica, the server itself and the control plane.
A write whose transaction failed is not acknowledged: the caller gets 503, and the dict or queue it touched is read
again from the database once every other write to it in flight has settled (until then its callers wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from typing import Any

from fn import BadRequest, Conflict, TooManyRequests, Unavailable
from fn._platform import MAX_DICT_KEYS, MAX_QUEUE_ITEMS
from fn._platform import MAX_STATE_WAIT_S as MAX_WAIT_S
from fn._platform import check_state_key as check_key
from fn._platform import check_state_name as check_name
from fn._platform import check_state_value as check_value
from fnplatform.serving.hub import NAMESPACE
from fnplatform.serving.state_client import STATE_NAME
from fnplatform.storage.db import database_url_from_env
from fnplatform.storage.group_commit import GroupCommit
from fnplatform.storage.state import StateStore, Write

FAILED = "the shared-state database did not take the change; retry in a moment"


class _Queue:
    def __init__(self, items: list[tuple[int, str]]) -> None:
        self.items: deque[tuple[int, str]] = deque(items)
        self.next_seq = (items[-1][0] + 1) if items else 1
        self.changed = asyncio.Condition()


class StateServer:
    def __init__(self, url: str | None = None) -> None:
        self._store = StateStore(url or database_url_from_env())
        self._dicts: dict[str, dict[str, str]] = {}
        self._queues: dict[str, _Queue] = {}
        self._loading: dict[str, asyncio.Lock] = {}
        self._commit = GroupCommit[Write, None](self._write_many)
        # A failed commit leaves memory ahead of the database for its dict or queue. It is read again only once
        # every write to it still in flight has settled: a read before that would miss a later write that is
        # committed but not yet acknowledged, and so serve it stale or hand a queue item out twice.
        self._in_flight: dict[str, int] = {}
        self._stale: set[str] = set()
        self._settled = asyncio.Condition()

    def _write_many(self, writes: list[Write]) -> list[None]:
        self._store.apply(writes)
        return [None] * len(writes)

    async def _stored(self, write: Write) -> None:
        """Wait for *write*'s commit. Called right after the change went into memory, with no await between, so
        the write is counted in flight before anything else can see or reload its dict or queue."""
        tag = ("d:" if write.op in {"set", "delete"} else "q:") + write.name
        self._in_flight[tag] = self._in_flight.get(tag, 0) + 1
        try:
            await self._commit.write(write)
        except Exception:  # noqa: BLE001 - the change was not stored: read the name again once it settles
            self._stale.add(tag)
            raise Unavailable(FAILED, status=503, retry_after=1) from None
        finally:
            self._in_flight[tag] -= 1
            if not self._in_flight[tag]:
                del self._in_flight[tag]
                async with self._settled:
                    self._settled.notify_all()

    async def _loaded(self, tag: str, cache: dict[str, Any], name: str, load: Any, wrap: Any = None) -> Any:
        found = cache.get(name)
        if found is not None and tag not in self._stale:
            return found
        async with self._loading.setdefault(tag, asyncio.Lock()):
            if tag in self._stale:
                async with self._settled:
                    await self._settled.wait_for(lambda: tag not in self._in_flight)
                old = cache.pop(name, None)
                self._stale.discard(tag)
                if isinstance(old, _Queue):  # its waiters move to the copy read next
                    async with old.changed:
                        old.changed.notify_all()
            if name not in cache:
                found = await self._read(load, name)
                cache[name] = wrap(found) if wrap else found
        return cache[name]

    async def _dict(self, name: str) -> dict[str, str]:
        entries: dict[str, str] = await self._loaded(f"d:{name}", self._dicts, name, self._store.load_dict)
        return entries

    async def _queue(self, name: str) -> _Queue:
        queue: _Queue = await self._loaded(f"q:{name}", self._queues, name, self._store.load_queue, _Queue)
        return queue

    @staticmethod
    async def _read(load: Any, name: str) -> Any:
        try:
            return await asyncio.to_thread(load, name)
        except Exception:  # noqa: BLE001 - the database away: the caller retries
            raise Unavailable(f"cannot read {name!r} from the shared-state database; retry in a moment", status=503,
                              retry_after=1) from None

    # dicts -------------------------------------------------------------------------------------
    async def dict_get(self, name: str, key: str) -> str | None:
        return (await self._dict(check_name(name))).get(check_key(key))

    async def dict_keys(self, name: str, limit: int, prefix: str = "") -> tuple[list[str], int]:
        check_key(prefix, "prefix", empty=True)
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise BadRequest(f"limit={limit!r} must be a whole number", status=400)
        entries = await self._dict(check_name(name))
        matching = sorted(k for k in entries if k.startswith(prefix))
        return matching[:max(0, limit)], len(matching)

    async def dict_set(self, name: str, key: str, value: str) -> None:
        entries = await self._dict(check_name(name))
        check_key(key)
        check_value(value)
        if key not in entries and len(entries) >= MAX_DICT_KEYS:
            raise Conflict(f"dict {name!r} holds {len(entries):,} keys, the most one dict may hold; delete some "
                           f"or use another dict", status=409)
        entries[key] = value
        await self._stored(Write("set", name, key, value=value))

    async def dict_delete(self, name: str, key: str) -> bool:
        entries = await self._dict(check_name(name))
        if entries.pop(check_key(key), None) is None:
            return False
        await self._stored(Write("delete", name, key))
        return True

    async def dict_incr(self, name: str, key: str, by: int) -> int:
        entries = await self._dict(check_name(name))
        check_key(key)
        if isinstance(by, bool) or not isinstance(by, int) or abs(by) > 2**53:
            raise BadRequest(f"by={by!r} must be a whole number up to 2**53 in size", status=400)
        current = json.loads(entries[key]) if key in entries else 0
        if isinstance(current, bool) or not isinstance(current, int):
            raise Conflict(f"{name}[{key!r}] holds a {type(current).__name__}, not a whole number; incr adds to "
                           f"whole numbers only", status=409)
        if key not in entries and len(entries) >= MAX_DICT_KEYS:
            raise Conflict(f"dict {name!r} holds {len(entries):,} keys, the most one dict may hold", status=409)
        value = current + by
        text = json.dumps(value)
        entries[key] = text
        await self._stored(Write("set", name, key, value=text))
        return int(value)

    # queues ------------------------------------------------------------------------------------
    async def queue_put(self, name: str, value: str, maxsize: int, timeout: float) -> None:
        check_name(name)
        check_value(value)
        limit = min(maxsize, MAX_QUEUE_ITEMS)
        deadline = time.monotonic() + min(max(timeout, 0.0), MAX_WAIT_S)
        while True:
            queue = await self._queue(name)
            async with queue.changed:
                while len(queue.items) >= limit and self._queues.get(name) is queue:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TooManyRequests(f"queue {name!r} is full ({len(queue.items):,} items, maxsize "
                                              f"{limit:,}); retry later or pass put(..., timeout=S) to wait for room",
                                              status=429, retry_after=1)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(queue.changed.wait(), left)
                if self._queues.get(name) is not queue:
                    continue  # read again from the database meanwhile: wait on that copy
                seq = queue.next_seq
                queue.next_seq += 1
            break
        await self._stored(Write("push", name, seq=seq, value=value))
        if self._queues.get(name) is queue:  # else the copy read since holds it: it waited for this commit
            async with queue.changed:  # visible to getters only once stored
                queue.items.append((seq, value))
                queue.changed.notify_all()

    async def queue_get(self, name: str, timeout: float) -> str | None:
        """The oldest item, waiting up to *timeout* (at most MAX_WAIT_S: callers ask again) for one; None if none came."""
        check_name(name)
        deadline = time.monotonic() + min(max(timeout, 0.0), MAX_WAIT_S)
        while True:
            queue = await self._queue(name)
            async with queue.changed:
                while not queue.items and self._queues.get(name) is queue:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(queue.changed.wait(), left)
                if self._queues.get(name) is not queue:
                    continue
                seq, value = queue.items.popleft()
                queue.changed.notify_all()
            break
        await self._stored(Write("pop", name, seq=seq))
        return value

    async def queue_len(self, name: str) -> int:
        return len((await self._queue(check_name(name))).items)

    # listing -----------------------------------------------------------------------------------
    async def overview(self) -> dict[str, list[dict[str, Any]]]:
        dicts, queues = await asyncio.gather(asyncio.to_thread(self._store.dict_names),
                                             asyncio.to_thread(self._store.queue_names))
        return {"dicts": [{"name": n, "keys": c} for n, c in dicts], "queues": [{"name": n, "items": c} for n, c in queues]}

    def ping(self) -> bool:
        return True


def server_options() -> dict[str, Any]:
    from fnplatform.pools import REPLICA_POOL_SHARE, pool_resource

    return {"num_cpus": 0, "max_restarts": -1, "max_task_retries": 0, "max_concurrency": 10_000, "namespace": NAMESPACE,
            "lifetime": "detached", "enable_task_events": False, "resources": {pool_resource("api"): REPLICA_POOL_SHARE}}


def ensure_state_server() -> Any:
    """The state server's handle, started if it is not running (the control plane calls this at start and every
    few seconds: a server whose constructor failed for good is not restarted by Ray)."""
    import ray

    try:
        return ray.get_actor(STATE_NAME, namespace=NAMESPACE)
    except ValueError:
        actor: Any = ray.remote(StateServer)
        return actor.options(name=STATE_NAME, get_if_exists=True, **server_options()).remote()
