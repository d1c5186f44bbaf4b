"""The replica's request handling, in-process through its seam (``FunctionReplica.around``): keys, methods,
limits, validation, user errors, timeouts, the handle path, the forwarded-HTTP path and a batch's shape. No Ray.
(Serve's batcher itself needs a replica context: tests/integration covers batching end to end.)"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

import fn
from fnplatform.keys import Grant, hash_key
from fnplatform.serving import http
from fnplatform.serving.hub import Hub
from fnplatform.serving.logs import LogShipper
from fnplatform.serving.replica import FunctionReplica, Loaded
from fnplatform.serving.signature import Signature

from .test_gateway import InProcessActor, serve_like

KEY = "fn_test_key"


class Refused(fn.BadRequest):
    """A user's own error class: it must cross a hop as the fn error for its status, keeping its name."""


def add(a: int, b: int = 10) -> int:
    return a + b


def explode(x: int) -> int:
    raise KeyError("missing")


def refuse(x: int) -> int:
    raise Refused(f"{x} is refused", status=400)


def slow(x: int) -> int:
    time.sleep(1.0)
    return x


def size(data: bytes) -> int:
    return len(data)


def replica(target: Callable[..., Any], grants: dict[str, Grant] | None = None, **options: Any) -> FunctionReplica:
    spec = fn.FunctionSpec(name=target.__name__, **options)
    loaded = Loaded(target=target, signature=Signature(target, spec.name, batched=spec.max_batch_size > 1),
                    is_async=inspect.iscoroutinefunction(target))
    hub = Hub()
    grants = grants if grants is not None else {KEY: Grant(key_id="k1", role="invoke")}
    asyncio.run(hub.publish("keys", {hash_key(key): grant.to_json() for key, grant in grants.items()}))
    return FunctionReplica.around(spec, loaded, InProcessActor(hub), LogShipper(spec.name, "r1", None))


def client(target: Callable[..., Any], grants: dict[str, Grant] | None = None, **options: Any) -> TestClient:
    return TestClient(serve_like(replica(target, grants, **options)))


AUTH = {"Authorization": f"Bearer {KEY}"}


def test_a_call_with_a_valid_key_is_answered() -> None:
    response = client(add).post("/", json={"a": 2, "b": 3}, headers={**AUTH, "x-request-id": "r-9"})
    assert (response.status_code, response.json(), response.headers["x-request-id"]) == (200, 5, "r-9")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer fn_wrong"}, {"Authorization": KEY}])
def test_a_missing_or_wrong_key_is_401(headers: dict[str, str]) -> None:
    response = client(add).post("/", json={"a": 1}, headers=headers)
    assert response.status_code == 401
    assert "fnctl keys create" in response.json()["error"]["message"]


def test_a_public_function_needs_no_key() -> None:
    assert client(add, public=True).post("/", json={"a": 1}).json() == 11


def test_a_key_scoped_to_other_functions_is_403_naming_its_scope() -> None:
    response = client(add, {KEY: Grant(key_id="k1", role="invoke", functions=frozenset({"ocr"}))}).post(
        "/", json={"a": 1}, headers=AUTH)
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "Forbidden" and "only ocr, not 'add'" in response.json()["error"]["message"]


def test_a_key_over_its_rate_limit_is_429_with_retry_after() -> None:
    app = client(add, {KEY: Grant(key_id="k1", role="invoke", rate_limit=2)})
    statuses = [app.post("/", json={"a": 1}, headers=AUTH).status_code for _ in range(5)]
    assert statuses[:2] == [200, 200] and 429 in statuses[2:]
    limited = app.post("/", json={"a": 1}, headers=AUTH)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


def test_deeply_nested_json_is_400_not_500() -> None:
    response = client(add).post("/", content=b"[" * 100_000 + b"]" * 100_000,
                                headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 400 and "nested too deeply" in response.json()["error"]["message"]


def test_a_multipart_file_over_the_limit_without_a_length_is_413(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "MAX_BODY_BYTES", 64 * 1024)
    body = (b"--b\r\ncontent-disposition: form-data; name=\"data\"; filename=\"x\"\r\n\r\n"
            + b"x" * 200_000 + b"\r\n--b--\r\n")
    chunks = iter([body[i:i + 8192] for i in range(0, len(body), 8192)])  # chunked: no Content-Length
    response = client(size).post("/", content=chunks, headers={**AUTH, "content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413


def test_an_unsupported_method_is_405() -> None:
    assert client(add).delete("/", headers=AUTH).status_code == 405


def test_a_body_over_the_limit_without_a_length_is_413(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "MAX_BODY_BYTES", 64)
    response = client(size).post("/", content=iter([b"x" * 40, b"x" * 40]),
                                 headers={**AUTH, "content-type": "application/octet-stream"})
    assert response.status_code == 413


def test_bad_arguments_are_422_naming_the_field() -> None:
    response = client(add).post("/", json={"b": "x"}, headers=AUTH)
    assert response.status_code == 422
    assert {d["field"] for d in response.json()["error"]["detail"]} == {"a", "b"}


def test_a_user_exception_is_500_with_its_type_and_the_replica_keeps_serving() -> None:
    app = client(explode)
    first = app.post("/", json={"x": 1}, headers=AUTH)
    assert first.status_code == 500
    assert first.json()["error"]["type"] == "KeyError"
    assert app.post("/", json={"x": 2}, headers=AUTH).status_code == 500  # still answering


def test_past_timeout_s_is_504() -> None:
    response = client(slow, timeout_s=0.2).post("/", json={"x": 1}, headers=AUTH)
    assert response.status_code == 504
    assert "ran past its timeout_s of 0.2 s" in response.json()["error"]["message"]


def test_a_users_error_class_crosses_a_handle_hop_as_the_fn_error_for_its_status() -> None:
    with pytest.raises(fn.BadRequest) as info:
        asyncio.run(replica(refuse).call("rid-1", x=3))
    assert type(info.value) is fn.BadRequest  # the user's class need not be importable by the caller
    assert (info.value.error_type, info.value.message, info.value.request_id) == ("Refused", "3 is refused", "rid-1")


def test_a_user_exception_crosses_a_handle_hop_as_a_remote_error() -> None:
    with pytest.raises(fn.RemoteError) as info:
        asyncio.run(replica(explode).call("rid-2", x=1))
    assert (info.value.status, info.value.error_type, info.value.request_id) == (500, "KeyError", "rid-2")


def test_a_forwarded_request_is_answered_as_on_the_functions_own_route() -> None:
    scope = {"type": "http", "http_version": "1.1", "scheme": "http", "method": "POST", "path": "/add",
             "raw_path": b"/add", "root_path": "", "query_string": b"", "client": None, "server": None,
             "headers": [(b"content-type", b"application/json"), (b"authorization", f"Bearer {KEY}".encode())]}
    status, headers, body = asyncio.run(replica(add).http("fw-1", scope, b'{"a": 1, "b": 2}'))
    assert (status, body, dict(headers)[b"x-request-id"]) == (200, b"3", b"fw-1")
    scope["headers"] = [(b"content-type", b"application/json")]
    assert asyncio.run(replica(add).http("fw-2", scope, b'{"a": 1}'))[0] == 401


def test_an_internal_function_answers_http_with_the_404_of_a_missing_one_but_serves_handle_calls() -> None:
    internal = replica(add, internal=True)
    response = TestClient(serve_like(internal)).post("/add", json={"a": 1, "b": 2}, headers={**AUTH, "x-request-id": "i-1"})
    assert response.status_code == 404
    assert response.json() == {"error": {"type": "NotFound", "request_id": "i-1",
                                         "message": "no function is deployed at '/add'; list functions with 'fnctl ls'"}}
    assert response.json() == json.loads(http.not_found_response("/add", "i-1").body)  # the gateway's 404, word for word
    scope = {"type": "http", "http_version": "1.1", "scheme": "http", "method": "POST", "path": "/add",
             "raw_path": b"/add", "root_path": "", "query_string": b"", "client": None, "server": None,
             "headers": [(b"content-type", b"application/json"), (b"authorization", f"Bearer {KEY}".encode())]}
    status, _, body = asyncio.run(internal.http("i-2", scope, b'{"a": 1, "b": 2}'))
    assert (status, json.loads(body)["error"]["type"]) == (404, "NotFound")
    assert asyncio.run(internal.call("i-3", a=1, b=2)) == 3  # fn.call inside the cluster and flow steps still reach it


async def double(xs: list[int]) -> list[int]:
    return [2 * x for x in xs]


def half(xs: list[int]) -> list[int]:
    return xs[: len(xs) // 2]


def test_a_batch_is_one_call_with_a_list_per_parameter() -> None:
    """Serve's batcher hands over the queued calls; the replica makes them one call of the function."""
    assert asyncio.run(replica(double, max_batch_size=8)._run_batch([{"xs": 1}, {"xs": 2}, {"xs": 3}])) == [2, 4, 6]


def test_a_batch_answered_with_the_wrong_number_of_results_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="it got 4 inputs and returned 2 results"):
        asyncio.run(replica(half, max_batch_size=8)._run_batch([{"xs": i} for i in range(4)]))
