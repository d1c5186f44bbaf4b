"""Jobs from Python: ``fn.spawn`` queues a call that outlives the request and returns a ``fn.Job`` at once.

A job is accepted (written down) before ``spawn`` returns; ``job.result()`` waits for it however long it takes,
``job.cancel()`` stops it and ``fn.Job.from_id(id)`` finds it again from another process. Each spawn sends an
``Idempotency-Key`` of its own, so a spawn retried after a lost answer never queues the job twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ._config import Settings, load_settings
from ._errors import Conflict, Timeout, status_error

ENDED = frozenset({"succeeded", "failed", "cancelled"})
POLL_S = 30.0  # one long poll of GET /jobs/<id>?wait=; the server answers at most after 60 s


def _client_call(settings: Settings, method: str, path: str, **kwargs: Any) -> Any:
    from ._client import _request_json, function_url, shared_client

    return _request_json(shared_client(settings), method, function_url(settings, path), settings, **kwargs)


class Job:
    """A queued function call: ``job.result()``, ``job.status()``, ``job.cancel()``, ``fn.Job.from_id(job.id)``."""

    def __init__(self, job_id: str, *, settings: Settings | None = None, state: Mapping[str, Any] | None = None) -> None:
        self.id = job_id
        self._settings = settings
        self.state: dict[str, Any] = dict(state or {})  # the last state read: status, attempts, result or error...

    @classmethod
    def from_id(cls, job_id: str, *, settings: Settings | None = None) -> Job:
        job = cls(job_id, settings=settings)
        job.refresh()
        return job

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def function(self) -> str | None:
        return self.state.get("function")

    def refresh(self, wait: float = 0) -> dict[str, Any]:
        """Read the job's state; with *wait*, the server holds the answer up to that many seconds for the job to end."""
        query = {"wait": f"{wait:g}"} if wait else None
        self.state = _client_call(self.settings, "GET", f"jobs/{self.id}", params=query, timeout=wait + 30)
        return self.state

    def status(self) -> str:
        """queued, running, succeeded, failed or cancelled."""
        return str(self.refresh()["status"])

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the job to end and return its result; its error as the fn error it stands for (a job that was
        cancelled: ``fn.Conflict``); ``fn.Timeout`` if it has not ended within *timeout* seconds (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.state.get("status") not in ENDED:
            left = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
            if left <= 0:
                raise Timeout(f"job {self.id} has not ended within {timeout:g} s (it is {self.state.get('status')}); "
                              f"it keeps running: ask again with job.result() or fn.Job.from_id({self.id!r})", status=504)
            self.refresh(wait=max(left, 0.1))
        status = self.state["status"]
        if status == "succeeded":
            return self.state.get("result")
        error = self.state.get("error") or {}
        if status == "cancelled":
            raise Conflict(f"job {self.id} was cancelled", status=409, error_type="Cancelled")
        raise status_error(int(error.get("status") or 500), str(error.get("message") or f"job {self.id} failed"),
                           request_id=self.id, error_type=error.get("type"))

    def cancel(self) -> dict[str, Any]:
        """Cancel the job: a queued one at once, a running one within about a second."""
        self.state = _client_call(self.settings, "DELETE", f"jobs/{self.id}")
        return self.state

    def retry(self) -> Job:
        """Queue a failed (dead-letter) or cancelled job again, with all its attempts."""
        self.state = _client_call(self.settings, "POST", f"jobs/{self.id}/retry")
        return self

    def __repr__(self) -> str:
        return f"Job({self.id!r}, status={self.state.get('status')!r})"


def spawn_job(name: str, kwargs: dict[str, Any], *, settings: Settings, version: int | None = None,
              options: Mapping[str, Any] | None = None) -> Job:
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    if version is not None:
        headers["Fn-Version"] = str(version)
    params = {key: str(value) for key, value in (options or {}).items() if value is not None}
    state = _client_call(settings, "POST", f"jobs/{name}", json=kwargs, headers=headers, params=params or None)
    return Job(str(state["id"]), settings=settings, state=state)


def spawn_many(name: str, items: Iterable[Mapping[str, Any]], *, settings: Settings, version: int | None = None,
               options: Mapping[str, Any] | None = None, concurrency: int = 16) -> list[Job]:
    work = [dict(item) for item in items]
    if not work:
        return []
    with ThreadPoolExecutor(max_workers=min(concurrency, len(work))) as pool:
        return list(pool.map(lambda kwargs: spawn_job(name, kwargs, settings=settings, version=version,
                                                      options=options), work))
