"""The background thread that ships what a process buffers to the hub: every few seconds, at once when
woken, and a last time when stopped. Log lines (``serving.logs``) and metrics (``serving.metrics``) share it,
so the request path only appends to a buffer and never waits on the hub."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls *flush* every *interval_s* on its own daemon thread; ``stop`` flushes once more on the caller's."""

    def __init__(self, flush: Callable[[], object], interval_s: float, name: str) -> None:
        self._flush = flush
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._started = False
        self._start_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        with self._start_lock:  # callers on several threads may each make sure it runs
            if not self._started:
                self._started = True
                self._thread.start()

    def wake(self) -> None:
        """Flush now rather than at the next tick (e.g. a flow run that ends, whose process goes soon)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._call()

    def _call(self) -> None:
        try:
            self._flush()
        except Exception:  # the thread must outlive any one failed flush; the next one tries again
            log.warning("%s: a flush failed", self._thread.name, exc_info=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval_s)
            self._wake.clear()
            if not self._stop.is_set():
                self._call()
