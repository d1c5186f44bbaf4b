"""Request bodies -> validated keyword arguments, through a real Starlette app and TestClient (no sockets)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 behind its TestClient; httpx (which the SDK uses) still works.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient
import fn
from fnplatform.serving import http as _http
from fnplatform.serving.http import client_error_response, error_response, read_arguments, result_response
from fnplatform.serving.signature import Signature

ClientFactory = Callable[[Callable[..., Any]], TestClient]


@pytest.fixture
def client_for() -> Iterator[ClientFactory]:
    """A TestClient for an app whose one endpoint reads, validates and calls *target* like a replica."""
    clients: list[TestClient] = []

    def make(target: Callable[..., Any]) -> TestClient:
        signature = Signature(target, "target")

        async def endpoint(request: Request) -> Response:
            try:
                values = signature.validate(await read_arguments(request, signature.bytes_params))
            except fn.ClientError as exc:
                return client_error_response(exc, "req-1")
            return result_response(target(**values), "req-1")

        client = TestClient(Starlette(routes=[Route("/", endpoint, methods=["GET", "POST"])]))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def add(a: int, b: int = 10) -> int:
    return a + b


def size(data: bytes) -> dict[str, Any]:
    return {"size": len(data), "head": data[:4].decode("latin-1")}


def caption(image: bytes, prompt: str = "") -> dict[str, Any]:
    return {"size": len(image), "prompt": prompt}


def echo(**kwargs: Any) -> dict[str, Any]:
    return kwargs


# --- bodies -----------------------------------------------------------------------------------


def test_json_body(client_for: ClientFactory) -> None:
    response = client_for(add).post("/", json={"a": 2, "b": 3})
    assert response.status_code == 200
    assert response.json() == 5
    assert response.headers["x-request-id"] == "req-1"


def test_defaults_and_lax_coercion(client_for: ClientFactory) -> None:
    client = client_for(add)
    assert client.post("/", json={"a": 1}).json() == 11
    assert client.post("/", json={"a": "4", "b": "5"}).json() == 9


def test_curl_d_default_content_type_with_a_json_body(client_for: ClientFactory) -> None:
    response = client_for(add).post("/", content=b'{"a": 2, "b": 3}',
                                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    assert response.json() == 5


def test_text_plain_and_missing_content_type_are_read_as_json(client_for: ClientFactory) -> None:
    client = client_for(add)
    assert client.post("/", content=b'{"a": 1, "b": 1}', headers={"content-type": "text/plain"}).json() == 2
    assert client.post("/", content=b'{"a": 1, "b": 2}').json() == 3


def test_query_string_for_get(client_for: ClientFactory) -> None:
    response = client_for(add).get("/", params={"a": "7", "b": "8"})
    assert response.json() == 15


def test_raw_bytes_go_to_the_single_bytes_parameter(client_for: ClientFactory) -> None:
    payload = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    response = client_for(size).post("/", content=payload, headers={"content-type": "image/png"})
    assert response.status_code == 200
    assert response.json() == {"size": len(payload), "head": "\x89PNG"}


def test_non_json_text_goes_to_the_single_bytes_parameter(client_for: ClientFactory) -> None:
    response = client_for(size).post("/", content=b"hello world", headers={"content-type": "text/plain"})
    assert response.json() == {"size": 11, "head": "hell"}


def test_json_object_still_maps_to_parameters_with_a_bytes_parameter(client_for: ClientFactory) -> None:
    response = client_for(size).post("/", json={"data": "abc"})
    assert response.json() == {"size": 3, "head": "abc"}


@pytest.mark.parametrize("n", [1000, 2 * 1024 * 1024])  # the second spools to a temporary file
def test_multipart_file_and_field(client_for: ClientFactory, n: int) -> None:
    image = b"\xff\xd8\xff" + b"\x00" * n
    response = client_for(caption).post("/", files={"image": ("cat.jpg", image, "image/jpeg")},
                                        data={"prompt": "a cat"})
    assert response.status_code == 200
    assert response.json() == {"size": len(image), "prompt": "a cat"}


def test_empty_body_means_no_arguments(client_for: ClientFactory) -> None:
    assert client_for(echo).post("/").json() == {}


def test_extra_arguments_go_to_var_keyword(client_for: ClientFactory) -> None:
    assert client_for(echo).post("/", json={"x": 1, "y": [2]}).json() == {"x": 1, "y": [2]}


def test_non_json_body_is_bad_request(client_for: ClientFactory) -> None:
    response = client_for(add).post("/", content=b"a=1&b=2",
                                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "BadRequest"
    assert "the body is not valid JSON" in error["message"]
    assert error["request_id"] == "req-1"


@pytest.mark.parametrize(("body", "kind"), [(b"[1, 2]", "list"), (b'"text"', "str"), (b"3", "int")])
def test_json_that_is_not_an_object_is_bad_request(client_for: ClientFactory, body: bytes, kind: str) -> None:
    response = client_for(add).post("/", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["message"].endswith(f"not {kind}")


def test_binary_content_type_without_a_bytes_parameter_is_bad_request(client_for: ClientFactory) -> None:
    response = client_for(add).post("/", content=b"\x00\x01", headers={"content-type": "application/octet-stream"})
    assert response.status_code == 400
    assert "needs a function with exactly one bytes parameter" in response.json()["error"]["message"]


def test_body_over_the_limit_is_payload_too_large(client_for: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_http, "MAX_BODY_BYTES", 100)
    response = client_for(size).post("/", content=b"x" * 101, headers={"content-type": "image/png"})
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "PayloadTooLarge"
    assert "over the limit of 100" in response.json()["error"]["message"]


# --- validation -------------------------------------------------------------------------------


def test_missing_argument_is_422_naming_the_field(client_for: ClientFactory) -> None:
    response = client_for(add).post("/", json={"b": 1})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "ValidationFailed"
    assert error["detail"] == [{"field": "a", "message": "Field required"}]
    assert "a: Field required" in error["message"]
    assert "(parameters: a, b)" in error["message"]


def test_wrong_type_and_unexpected_argument_are_both_reported(client_for: ClientFactory) -> None:
    response = client_for(add).post("/", json={"a": "two", "c": 1})
    assert response.status_code == 422
    fields = {item["field"]: item["message"] for item in response.json()["error"]["detail"]}
    assert set(fields) == {"a", "c"}
    assert "valid integer" in fields["a"]
    assert fields["c"] == "unexpected argument"


def test_nested_errors_name_the_path() -> None:
    def total(items: list[int]) -> int:
        return sum(items)

    with pytest.raises(fn.ValidationFailed) as info:
        Signature(total, "total").validate({"items": [1, "x"]})
    assert info.value.detail[0]["field"] == "items.1"
    assert info.value.status == 422


def test_parameters_with_awkward_names() -> None:
    """Names pydantic reserves (leading underscore) or that shadow BaseModel attributes still work."""

    def odd(_private: int, json: bool = False, copy: str = "", schema: dict[str, int] | None = None) -> None:
        return None

    signature = Signature(odd, "odd")
    assert signature.names == ["_private", "json", "copy", "schema"]
    assert signature.validate({"_private": "1", "json": True, "schema": {"a": 1}}) == {
        "_private": 1, "json": True, "copy": "", "schema": {"a": 1}}
    with pytest.raises(fn.ValidationFailed) as info:
        signature.validate({"json": True})
    assert info.value.detail == [{"field": "_private", "message": "Field required"}]


def test_model_call_signature_skips_self() -> None:
    class Model:
        def __call__(self, text: str) -> str:
            return text

    signature = Signature(Model().__call__, "model")
    assert signature.names == ["text"]
    assert signature.validate({"text": "hi"}) == {"text": "hi"}


def test_bytes_parameters_are_known() -> None:
    def optional(data: bytes | None = None, n: int = 0) -> None:
        return None

    assert Signature(optional, "o").bytes_params == ["data"]
    assert Signature(caption, "c").bytes_params == ["image"]
    assert Signature(add, "a").bytes_params == []


def test_unresolvable_annotations_fall_back_to_any() -> None:
    def later(x: NotDefinedAnywhere) -> None:  # type: ignore[name-defined]  # noqa: F821
        return None

    assert Signature(later, "later").validate({"x": object}) == {"x": object}


# --- responses --------------------------------------------------------------------------------


def test_bytes_result_is_octet_stream() -> None:
    response = result_response(b"\x00\x01", "rid")
    assert response.media_type == "application/octet-stream"
    assert response.body == b"\x00\x01"
    assert response.headers["x-request-id"] == "rid"


def test_unserializable_result_is_a_500_naming_the_type() -> None:
    response = result_response(object(), "rid")
    assert response.status_code == 500
    assert b'"type": "ResultNotSerializable"' in response.body
    assert b"returned a object that cannot be JSON-encoded" in response.body


def test_error_response_shape() -> None:
    response = error_response(500, "KeyError", "'x'", "r1")
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "r1"
    assert response.body == b'{"error": {"type": "KeyError", "message": "\'x\'", "request_id": "r1"}}'


def test_error_response_round_trips_through_the_sdk() -> None:
    import httpx

    from fn._client import raise_for_response

    original = fn.ValidationFailed("bad", status=422, detail=[{"field": "a", "message": "m"}])
    response = client_error_response(original, "r9")
    with pytest.raises(fn.ValidationFailed) as info:
        raise_for_response(httpx.Response(response.status_code, content=bytes(response.body),
                                          headers=dict(response.headers)))
    assert (info.value.message, info.value.request_id, info.value.detail) == ("bad", "r9", original.detail)
