"""Web apps (``@fn.asgi``): a user's whole ASGI app served as one function, behind the platform's edge.

The deployment is Serve's ASGI ingress with the app bound late (``serve.ingress()`` and
``__serve_build_asgi_app__``): the replica fetches the bundle and calls the user's builder once, then
Serve hands it every request under ``/<name>/`` (``root_path`` is ``/<name>``, so the app's own routes
match) and its WebSockets. The app never sees a request the platform refuses: :class:`AppEdge` checks
the key (HTTP and WebSocket handshakes alike) and the declared length before calling it, counts the
body bytes that actually arrive, passes a pinned or split call to another version, stamps the request
id and version on the answer and counts the call. Calls the catch-all gateway takes (the ingress did not
route the app yet) and calls passed on from another version arrive through :meth:`AppReplica.http`.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.websockets import WebSocketDisconnect

from fn import BadRequest, ClientError
from fnplatform.storage.blobs import StoreConfig
from fnplatform.storage.cache import CachePolicy

from . import logs as replica_logs
from . import tracing
from . import versions as routing
from .auth import KeyCache
from .coldstart import ARRIVED_HEADER, HEADER, ColdStarts
from .edge import declared_over
from .forwarding import Forwarder
from .handles import HandleTransport
from .http import MAX_BODY_BYTES, client_error_response, error_response, replay_receive
from .metrics import CANCELLED, RECORDER, Recorder
from .replica import Boot, load_entry

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Message, Receive, Send], Awaitable[None]]

POLICY_VIOLATION = 1008  # WebSocket close code for a refused handshake (the client sees HTTP 403)


class _Refused(Exception):
    """The edge answered for the app (the body went over the limit): the app's own reaction is dropped."""


class AppEdge:
    """The platform's edge around one user app: an ASGI app itself."""

    def __init__(self, app: ASGIApp, spec: Any, keys: KeyCache, recorder: Recorder, shipper: replica_logs.LogShipper,
                 version: int, forwarder: Forwarder | None, cold: ColdStarts | None = None,
                 body_limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.spec = spec
        self._keys = keys
        self._metrics = recorder
        self._shipper = shipper
        self._version = str(version)
        self._forwarder = forwarder
        self.cold = cold
        self._limit = body_limit

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:  # lifespan: the app's own startup and shutdown
            await self.app(scope, receive, send)

    async def _admit(self, headers: Headers) -> None:
        if not self.spec.public:
            (await self._keys.authenticate(headers)).require_function(self.spec.name)

    async def _http(self, scope: Message, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        request_id = tracing.request_id_of(headers)
        replica_logs.request_id_var.set(request_id)  # fn.call inside the app carries it on
        started = time.perf_counter()
        if self._forwarder is not None:
            # As a function's replica does: a call for another version is that version's to admit (key, rate
            # limit, body limit) and to count, so it is neither checked nor counted twice.
            try:
                target = await self._forwarder.route(Request(scope))
            except ClientError as exc:
                await client_error_response(exc, request_id)(scope, receive, send)
                self._log(scope, exc.status or 400, started, request_id)
                return
            if target is not None:
                response = await self._forwarder.http(Request(scope, receive), request_id, target)
                await response(scope, receive, send)
                self._log(scope, response.status_code, started, request_id)
                return
        with self._metrics.call(self.spec.name, self._version) as code:
            try:
                await self._admit(headers)
                declared_over(headers, self._limit)
            except ClientError as exc:
                code[0] = exc.status or 400
                await client_error_response(exc, request_id)(scope, receive, send)
                self._log(scope, code[0], started, request_id)
                return
            cold = await self.cold.of_call(headers.get(ARRIVED_HEADER)) if self.cold is not None else None
            stamps = [(b"x-request-id", request_id.encode()), (routing.VERSION_HEADER.lower().encode(),
                                                               self._version.encode())]
            if cold is not None:
                stamps.append((HEADER.lower().encode(), cold.header().encode()))
            call = _Call(scope, receive, send, self._limit, stamps, request_id)
            try:
                await asyncio.wait_for(self.app(scope, call.receive, call.send), timeout=self.spec.timeout_s)
            except _Refused:
                pass
            except ClientDisconnect:
                call.status = CANCELLED  # nobody to answer; not the app's failure
            except TimeoutError:
                await call.fail(504, "Timeout", f"{self.spec.name} ran past its timeout_s of {self.spec.timeout_s:g} s")
            except Exception as exc:  # noqa: BLE001 - the app's error becomes a 500 (if it did not answer), never a crash
                self._shipper.line("ERROR", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}", request_id)
                await call.fail(500, type(exc).__name__, str(exc))
            code[0] = call.status
        self._log(scope, code[0], started, request_id)

    async def _websocket(self, scope: Message, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        request_id = tracing.request_id_of(headers)
        replica_logs.request_id_var.set(request_id)
        started = time.perf_counter()
        with self._metrics.call(self.spec.name, self._version) as code:
            try:
                await self._admit(headers)
            except ClientError as exc:
                code[0] = exc.status or 403
                # Closing before accepting refuses the handshake: the client gets HTTP 403.
                await send({"type": "websocket.close", "code": POLICY_VIOLATION, "reason": exc.message[:120]})
                self._log(scope, code[0], started, request_id)
                return
            code[0] = 101
            try:
                await self.app(scope, receive, send)
            except WebSocketDisconnect:
                pass  # the client left (a closed tab): the session's normal end, whatever the app made of it
            except Exception as exc:  # noqa: BLE001 - a broken session ends; the replica keeps serving
                code[0] = 500
                self._shipper.line("ERROR", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}", request_id)
        self._log(scope, code[0], started, request_id)

    def _log(self, scope: Message, status: int, started: float, request_id: str) -> None:
        what = "WS" if scope["type"] == "websocket" else scope.get("method", "")
        self._shipper.line("INFO", f"{what} {scope.get('path', '')} -> {status} in "
                                   f"{replica_logs.elapsed_ms(started):.1f} ms", request_id)


class _Call:
    """One HTTP request through the app: its body counted as it arrives, its answer stamped as it leaves."""

    def __init__(self, scope: Message, receive: Receive, send: Send, limit: int, stamps: list[tuple[bytes, bytes]],
                 request_id: str) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
        self._limit = limit
        self._stamps = stamps
        self._request_id = request_id
        self._seen = 0
        self.status = 500  # until the app starts its answer
        self.started = False
        self.refused = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._seen += len(message.get("body", b""))
            if self._seen > self._limit:
                await self.fail(413, "PayloadTooLarge", f"the body is over the limit of {self._limit:,} bytes",
                                {"limit_bytes": self._limit})
                self.refused = True
                raise _Refused()
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return  # the edge answered already; what the app makes of its interrupted read goes nowhere
        if message["type"] == "http.response.start":
            self.started = True
            self.status = int(message["status"])
            message = dict(message)
            message["headers"] = [*message.get("headers", []), *self._stamps]
        await self._send(message)

    async def fail(self, status: int, error_type: str, text: str, detail: Any = None) -> None:
        """Answer with the platform's JSON error, unless the app already began its answer."""
        if self.started or self.refused:
            return
        response = error_response(status, error_type, text, self._request_id, detail)
        response.raw_headers = [(k, v) for k, v in response.raw_headers if k != b"x-request-id"]  # send() stamps it
        await response(self._scope, self._receive, self.send)


class AppReplica:
    """The Serve deployment class behind every web app (made an ASGI ingress by the deployer)."""

    def __init__(self, spec_json: str, bundle_sha256: str, store: dict[str, Any], cache_dir: str,
                 cache_policy: dict[str, Any] | None = None, version: int = 0) -> None:
        up = Boot.of(spec_json)
        app = load_entry(up.spec, bundle_sha256, StoreConfig(**store), cache_dir, CachePolicy.from_dict(cache_policy),
                         up.start)
        self.spec = up.spec
        keys = KeyCache(up.hub)
        forwarder = Forwarder(up.spec, version, routing.table(up.hub), HandleTransport(), keys, RECORDER)
        self._edge = AppEdge(app, up.spec, keys, RECORDER, up.shipper, version, forwarder)
        self._edge.cold = up.ready(bundle_sha256)

    def __serve_build_asgi_app__(self) -> ASGIApp:
        return self._edge

    async def http(self, request_id: str, scope: dict[str, Any], body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """An HTTP request the catch-all gateway (or another version) passed on: answered as on the app's route."""
        return await answer_whole(self._edge, app_scope(scope, self.spec.name), body)

    async def call(self, hop: str | None, /, **arguments: Any) -> Any:
        raise BadRequest(f"{self.spec.name} is a web app (@fn.asgi): it has no arguments to call it with; send "
                         f"HTTP requests to /{self.spec.name}/...", status=400)

    def check_health(self) -> None:
        """Serve's health check: the app has no state of the platform's to go bad."""

    async def warm(self) -> bool:
        return True


def app_scope(scope: dict[str, Any], name: str) -> dict[str, Any]:
    """A forwarded request's scope as Serve gives it to the app at its route: ``root_path`` ``/<name>``."""
    return {**scope, "root_path": f"/{name}", "state": {}}


async def answer_whole(app: ASGIApp, scope: dict[str, Any], body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Run one HTTP request through *app* with its body given whole; the answer collected (a stream included)."""
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    parts: list[bytes] = []

    async def send(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            parts.append(bytes(message.get("body", b"")))

    answered = asyncio.Event()

    async def after_body() -> Message:
        # The caller is waiting for the whole answer: no disconnect until it is made (Starlette cancels a
        # streaming response whose client seems gone).
        await answered.wait()
        return {"type": "http.disconnect"}

    try:
        await app(scope, replay_receive(body, after_body), send)
    finally:
        answered.set()
    return status, headers, b"".join(parts)

