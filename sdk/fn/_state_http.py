"""``fn.Dict`` / ``fn.Queue`` outside the cluster: the control plane's ``/v1/state`` API, with the configured key.

Reads are retried like any idempotent request; a change is sent once (an ``incr`` or a ``put`` sent twice after a
lost answer would count twice), so a lost answer is an error the caller sees.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import httpx

from ._client import decoded, raise_for_response, shared_client
from ._config import load_settings
from ._errors import Timeout, Unavailable
from ._retry import send

WAIT_MARGIN_S = 10.0  # beyond a queue get's own wait: the answer's way back


class HttpState:
    def __init__(self) -> None:
        self.settings = load_settings()
        self.client = shared_client(self.settings)

    def _request(self, method: str, path: str, *, idempotent: bool, wait: float = 0.0, **kwargs: Any) -> Any:
        url = f"{self.settings.api_url}/v1/state/{path}"
        timeout = httpx.Timeout(30.0 + wait)

        def attempt() -> httpx.Response:
            return self.client.request(method, url, timeout=timeout, **kwargs)

        try:
            response = send(attempt) if idempotent else attempt()
        except httpx.TimeoutException as exc:
            raise Timeout(f"{method} {url} timed out: {exc}", status=504) from None
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach the platform at {url}: {exc}; is it running ('fnctl up')?",
                              status=503) from None
        raise_for_response(response)
        return decoded(response)

    def op(self, method: str, *args: Any) -> Any:
        name = quote(str(args[0]), safe="")
        if method == "dict_get":
            answer = self._request("GET", f"dicts/{name}/value", idempotent=True, params={"key": args[1]})
            return json.dumps(answer["value"]) if answer["found"] else None
        if method == "dict_keys":
            answer = self._request("GET", f"dicts/{name}/keys", idempotent=True,
                                   params={"limit": args[1], "prefix": args[2]})
            return answer["keys"], answer["count"]
        if method == "dict_set":
            self._request("PUT", f"dicts/{name}/value", idempotent=True, json={"key": args[1], "value": json.loads(args[2])})
            return None
        if method == "dict_delete":
            return self._request("DELETE", f"dicts/{name}/value", idempotent=True, params={"key": args[1]})["deleted"]
        if method == "dict_incr":
            return self._request("POST", f"dicts/{name}/incr", idempotent=False,
                                 json={"key": args[1], "by": args[2]})["value"]
        if method == "queue_put":
            self._request("POST", f"queues/{name}/put", idempotent=False, wait=args[3],
                          json={"value": json.loads(args[1]), "maxsize": args[2], "timeout": args[3]})
            return None
        if method == "queue_get":
            answer = self._request("POST", f"queues/{name}/get", idempotent=False, wait=args[1] + WAIT_MARGIN_S,
                                   json={"timeout": args[1]})
            return json.dumps(answer["value"]) if answer["found"] else None
        if method == "queue_len":
            return self._request("GET", f"queues/{name}", idempotent=True)["length"]
        raise ValueError(f"unknown state operation {method!r}")

    async def aop(self, method: str, *args: Any) -> Any:
        return await asyncio.to_thread(self.op, method, *args)
