"""The HTTP edge every server shares: who is calling (an API key's grant), what the grant allows,
how often it may call, how many bytes a request may send, and query values that must be numbers.

Every server (control plane, replicas, the catch-all gateway, the flows gateway) authenticates and
checks the role *before* it reads a byte of the body, and reads bodies through :func:`limited` so a
limit holds on the bytes that actually arrive, whatever ``Content-Length`` says or does not say.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

from fn import BadRequest, PayloadTooLarge, TooManyRequests
from fnplatform.keys import Grant

_BUCKETS_MAX = 10_000  # keys seen by one process; the oldest bucket goes beyond it


def api_key(headers: Mapping[str, str]) -> str | None:
    """The key a request sends: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    header = headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return headers.get("x-api-key") or None


class RateLimiter:
    """A token bucket per key, in this process: a key's ``rate_limit`` requests per second, with
    bursts of up to one second's worth. Several replicas each hold their own buckets, so across
    N replicas a key may get up to N times its rate (stated in docs/operations.md)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, at)

    def check(self, grant: Grant) -> None:
        rate = grant.rate_limit
        if not rate:
            return
        now = self._clock()
        capacity = max(rate, 1.0)
        tokens, at = self._buckets.pop(grant.key_id, (capacity, now))
        tokens = min(capacity, tokens + (now - at) * rate)
        if tokens < 1.0:
            self._buckets[grant.key_id] = (tokens, now)
            wait = (1.0 - tokens) / rate
            raise TooManyRequests(f"this API key is limited to {rate:g} requests per second; retry in {wait:.2f} s",
                                  status=429, retry_after=max(1, math.ceil(wait)))
        self._buckets[grant.key_id] = (tokens - 1.0, now)  # re-inserted last: dict order is recency
        if len(self._buckets) > _BUCKETS_MAX:
            del self._buckets[next(iter(self._buckets))]


Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


def limited(receive: Receive, limit: int, what: str = "the body", setting: str = "") -> Receive:
    """An ASGI ``receive`` that raises 413 as soon as more than *limit* body bytes have arrived."""
    seen = 0
    where = f" ({setting})" if setting else ""

    async def counted() -> MutableMapping[str, Any]:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(f"{what} is over the limit of {limit:,} bytes{where}", status=413,
                                      detail={"limit_bytes": limit})
        return message

    return counted


def declared_over(headers: Mapping[str, str], limit: int, what: str = "the body", setting: str = "") -> None:
    """Refuse at once a body whose declared length is already over *limit* (the stream is checked anyway)."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        where = f" ({setting})" if setting else ""
        raise PayloadTooLarge(f"{what} is {int(declared):,} bytes, over the limit of {limit:,}{where}", status=413,
                              detail={"limit_bytes": limit})


def number_query(params: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """A finite number from the query string, within [low, high]; 400 naming the parameter otherwise."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not low <= value <= high:
        raise BadRequest(f"query parameter {name!r} must be a number from {low:g} to {high:g}, not {raw[:40]!r}",
                         status=400)
    return value


def grants_by_hash(rows: Iterable[tuple[str, Grant]]) -> dict[str, dict[str, Any]]:
    """What the control plane publishes on the hub's ``keys`` topic: key hash -> grant."""
    return {digest: grant.to_json() for digest, grant in rows}
