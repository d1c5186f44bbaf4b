"""API keys on the function endpoint address: checked in the replica, against hashes the hub publishes."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request

from .registry import hash_key

KEY_CACHE_TTL_S = 5.0
KEY_MISS_REFRESH_S = 0.5


class KeyCache:
    """Key hashes from the hub, refreshed every few seconds and once on a miss (a key just created)."""

    def __init__(self, hub: Any) -> None:
        self._hub = hub
        self._hashes: frozenset[str] = frozenset()
        self._fetched_at = 0.0

    async def _refresh(self) -> None:
        if self._hub is not None:
            self._hashes = await self._hub.key_hashes.remote()
        self._fetched_at = time.monotonic()

    async def allows(self, key: str) -> bool:
        age = time.monotonic() - self._fetched_at
        if age > KEY_CACHE_TTL_S:
            await self._refresh()
        digest = hash_key(key)
        if digest in self._hashes:
            return True
        if time.monotonic() - self._fetched_at > KEY_MISS_REFRESH_S:  # a key created since the last refresh
            await self._refresh()
            return digest in self._hashes
        return False


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")
