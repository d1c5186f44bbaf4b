"""Retrying what is safe to retry: a request that never reached the platform (connection refused or
reset while connecting, as during a rolling update or a restart) and a 503 (nothing ran: no capacity,
a full queue, a replica being replaced), with backoff and the server's ``Retry-After``, for at most
``FN_RETRY_S`` seconds (default 10; 0 turns retries off). Never a 500, a 4xx or a timeout: the call
may have run."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import httpx

from ._errors import ConfigError

DEFAULT_RETRY_S = 10.0
FIRST_DELAY_S = 0.2
MAX_DELAY_S = 5.0
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


def retry_budget_s() -> float:
    raw = os.environ.get("FN_RETRY_S", "")
    try:
        budget = float(raw) if raw else DEFAULT_RETRY_S
    except ValueError:
        budget = -1.0
    if not 0 <= budget <= 3600:
        raise ConfigError(f"FN_RETRY_S={raw!r} is invalid: seconds to keep retrying refused connections and 503s, "
                          f"0 to 3600 (0: never retry)")
    return budget


def _wait(response: httpx.Response | None, delay: float) -> float:
    header = response.headers.get("retry-after", "") if response is not None else ""
    try:
        return min(max(float(header), 0.0), MAX_DELAY_S) if header else delay
    except ValueError:
        return delay


class _Budget:
    """When to try again: a refused connection or a 503 while the time lasts, after backoff or Retry-After."""

    def __init__(self) -> None:
        self.deadline, self.delay = time.monotonic() + retry_budget_s(), FIRST_DELAY_S

    def wait_before_retry(self, response: httpx.Response | None) -> float | None:
        """Seconds to wait before the next try, or None to stop (*response* None: the connection was refused)."""
        if response is not None and response.status_code != 503:
            return None
        wait = _wait(response, self.delay)
        if time.monotonic() + wait > self.deadline:
            return None
        self.delay = min(self.delay * 2, MAX_DELAY_S)
        return wait


def send(request: Callable[[], httpx.Response]) -> httpx.Response:
    """*request* (a call that sends one request), again while it is safe and the budget lasts."""
    budget = _Budget()
    while True:
        try:
            response = request()
        except _NOT_SENT:
            if (wait := budget.wait_before_retry(None)) is None:
                raise
        else:
            if (wait := budget.wait_before_retry(response)) is None:
                return response
        time.sleep(wait)


async def asend(request: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """``send`` for async callers."""
    budget = _Budget()
    while True:
        try:
            response = await request()
        except _NOT_SENT:
            if (wait := budget.wait_before_retry(None)) is None:
                raise
        else:
            if (wait := budget.wait_before_retry(response)) is None:
                return response
        await asyncio.sleep(wait)
