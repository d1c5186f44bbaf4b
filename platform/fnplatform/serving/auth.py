"""API keys on the function endpoint address: checked in the replica, against hashes the hub publishes."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from fnplatform.keys import hash_key

from .pushed import Pushed

KEY_CACHE_TTL_S = 5.0
KEY_MISS_REFRESH_S = 0.5


class KeyCache:
    """Key hashes the control plane publishes (topic ``keys``), re-read every few seconds and on a miss (a key just created)."""

    def __init__(self, hub: Any) -> None:
        self._hashes = Pushed(hub, "keys", frozenset[str](), frozenset, ttl_s=KEY_CACHE_TTL_S,
                              min_interval_s=KEY_MISS_REFRESH_S)

    async def allows(self, key: str) -> bool:
        digest = hash_key(key)
        return digest in await self._hashes.get() or digest in await self._hashes.get(miss=True)


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")
