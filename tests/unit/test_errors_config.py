"""The error hierarchy, the status -> error mapping, and where the SDK finds the platform."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

import fn
from fn._client import raise_for_response
from fn._config import CREDENTIALS_FILE, Settings, load_settings
from fn._errors import status_error

# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, fn.BadRequest), (401, fn.Unauthorized), (403, fn.Forbidden), (404, fn.NotFound),
     (409, fn.Conflict), (413, fn.PayloadTooLarge), (422, fn.ValidationFailed), (429, fn.TooManyRequests), (500, fn.RemoteError),
     (502, fn.Unavailable), (503, fn.Unavailable), (504, fn.Timeout),
     (418, fn.BadRequest), (599, fn.RemoteError)],
)
def test_status_error_maps_each_status_to_its_class(status: int, cls: type[fn.ClientError]) -> None:
    error = status_error(status, "boom", request_id="rid", error_type="T", detail={"k": 1})
    assert type(error) is cls
    assert error.status == status
    assert (error.message, error.request_id, error.error_type, error.detail) == ("boom", "rid", "T", {"k": 1})


def test_hierarchy() -> None:
    for cls in (fn.BadRequest, fn.ValidationFailed, fn.Unauthorized, fn.NotFound, fn.Conflict,
                fn.PayloadTooLarge, fn.RemoteError, fn.Unavailable, fn.Timeout):
        assert issubclass(cls, fn.ClientError)
    assert issubclass(fn.ClientError, fn.FnError)
    assert issubclass(fn.ConfigError, fn.FnError)
    assert issubclass(fn.SpecError, fn.FnError)
    assert issubclass(fn.SpecError, ValueError)
    assert not issubclass(fn.ConfigError, fn.ClientError)


def test_class_default_status_and_explicit_status() -> None:
    assert fn.NotFound("x").status == 404
    assert fn.Unavailable("x", status=502).status == 502


def test_str_carries_type_and_request_id() -> None:
    assert str(fn.RemoteError("'x'", error_type="KeyError", request_id="r1")) == "KeyError: 'x' (request id r1)"
    assert str(fn.NotFound("no such function")) == "no such function"


# --- raise_for_response -----------------------------------------------------------------------


def test_success_does_not_raise() -> None:
    raise_for_response(httpx.Response(200, json=5))
    raise_for_response(httpx.Response(204))


def test_platform_error_body_becomes_the_matching_error() -> None:
    body = {"error": {"type": "KeyError", "message": "'x'", "request_id": "r1", "detail": {"line": 3}}}
    with pytest.raises(fn.RemoteError) as info:
        raise_for_response(httpx.Response(500, json=body, headers={"x-request-id": "header-id"}))
    error = info.value
    assert (error.status, error.error_type, error.message, error.request_id, error.detail) == (
        500, "KeyError", "'x'", "r1", {"line": 3})


def test_request_id_falls_back_to_the_header() -> None:
    with pytest.raises(fn.NotFound) as info:
        raise_for_response(httpx.Response(404, json={"error": {"type": "NotFound", "message": "no add"}},
                                          headers={"x-request-id": "hdr-7"}))
    assert info.value.request_id == "hdr-7"
    assert info.value.message == "no add"


def test_validation_detail_is_kept() -> None:
    detail = [{"field": "b", "message": "Field required"}]
    with pytest.raises(fn.ValidationFailed) as info:
        raise_for_response(httpx.Response(422, json={"error": {"type": "ValidationFailed", "message": "bad",
                                                               "detail": detail}}))
    assert info.value.detail == detail


def test_non_json_error_body_is_the_message() -> None:
    with pytest.raises(fn.Unavailable) as info:
        raise_for_response(httpx.Response(502, text="upstream connect error\n"))
    assert info.value.message == "upstream connect error"
    assert info.value.error_type is None


def test_empty_error_body_uses_the_reason_phrase() -> None:
    with pytest.raises(fn.Unauthorized) as info:
        raise_for_response(httpx.Response(401))
    assert info.value.message == "Unauthorized"


def test_json_error_body_of_another_shape_is_kept_as_text() -> None:
    with pytest.raises(fn.BadRequest) as info:
        raise_for_response(httpx.Response(400, json={"detail": "nope"}))
    assert "nope" in info.value.message


# --- configuration ----------------------------------------------------------------------------


def test_fn_home_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FN_HOME", str(tmp_path / "a" / ".." / "home"))
    assert fn.fn_home() == (tmp_path / "home").resolve()


def test_fn_home_defaults_to_dot_fn_in_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FN_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert fn.fn_home() == (tmp_path / ".fn").resolve()


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FN_API_URL", "http://api.example:8080/")
    monkeypatch.setenv("FN_API_KEY", "k1")
    assert load_settings() == Settings(api_url="http://api.example:8080", api_key="k1", http_url=None)
    monkeypatch.setenv("FN_HTTP_URL", "http://fns.example:8000/")
    assert load_settings().http_url == "http://fns.example:8000"


def test_settings_from_the_credentials_file(isolated_env: Path) -> None:
    (isolated_env / CREDENTIALS_FILE).write_text(json.dumps(
        {"api_url": "http://127.0.0.1:8080", "api_key": "stored", "http_url": "http://127.0.0.1:8000"}))
    assert load_settings() == Settings(api_url="http://127.0.0.1:8080", api_key="stored",
                                       http_url="http://127.0.0.1:8000")


def test_environment_overrides_the_file_and_drops_its_http_url(isolated_env: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (isolated_env / CREDENTIALS_FILE).write_text(json.dumps(
        {"api_url": "http://127.0.0.1:8080", "api_key": "stored", "http_url": "http://127.0.0.1:8000"}))
    monkeypatch.setenv("FN_API_URL", "http://elsewhere:9000")
    settings = load_settings()
    assert settings.api_url == "http://elsewhere:9000"
    assert settings.api_key == "stored"
    assert settings.http_url is None  # the file's http_url belongs to the file's platform
    monkeypatch.setenv("FN_API_KEY", "from-env")
    assert load_settings().api_key == "from-env"


def test_no_platform_configured_says_what_to_do(isolated_env: Path) -> None:
    with pytest.raises(fn.ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "FN_API_URL and FN_API_KEY" in message
    assert "'fnctl up'" in message
    assert str(isolated_env / CREDENTIALS_FILE) in message


def test_api_url_without_key_is_not_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FN_API_URL", "http://api.example")
    with pytest.raises(fn.ConfigError, match="no platform configured"):
        load_settings()


def test_unreadable_credentials_file_names_the_file(isolated_env: Path) -> None:
    (isolated_env / CREDENTIALS_FILE).write_text("{not json")
    with pytest.raises(fn.ConfigError) as info:
        load_settings()
    assert f"cannot read {isolated_env / CREDENTIALS_FILE}" in str(info.value)
    assert "run 'fnctl up' again" in str(info.value)


def test_public_surface() -> None:
    assert sorted(fn.__all__) == sorted(set(fn.__all__))
    for name in fn.__all__:
        assert hasattr(fn, name), name


@pytest.mark.parametrize("content", ["null", "[1, 2]", '"text"'])
def test_credentials_file_that_is_not_an_object_is_a_config_error(isolated_env: Path, content: str) -> None:
    (isolated_env / CREDENTIALS_FILE).write_text(content)
    with pytest.raises(fn.ConfigError, match="expected a JSON object"):
        load_settings()


def test_client_errors_survive_pickling_with_every_field() -> None:
    import pickle

    error = fn.RemoteError("'x'", status=500, request_id="r1", error_type="KeyError", detail={"a": 1})
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is fn.RemoteError
    assert (copy.message, copy.status, copy.request_id, copy.error_type, copy.detail) == ("'x'", 500, "r1", "KeyError",
                                                                                          {"a": 1})
    assert str(copy) == str(error)
