"""Web apps (@fn.asgi) on a real cluster, through HAProxy and Serve: the example FastAPI service
(functions/examples/webapp) with its routes, path and query parameters, validation, SQLite lookups and two
models behind it; a streamed answer arriving chunk by chunk; a WebSocket round trip; the platform's key check
before the app sees a request, over HTTP and on a WebSocket handshake; the body limit on a body with no
Content-Length; and a handle call that names the app getting a clear 400."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import Platform
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

import fn

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).resolve().parents[2] / "functions" / "examples" / "webapp"


@pytest.fixture(scope="module")
def shop(platform: Platform) -> Platform:
    job = platform.deploy(EXAMPLE)
    assert job["exit_code"] == 0 and job["state"] == "succeeded", job["output"]
    return platform


def test_routes_validation_lookups_and_models_behind_the_app(shop: Platform) -> None:
    with shop.client() as client:
        listed = client.get("/shop/products", params={"category": "lighting", "limit": 5})
        assert listed.status_code == 200, listed.text
        assert [p["name"] for p in listed.json()] == ["lamp", "bulb"]
        assert listed.headers["fn-version"] and listed.headers["x-request-id"]
        one = client.get("/shop/products/3")
        assert one.status_code == 200 and one.json()["name"] == "chair", one.text
        assert isinstance(one.json()["suggested_price"], float)  # the price model answered through fn.acall
        assert client.get("/shop/products/99").json() == {"detail": "no product 99"}  # the app's own 404
        assert client.get("/shop/products/0").status_code == 422  # FastAPI validates the path parameter
        assert client.get("/shop/products", params={"limit": 1000}).status_code == 422
        posted = client.post("/shop/reviews", json={"product_id": 2, "author": "ana", "text": "great lamp, love it"})
        assert posted.status_code == 201, posted.text
        assert posted.json()["sentiment"]["label"] == "positive" and posted.json()["product"] == "lamp"
        bad = client.post("/shop/reviews", json={"product_id": 2, "author": "", "text": "x"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "author"]
        banned = client.post("/shop/reviews", json={"product_id": 2, "author": "bo", "text": "bad"},
                             headers={"x-shop-role": "banned"})
        assert banned.status_code == 403 and banned.json() == {"detail": "this reviewer may not post"}
        assert client.delete("/shop/products/2").status_code == 405  # the app's router answers the method


def test_the_platform_refuses_before_the_app_sees_a_request(shop: Platform) -> None:
    with httpx.Client(base_url=shop.http_url, timeout=60) as anonymous:
        refused = anonymous.post("/shop/reviews", json={"product_id": 2, "author": "ana", "text": "good"})
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["type"] == "Unauthorized"  # the platform's error body, not FastAPI's
        wrong = anonymous.get("/shop/products", headers={"Authorization": "Bearer fn_wrong"})
        assert wrong.status_code == 401
    with shop.client() as client:
        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds on the bytes that arrive
            block = b"x" * (1 << 20)
            for _ in range(70):
                yield block

        too_big = client.post("/shop/reviews", content=chunks(), headers={"content-type": "application/json"})
        assert too_big.status_code == 413, too_big.text[:200]
        assert too_big.json()["error"]["detail"]["limit_bytes"] == 64 * 1024 * 1024


def test_a_streamed_answer_arrives_chunk_by_chunk(shop: Platform) -> None:
    with shop.client() as client, client.stream("GET", "/shop/countdown", params={"n": 4, "delay_s": 0.5}) as response:
        assert response.status_code == 200
        started = time.monotonic()
        arrivals = []
        for line in response.iter_lines():
            arrivals.append((line, time.monotonic() - started))
    assert [line for line, _ in arrivals] == ["4", "3", "2", "1"]
    assert arrivals[0][1] < arrivals[-1][1] - 1.0, arrivals  # the first line came before the last was made


def test_a_websocket_round_trip_and_a_refused_handshake(shop: Platform) -> None:
    url = shop.http_url.replace("http://", "ws://") + "/shop/ws"
    with connect(url, additional_headers={"Authorization": f"Bearer {shop.key}"}, open_timeout=60) as socket:
        socket.send("love this bright lamp")
        assert socket.recv(timeout=60) == '{"echo":"love this bright lamp","label":"positive"}'
        socket.send("awful")
        assert '"label":"negative"' in str(socket.recv(timeout=60))
        socket.send("bye")
    with pytest.raises(InvalidStatus) as refused, connect(url, open_timeout=60):
        pass
    assert refused.value.response.status_code == 403


def test_a_handle_call_naming_the_app_gets_a_clear_error(shop: Platform) -> None:
    from fnplatform.serving.handles import HandleTransport

    handles = HandleTransport()  # what fn.call inside a function uses
    with pytest.raises(fn.BadRequest, match="is a web app"):
        handles.result(handles.submit("shop", {"text": "hello"}), 60)
