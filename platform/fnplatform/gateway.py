"""The catch-all Serve application at ``/``: declared routes, and a JSON 404 for every other path.

A function may declare ``route="/search/{collection}"``: it keeps its own endpoint at ``/<name>``
and also answers under the route, with the path's ``{parameters}`` as arguments. Serve sends every
path no application claims here; the route table is read from the registry every few seconds, and
a matching request is passed to the function through its handle (one hop, no second HTTP call).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fn import BadRequest, ClientError, FunctionSpec, Unauthorized

from ._http import client_error_response, error_response, read_arguments, result_response
from .auth import KeyCache, bearer
from .handles import HandleTransport
from .hub import find_hub_or_none
from .replica_logs import request_id_var

ROUTES_TTL_S = 3.0


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


class Gateway:
    def __init__(self, database_url: str = "") -> None:
        self._database_url = database_url
        self._registry: Any = None
        self._routes: list[Route] = []
        self._loaded_at = 0.0
        self._keys = KeyCache(find_hub_or_none()) if database_url else None
        self._transport = HandleTransport()

    async def _route_table(self) -> list[Route]:
        if self._database_url and time.monotonic() - self._loaded_at > ROUTES_TTL_S:
            if self._registry is None:
                from .registry import Registry

                self._registry = Registry(self._database_url)
            actives = await asyncio.to_thread(self._registry.actives)
            self._routes = [Route.of(v.spec) for v in actives if v.spec.route]
            self._loaded_at = time.monotonic()
        return self._routes

    async def __call__(self, request: Request) -> Response:
        path = request.url.path
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        if path in {"/-/healthz", "/healthz"}:
            return Response('{"status": "ok"}', media_type="application/json")
        parts = [p for p in path.split("/") if p]
        try:
            for route in await self._route_table():
                params = route.match(parts)
                if params is not None:
                    return await self._call(route.spec, params, request, request_id)
        except ClientError as exc:
            return client_error_response(exc, request_id)
        except Exception as exc:  # noqa: BLE001 - never a traceback to the client; the type and message instead
            return error_response(500, type(exc).__name__, str(exc), request_id)
        name = parts[0] if parts else ""
        message = (f"no function is deployed at {path!r}" if name else "no function named; POST to /<function>")
        body = {"error": {"type": "NotFound", "message": f"{message}; list functions with 'fnctl ls'",
                          "request_id": request_id}}
        return Response(json.dumps(body), status_code=404, media_type="application/json")

    async def _call(self, spec: FunctionSpec, params: dict[str, str], request: Request, request_id: str) -> Response:
        if not spec.public and self._keys is not None:
            key = bearer(request)
            if not key or not await self._keys.allows(key):
                raise Unauthorized("missing or invalid API key: send 'Authorization: Bearer <key>'", status=401)
        if request.method not in {"GET", "POST", "PUT"}:
            raise ClientError(f"method {request.method} is not allowed; use POST", status=405)
        arguments = await read_arguments(request, [])  # JSON or multipart; the function validates the rest
        clash = sorted(set(arguments) & set(params))
        if clash:
            raise BadRequest(f"{', '.join(clash)} comes from the path {spec.route}; leave it out of the body", status=400)
        request_id_var.set(request_id)  # the transport sends it on, so the function's log lines carry it
        pending = self._transport.submit(spec.name, {**arguments, **params})
        result = await self._transport.aresult(pending, spec.timeout_s + 30)  # the function's own 504 comes first
        return result_response(result, request_id)
