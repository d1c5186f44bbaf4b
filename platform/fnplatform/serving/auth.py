"""API keys on the function endpoint address: checked in replicas and gateways against the grants
(key hash -> role, scope, rate limit) the control plane publishes through the hub."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fn import Unauthorized, Unavailable
from fnplatform.deadlines import RETRY_AFTER_S
from fnplatform.keys import Grant, hash_key

from .edge import RateLimiter, api_key
from .pushed import Pushed

KEY_CACHE_TTL_S = 5.0
KEY_MISS_REFRESH_S = 0.5
NO_KEY = "missing or invalid API key: send 'Authorization: Bearer <key>' (create one with 'fnctl keys create NAME')"
KEYS_NOT_LOADED = ("the platform's API keys are not loaded here yet (its hub actor is restarting or unreachable); "
                   "try again shortly")


def _grants(value: Any) -> dict[str, Grant]:
    return {digest: Grant.from_json(grant) for digest, grant in dict(value).items()}


class KeyCache:
    """The published grants, re-read every few seconds and on a miss (a key just created), plus this
    process's rate-limit buckets."""

    def __init__(self, hub: Any) -> None:
        self._grants = Pushed(hub, "keys", dict[str, Grant](), _grants, ttl_s=KEY_CACHE_TTL_S,
                              min_interval_s=KEY_MISS_REFRESH_S)
        self._limiter = RateLimiter()

    async def grant(self, key: str) -> Grant | None:
        digest = hash_key(key)
        found = (await self._grants.get()).get(digest)
        return found if found is not None else (await self._grants.get(miss=True)).get(digest)

    async def authenticate(self, headers: Mapping[str, str]) -> Grant:
        """The caller's grant, after its rate limit: 401 without a valid key, 429 over its rate, 503 while no
        copy of the keys was ever read (a key cannot be judged invalid against nothing)."""
        key = api_key(headers)
        grant = await self.grant(key) if key else None
        if grant is None:
            if key and not self._grants.loaded:
                raise Unavailable(KEYS_NOT_LOADED, status=503, retry_after=RETRY_AFTER_S)
            raise Unauthorized(NO_KEY, status=401)
        self._limiter.check(grant)
        return grant
