"""Serve's HTTP proxy stamps each request with when it arrived (``fn-arrived``, ms since the epoch).

A cold call's breakdown (serving.coldstart) starts at that stamp. Where HAProxy is the ingress it stamps
the request itself (ingress_errors.arrival_rule) and forwards to Serve's proxy the requests no replica
can take yet; the proxy then keeps HAProxy's earlier stamp. Anywhere else the proxy's stamp replaces
whatever the caller sent. Loaded into the proxy by ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``
(``ARRIVAL_STAMP``), Serve's public hook for proxy middleware.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.middleware import Middleware

from .coldstart import ARRIVED_HEADER

ARRIVAL_STAMP = "fnplatform.serving.arrival.middlewares"
PROXY_CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
_HEADER = ARRIVED_HEADER.encode()

Scope = MutableMapping[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


class StampArrival:
    def __init__(self, app: App, keep_ingress_stamp: bool | None = None) -> None:
        self.app = app
        self.keep = os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") == "1" if keep_ingress_stamp is None else keep_ingress_stamp

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = list(scope.get("headers") or [])
            if not (self.keep and any(name == _HEADER for name, _ in headers)):
                stamp = str(int(time.time() * 1000)).encode()
                scope["headers"] = [(name, value) for name, value in headers if name != _HEADER] + [(_HEADER, stamp)]
        await self.app(scope, receive, send)


def middlewares() -> list[Middleware]:
    """What Serve's proxy calls at start (``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``)."""
    return [Middleware(StampArrival)]
