"""The catch-all Serve application at ``/``: declared routes, functions the ingress does not route yet,
and a JSON 404 for every other path.

A function may declare ``route="/search/{collection}"``: it keeps its own endpoint at ``/<name>``
and also answers under the route, with the path's ``{parameters}`` as arguments. Serve sends here
every path no application claims, and that includes ``/<name>`` of a function deployed a moment
ago whose route has not reached the ingress yet (HAProxy reloads its config a little later): such a
request is passed on to the function's replica as HTTP, so it is answered exactly as on its own
route instead of with a 404. The table of functions is what the control plane publishes through
the hub (topic ``functions``, see ``serving.pushed``): re-read every few seconds, and at once (at
most twice a second) when a path names no known function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fn import BadRequest, ClientError, FunctionSpec, Unavailable

from . import tracing
from .auth import KeyCache
from .handles import HandleTransport, NotDeployed
from .http import (
    client_error_response,
    error_response,
    forwarded_scope,
    not_found_response,
    read_arguments,
    read_body,
    result_response,
)
from .hub import lazy_hub
from .logs import request_id_var
from .pushed import Pushed
from .versions import VERSION_HEADER, parse_version

ROUTES_TTL_S = 3.0
MISS_REFRESH_S = 0.5  # a path that names no known function re-reads the table at most this often
ALLOWED_METHODS = frozenset({"GET", "POST", "PUT"})


@dataclass(frozen=True)
class Route:
    spec: FunctionSpec
    static: tuple[str, ...]
    params: tuple[str, ...]

    @classmethod
    def of(cls, spec: FunctionSpec) -> Route:
        parts = [p for p in (spec.route or "").split("/") if p]
        return cls(spec, tuple(p for p in parts if not p.startswith("{")), spec.route_params)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        if parts[: len(self.static)] != list(self.static) or len(parts) != len(self.static) + len(self.params):
            return None
        return dict(zip(self.params, parts[len(self.static):], strict=True))


@dataclass(frozen=True)
class Table:
    functions: dict[str, FunctionSpec]
    routes: list[Route]

    @classmethod
    def of(cls, specs: list[FunctionSpec]) -> Table:
        """Internal functions are left out: their paths get the 404 of a function that does not exist."""
        served = [s for s in specs if not s.internal]
        return cls({s.name: s for s in served}, [Route.of(s) for s in served if s.route])

    def find(self, parts: list[str]) -> tuple[FunctionSpec, dict[str, str] | None] | None:
        """The function a path is for: by a declared route (with its parameters), or ``/<name>[/...]`` (None)."""
        for route in self.routes:
            params = route.match(parts)
            if params is not None:
                return route.spec, params
        spec = self.functions.get(parts[0]) if parts else None
        return (spec, None) if spec is not None else None


def _table(specs: list[dict[str, Any]]) -> Table:
    return Table.of([FunctionSpec.model_validate(spec) for spec in specs])


class Gateway:
    def __init__(self, hub: Any = None, *, check_keys: bool = True, transport: Any = None) -> None:
        """Serve builds it with no arguments (the hub is found by name); tests pass their own parts."""
        hub = hub if hub is not None else lazy_hub()
        self._functions = Pushed(hub, "functions", Table({}, []), _table, ttl_s=ROUTES_TTL_S, min_interval_s=MISS_REFRESH_S)
        self._keys = KeyCache(hub) if check_keys else None
        self._transport = transport or HandleTransport()

    async def _find(self, parts: list[str]) -> tuple[FunctionSpec, dict[str, str] | None] | None:
        return (await self._functions.get()).find(parts) or (await self._functions.get(miss=True)).find(parts)

    async def __call__(self, request: Request) -> Response:
        path = request.url.path
        request_id = tracing.request_id_of(request.headers)
        if path in {"/-/healthz", "/healthz"}:
            return Response('{"status": "ok"}', media_type="application/json")
        parts = [p for p in path.split("/") if p]
        try:
            found = await self._find(parts)
            if found is not None:
                spec, params = found
                await self._authorize(spec, request)
                request_id_var.set(request_id)  # the transport sends it on, so the function's log lines carry it
                try:
                    if params is None:
                        return await self._forward(spec, request, request_id)
                    return await self._call(spec, params, request, request_id)
                except NotDeployed:
                    # Registered (it is in the table) but not in Serve: the platform is (re)deploying it.
                    raise Unavailable(f"function {spec.name!r} is registered but not running yet (the platform is "
                                      "deploying or restoring it); retry shortly", status=503, retry_after=1) from None
        except ClientError as exc:
            return client_error_response(exc, request_id)
        except Exception as exc:  # noqa: BLE001 - never a traceback to the client; the type and message instead
            return error_response(500, type(exc).__name__, str(exc), request_id)
        return not_found_response(path, request_id)

    async def _authorize(self, spec: FunctionSpec, request: Request) -> None:
        """Before a byte of the body is read: the key (unless the function is public), then the method."""
        if not spec.public and self._keys is not None:
            (await self._keys.authenticate(request.headers)).require_function(spec.name)
        if request.method not in ALLOWED_METHODS and spec.kind != "asgi":  # a web app takes every method
            raise ClientError(f"method {request.method} is not allowed; use POST", status=405)

    async def _forward(self, spec: FunctionSpec, request: Request, request_id: str) -> Response:
        body = await read_body(request)
        pending = self._transport.submit_http(spec.name, forwarded_scope(request, request_id), body)
        status, headers, content = await self._transport.aresult(pending, spec.timeout_s + 30)
        response = Response(content, status_code=status)
        response.raw_headers = headers
        return response

    async def _call(self, spec: FunctionSpec, params: dict[str, str], request: Request, request_id: str) -> Response:
        arguments = await read_arguments(request, [])  # JSON or multipart; the function validates the rest
        clash = sorted(set(arguments) & set(params))
        if clash:
            raise BadRequest(f"{', '.join(clash)} comes from the path {spec.route}; leave it out of the body", status=400)
        version = parse_version(request.headers.get(VERSION_HEADER))
        pending = self._transport.submit(spec.name, {**arguments, **params}, version) if version is not None \
            else self._transport.submit(spec.name, {**arguments, **params})
        result = await self._transport.aresult(pending, spec.timeout_s + 30)  # the function's own 504 comes first
        return result_response(result, request_id)
