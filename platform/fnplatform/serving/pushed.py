"""The data plane's copy of what the control plane publishes through the hub (one push path for
keys, the function table, and later secrets and traffic weights).

Each copy carries the version it was published with, so a replica can tell it is stale; it is
re-read when older than its TTL, and on a miss (a key or a function just created): a caller that
missed waits for a read that began after its miss, at most one read every ``min_interval_s``, so a
key is never refused for being a moment new and a flood of misses cannot flood the hub (each one
waits instead). When the hub cannot be reached, or answers "nothing published" (a restarted hub
not yet refilled), the last good copy stays in use: a copy is only ever replaced by a published one.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Pushed(Generic[T]):
    def __init__(self, hub: Any, topic: str, empty: T, convert: Callable[[Any], T], *, ttl_s: float = 5.0,
                 min_interval_s: float = 0.5) -> None:
        self._hub = hub
        self.topic = topic
        self.value = empty
        self.version = -1  # nothing read yet
        self._convert = convert
        self._ttl_s = ttl_s
        self._min_interval_s = min_interval_s
        self._read_at = -math.inf
        self._lock = asyncio.Lock()  # one read at a time; callers that arrive meanwhile wait for it and use it

    @property
    def loaded(self) -> bool:
        """Whether a published value was ever read (else ``value`` is the empty default, not the platform's state)."""
        return self.version != -1

    def _stale(self) -> bool:
        return time.monotonic() - self._read_at > self._ttl_s

    async def get(self, *, miss: bool = False) -> T:
        """The current copy, re-read when older than the TTL. With *miss* (the caller did not find what it
        looked for), a copy read since the miss: at most one read per ``min_interval_s``, so a miss may wait
        up to that long, and every caller that missed meanwhile shares the one read."""
        if self._hub is None:
            return self.value
        if miss:
            asked = time.monotonic()
            async with self._lock:
                if self._read_at < asked:  # no read has started since this caller missed
                    wait = self._read_at + self._min_interval_s - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    await self._read()
        elif self._stale():
            async with self._lock:
                if self._stale():  # not refreshed by the caller we waited for
                    await self._read()
        return self.value

    async def _read(self) -> None:
        started = time.monotonic()  # what the copy can know of: what was published before the read began
        try:
            version, value = await self._hub.read.remote(self.topic, self.version)
        except Exception:  # noqa: BLE001 - the hub is restarting, slow or gone: keep serving the last good copy
            return
        finally:
            self._read_at = started
        if value is not None and version != self.version:
            self.value, self.version = self._convert(value), version
