"""The store's one writer: ingests queue here and a single thread writes them in bounded batches.

Searches never pass through this module. Only one thread writes, so two ingests never interleave
their upserts, deletes and flushes, and pending ingests share one flush instead of one each.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

Rows = list[dict[str, Any]]


@dataclass
class _Job:
    collection: str
    rows: Rows
    keys: set[str]
    done: Future[int] = field(default_factory=Future)


class BatchWriter:
    """Runs ``write(collection, rows)`` on one daemon thread; ``submit`` returns a future of the row count.

    Jobs waiting together for the same collection are merged into one ``write`` of at most *max_rows*
    rows, as long as no item appears in two of them (an item's rows must be written by one job). A job is never
    split: one ingest call's rows are written, and their leftovers deleted, together."""

    def __init__(self, write: Callable[[str, Rows], None], *, max_rows: int = 2048, name: str = "vector-writer") -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        self._write = write
        self.max_rows = max_rows
        self._name = name
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._held: _Job | None = None  # taken from the queue but left for the next batch
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, collection: str, rows: Rows) -> Future[int]:
        job = _Job(collection, rows, {row["item_key"] for row in rows})
        if not rows:
            job.done.set_result(0)  # nothing to write: no batch, no flush
            return job.done
        self._ensure_started()
        self._jobs.put(job)
        return job.done

    def close(self, timeout: float | None = None) -> None:
        """Writes what is queued, then stops the thread."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout)

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def _next_batch(self) -> list[_Job] | None:
        first = self._held if self._held is not None else self._jobs.get()
        self._held = None
        if first is None:
            return None
        batch, rows, keys = [first], len(first.rows), set(first.keys)
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return batch
            if job is None:
                self._jobs.put(None)  # stop after this batch
                return batch
            if job.collection != first.collection or rows + len(job.rows) > self.max_rows or keys & job.keys:
                self._held = job
                return batch
            batch.append(job)
            rows += len(job.rows)
            keys |= job.keys

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                self._write(batch[0].collection, [row for job in batch for row in job.rows])
            except Exception as exc:  # noqa: BLE001 - every waiting ingest gets the store's reason
                for job in batch:
                    job.done.set_exception(exc)
            else:
                for job in batch:
                    job.done.set_result(len(job.rows))
