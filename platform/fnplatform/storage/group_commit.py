"""Group commit: writes that arrive while one is in progress go to the database together, in the next transaction.

Every accepted job, every ended one and every change of shared state (fn.Dict, fn.Queue) is a write, and each
transaction pays for a flush to disk (SQLite's WAL commit, PostgreSQL's); under load one transaction per write caps
writes per second at commits per second. Here a
caller's write waits for the transaction that holds it, so nothing is acknowledged before it is stored, but the
transactions carry as many writes as arrived meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
MAX_BATCH = 500


class GroupCommit(Generic[T, R]):
    """``await group.write(item)``: *write_many* (run on a thread) stores a list of items and returns one result each."""

    def __init__(self, write_many: Callable[[list[T]], list[R]]) -> None:
        self._write_many = write_many
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def write(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                results = await asyncio.to_thread(self._write_many, [item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiting caller gets the database's error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
