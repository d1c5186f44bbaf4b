"""The web-app edge (serving.apps.AppEdge) in-process, around small Starlette apps: the key checked before the
app runs, the body limit on the bytes that arrive, the request id and version stamped on the answer, an app's
crash or overrun answered with the platform's JSON error, and the decorator's checks."""

from __future__ import annotations

import asyncio
import time
import warnings
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

import fn
from fnplatform.keys import Grant, hash_key
from fnplatform.serving.apps import AppEdge, answer_whole, app_scope
from fnplatform.serving.auth import KeyCache
from fnplatform.serving.hub import Hub
from fnplatform.serving.logs import LogShipper
from fnplatform.serving.metrics import Recorder

from .test_gateway import InProcessActor

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

KEY = "fn_app_key"
seen: list[str] = []


async def echo(request: Request) -> JSONResponse:
    seen.append(request.url.path)
    body = await request.body()
    return JSONResponse({"path": request.url.path, "item": request.path_params.get("item"), "size": len(body),
                         "q": request.query_params.get("q")})


async def crash(request: Request) -> JSONResponse:
    raise RuntimeError("the app broke")


async def slow(request: Request) -> PlainTextResponse:
    await asyncio.sleep(5)
    return PlainTextResponse("late")


async def chat(socket: WebSocket) -> None:
    await socket.accept()
    await socket.send_text((await socket.receive_text()).upper())
    await socket.close()


async def listen(socket: WebSocket) -> None:
    await socket.accept()
    while True:  # until the client goes: Starlette raises WebSocketDisconnect out of the app
        await socket.send_text(await socket.receive_text())


async def countdown(request: Request) -> StreamingResponse:
    async def lines() -> Any:
        for i in (3, 2, 1):
            yield f"{i}\n"
            await asyncio.sleep(0.01)

    return StreamingResponse(lines(), media_type="text/plain")


APP = Starlette(routes=[Route("/items/{item}", echo, methods=["GET", "POST", "DELETE"]), Route("/crash", crash),
                        Route("/slow", slow), Route("/countdown", countdown), WebSocketRoute("/ws", chat),
                        WebSocketRoute("/listen", listen)])


def edge(limit: int = 1000, grants: dict[str, Grant] | None = None, **options: Any) -> tuple[AppEdge, Recorder]:
    hub = Hub()
    grants = grants if grants is not None else {KEY: Grant(key_id="k1", role="invoke")}
    asyncio.run(hub.publish("keys", {hash_key(k): g.to_json() for k, g in grants.items()}))
    spec = fn.FunctionSpec(name="web", kind="asgi", **options)
    recorder = Recorder()
    return AppEdge(APP, spec, KeyCache(InProcessActor(hub)), recorder, LogShipper("web", "r1", None), 3, None,
                   body_limit=limit), recorder


def client(app: AppEdge) -> TestClient:
    return TestClient(app, root_path="/web", headers={"Authorization": f"Bearer {KEY}"})


def test_routes_params_and_methods_reach_the_app_with_stamps() -> None:
    app, recorder = edge()
    response = client(app).delete("/items/7?q=x")
    assert response.status_code == 200, response.text
    assert response.json() == {"path": "/items/7", "item": "7", "size": 0, "q": "x"}
    assert response.headers["fn-version"] == "3" and response.headers["x-request-id"]
    assert recorder.drain().counters  # the call was counted


def test_no_key_or_a_key_scoped_elsewhere_is_refused_before_the_app_runs() -> None:
    seen.clear()
    app, _ = edge(grants={KEY: Grant(key_id="k1", role="invoke"), "fn_other": Grant(key_id="k2", role="invoke",
                                                                                     functions=frozenset({"add"}))})
    anonymous = TestClient(app, root_path="/web").post("/items/1", content=b"x" * 10)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "Unauthorized"
    scoped = TestClient(app, root_path="/web", headers={"Authorization": "Bearer fn_other"}).get("/items/1")
    assert scoped.status_code == 403
    assert seen == []  # the app never saw either


def test_a_public_app_takes_calls_without_a_key() -> None:
    app, _ = edge(public=True)
    assert TestClient(app, root_path="/web").get("/items/2").json()["item"] == "2"


def test_the_body_limit_holds_without_a_content_length() -> None:
    app, _ = edge(limit=100)

    def chunks() -> Any:
        for _ in range(5):
            yield b"x" * 50

    streamed = client(app).post("/items/1", content=chunks())
    assert streamed.status_code == 413 and streamed.json()["error"]["detail"] == {"limit_bytes": 100}
    declared = client(app).post("/items/1", content=b"x" * 101)
    assert declared.status_code == 413
    assert client(app).post("/items/1", content=b"x" * 100).json()["size"] == 100


async def bare_crash(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("the app broke")


def test_a_crash_is_a_500_and_an_overrun_a_504() -> None:
    app, _ = edge(timeout_s=0.2)
    crashed = client(app).get("/crash")  # Starlette answers its own crash; the edge stamps it and logs
    assert crashed.status_code == 500 and crashed.headers["x-request-id"]
    app.app = bare_crash  # an ASGI app that answers nothing: the platform's JSON error
    bare = client(app).get("/anything")
    assert bare.status_code == 500 and bare.json()["error"] == {
        "type": "RuntimeError", "message": "the app broke", "request_id": bare.headers["x-request-id"]}
    app.app = APP
    started = time.monotonic()
    late = client(app).get("/slow")
    assert late.status_code == 504 and time.monotonic() - started < 3
    assert "timeout_s of 0.2 s" in late.json()["error"]["message"]


def test_websockets_need_the_key_on_the_handshake() -> None:
    app, _ = edge()
    with client(app).websocket_connect("/ws") as socket:
        socket.send_text("hi")
        assert socket.receive_text() == "HI"
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as refused, TestClient(app, root_path="/web").websocket_connect("/ws"):
        pass
    assert refused.value.code == 1008


def forwarded(method: str, path: str, query: bytes = b"") -> dict[str, Any]:
    """The scope of a request another version (or the gateway) passes on, as the app's replica is given it."""
    scope = {"type": "http", "http_version": "1.1", "scheme": "http", "method": method, "path": path,
             "raw_path": path.encode(), "query_string": query, "client": None, "server": None,
             "headers": [(b"authorization", f"Bearer {KEY}".encode())]}
    return app_scope(scope, "web")


def test_a_forwarded_request_is_answered_whole_at_the_apps_root() -> None:
    app, _ = edge()
    status, headers, body = asyncio.run(answer_whole(app, forwarded("POST", "/web/items/5", b"q=z"), b"abc"))
    assert status == 200 and b'"item":"5"' in body and b'"size":3' in body and (b"fn-version", b"3") in headers


def test_a_forwarded_call_to_a_streaming_route_gets_the_whole_stream() -> None:
    app, _ = edge()
    status, _, body = asyncio.run(answer_whole(app, forwarded("GET", "/web/countdown"), b""))
    assert (status, body) == (200, b"3\n2\n1\n")  # not cancelled as if its client had gone


def test_a_websocket_client_leaving_is_a_normal_end_not_a_500() -> None:
    app, recorder = edge()
    recorder.drain()
    with client(app).websocket_connect("/listen") as socket:
        socket.send_text("hi")
        assert socket.receive_text() == "hi"
    codes = {labels[2] for name, labels in recorder.drain().counters if name == "fn_requests_total"}
    assert codes == {"101"}, codes


def test_the_decorator_checks_its_target_and_options() -> None:
    with pytest.raises(fn.SpecError, match="builds and returns the app"):
        fn.asgi()(type("NotAFunction", (), {}))
    with pytest.raises(fn.SpecError, match="requires 'port'"):
        fn.asgi()(_needs_port)
    with pytest.raises(fn.SpecError, match="route does not apply to @fn"):
        fn.asgi(route="/x", name="web-r")(_builder)
    assert fn.asgi(name="web-ok", pool="api")(_builder).__fn_spec__.kind == "asgi"


def _needs_port(port: int) -> Any:
    return APP


def _builder() -> Any:
    return APP
