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


def send(request: Callable[[], httpx.Response]) -> httpx.Response:
    """*request* (a call that sends one request), again while it is safe and the budget lasts."""
    deadline, delay = time.monotonic() + retry_budget_s(), FIRST_DELAY_S
    while True:
        response: httpx.Response | None = None
        try:
            sent = request()
        except _NOT_SENT:
            if time.monotonic() + delay > deadline:
                raise
        else:
            if sent.status_code != 503 or time.monotonic() + _wait(sent, delay) > deadline:
                return sent
            response = sent
        time.sleep(_wait(response, delay))
        delay = min(delay * 2, MAX_DELAY_S)


async def asend(request: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """``send`` for async callers."""
    deadline, delay = time.monotonic() + retry_budget_s(), FIRST_DELAY_S
    while True:
        response: httpx.Response | None = None
        try:
            sent = await request()
        except _NOT_SENT:
            if time.monotonic() + delay > deadline:
                raise
        else:
            if sent.status_code != 503 or time.monotonic() + _wait(sent, delay) > deadline:
                return sent
            response = sent
        await asyncio.sleep(_wait(response, delay))
        delay = min(delay * 2, MAX_DELAY_S)
