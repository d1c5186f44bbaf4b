"""Calls that ran past ``timeout_s`` on the replica's thread pool.

A sync function runs on a worker thread that Python cannot stop: past ``timeout_s`` the caller gets its 504,
but the thread keeps running and holds its worker. Once such calls hold (nearly) every worker, the replica
can only answer 504; ``check`` then fails Serve's health check so that Serve replaces the replica.
(An async function's task is cancelled by the timeout, so it holds no worker.)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

# Below every worker so that a replica is replaced while a few workers still answer, not only once all are lost;
# with few workers this rounds up to all of them (1 of 1, 4 of 4, 9 of 10).
UNHEALTHY_SHARE = 0.9


class Unhealthy(RuntimeError):
    """Raised by the health check: Serve replaces a replica whose health check keeps raising."""


class Ticket:
    """One call on the pool, from the caller's side and the worker's, under the counter's lock."""

    __slots__ = ("abandoned", "done", "started")

    def __init__(self) -> None:
        self.started = False
        self.done = False
        self.abandoned = False


class OverrunCalls:
    """Counts the calls whose caller stopped waiting while a worker thread still runs them."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.limit = max(1, math.ceil(workers * UNHEALTHY_SHARE))
        self._running = 0
        self._lock = threading.Lock()

    @property
    def running(self) -> int:
        return self._running

    def track(self, work: Callable[[], Any]) -> tuple[Callable[[], Any], Ticket]:
        """*work* wrapped for the pool, and the ticket to hand to ``abandon`` when its caller times out."""
        call = Ticket()

        def run() -> Any:
            with self._lock:
                if call.abandoned:  # timed out while queued for a worker: nobody waits for the result
                    return None
                call.started = True
            try:
                return work()
            finally:
                with self._lock:
                    call.done = True
                    if call.abandoned:
                        self._running -= 1

        return run, call

    def abandon(self, call: Ticket) -> int:
        """The caller of *call* stopped waiting: the number of timed-out calls still running, this one included."""
        with self._lock:
            if not call.done and not call.abandoned:
                call.abandoned = True
                if call.started:
                    self._running += 1
            return self._running

    def describe(self) -> str:
        return f"{self._running} timed-out calls still running of {self.workers} workers"

    def check(self, name: str) -> None:
        """Raise ``Unhealthy`` once timed-out calls hold at least ``UNHEALTHY_SHARE`` of the workers."""
        if self._running >= self.limit:
            raise Unhealthy(f"{name}: {self.describe()} (unhealthy from {self.limit}): the calls ran past "
                            "timeout_s and their threads cannot be stopped, so this replica is replaced")
