"""A replica passing a call on to another version of its function: pinned calls and calls a split drew.

Only the active version's replicas draw by the split; any replica answers a pin to its own version and
passes a pin to another version on (starting it first if it is not running), once: a call that was passed
on carries a mark, and a replica that receives it for a version it is not (its table was a moment old while
versions changed) answers 503 with Retry-After instead of passing it again. The version the call was meant
for counts a failure of the passing itself (the version not starting, gone, or not answering) as its own
error, so a canary that cannot answer fails its gates instead of waiting on calls it never counts.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fn import ClientError, FnError, FunctionSpec, Unavailable

from . import versions as routing
from .auth import KeyCache
from .handles import HandleTransport, NotDeployed
from .http import client_error_response, error_response, forwarded_scope, read_body
from .metrics import Recorder

ALLOWED_METHODS = {"GET", "POST", "PUT"}


def _moving(spec: FunctionSpec, version: int) -> Unavailable:
    return Unavailable(f"version {version} of {spec.name} is being started or replaced; retry in a moment",
                       status=503, retry_after=1)


class Forwarder:
    def __init__(self, spec: FunctionSpec, number: int, traffic: routing.TrafficTable, handles: HandleTransport,
                 keys: KeyCache, metrics: Recorder) -> None:
        self.spec = spec
        self.number = number
        self.traffic = traffic
        self._handles = handles
        self._keys = keys
        self._metrics = metrics

    async def route(self, request: Request) -> int | None:
        """The version to pass this HTTP call to, None to answer it here."""
        if self.spec.internal:
            return None
        pinned = request.headers.get(routing.VERSION_HEADER)
        if pinned is not None:
            version = routing.parse_version(pinned)
            if version is None or version == self.number:
                return None
            if request.headers.get(routing.FORWARDED_HEADER):
                raise _moving(self.spec, version)
            return version
        entry = await self.traffic.aget(self.spec.name)
        if entry is None or entry.active != self.number or not entry.split[0]:
            return None
        chosen = entry.pick()
        return None if chosen == self.number else chosen

    async def http(self, request: Request, request_id: str, version: int) -> Response:
        """Pass an HTTP call on to *version*, after the key and method checks and with the body limit."""
        started = time.perf_counter()
        try:
            entry = await self.traffic.aget(self.spec.name)
            running = entry is not None and (version == entry.active or version in entry.running)
            # A public function takes calls without a key, but starting a version for one needs a key that may call it.
            if not self.spec.public or not running:
                (await self._keys.authenticate(request.headers)).require_function(self.spec.name)
            if request.method not in ALLOWED_METHODS and self.spec.kind != "asgi":  # a web app takes every method
                raise ClientError(f"method {request.method} is not allowed; use POST", status=405)
            entry = await self.traffic.running(self.spec.name, version, routing.START_WAIT_S)
            body = await read_body(request)
            scope = forwarded_scope(request, request_id)
            scope["headers"] = [(k, v) for k, v in scope["headers"]
                                if k not in {routing.VERSION_HEADER.encode(), routing.FORWARDED_HEADER.encode()}] + [
                (routing.VERSION_HEADER.encode(), str(version).encode()), (routing.FORWARDED_HEADER.encode(), b"1")]
            app = routing.app_name(self.spec.name, None if version == entry.active else version)
            pending = self._handles.submit_http(app, scope, body)
            status, headers, content = await self._handles.aresult(
                pending, entry.timeout_of(version, self.spec.timeout_s) + 30)
        except NotDeployed:
            return self._failed(version, _moving(self.spec, version), request_id, started)
        except ClientError as exc:
            if (exc.status or 400) >= 500:
                return self._failed(version, exc, request_id, started)
            return client_error_response(exc, request_id)
        except FnError as exc:
            return self._failed(version, exc, request_id, started)
        response = Response(content, status_code=status)
        response.raw_headers = headers
        return response

    def _failed(self, version: int, exc: FnError, request_id: str, started: float) -> Response:
        status = getattr(exc, "status", None) or 500
        self._count_failure(version, status, started)
        if isinstance(exc, ClientError):
            return client_error_response(exc, request_id)
        return error_response(status, getattr(exc, "error_type", None) or type(exc).__name__,
                              str(getattr(exc, "message", exc)), request_id)

    async def call(self, hop: str | None, arguments: dict[str, Any], version: int, forwarded: bool,
                   shadow: bool) -> Any:
        """Pass a handle call pinned to *version* on to it (a caller's table showed it active or not running)."""
        if forwarded:
            raise _moving(self.spec, version)
        started = time.perf_counter()
        entry = await self.traffic.running(self.spec.name, version, routing.START_WAIT_S)
        app = routing.app_name(self.spec.name, None if version == entry.active else version)
        marks: dict[str, Any] = {routing.VERSION_ARGUMENT: version, routing.FORWARDED_ARGUMENT: True}
        if shadow:
            marks[routing.SHADOW_ARGUMENT] = True
        try:
            pending = self._handles.submit_to(app, hop, {**arguments, **marks})
            return await self._handles.aresult(pending, entry.timeout_of(version, self.spec.timeout_s) + 30)
        except NotDeployed:
            self._count_failure(version, 503, started)
            raise _moving(self.spec, version) from None
        except FnError as exc:
            if (getattr(exc, "status", None) or 500) >= 500 and not isinstance(exc, ClientError):
                self._count_failure(version, 500, started)
            raise

    def _count_failure(self, version: int, status: int, started: float) -> None:
        self._metrics.call_started(self.spec.name)
        self._metrics.call_finished(self.spec.name, str(version), status, time.perf_counter() - started)
