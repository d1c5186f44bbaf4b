"""fn.call / fn.acall / fn.map / fn.ref against a small real HTTP server on a loopback port."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import fn

from .conftest import FakePlatform, free_port


def test_call_sends_the_key_and_json_and_returns_the_result(fake_platform: FakePlatform) -> None:
    assert fn.call("add", a=2, b=3) == 5
    request = fake_platform.last()
    assert request["path"] == "/add"
    assert request["headers"]["authorization"] == "Bearer test-key-123"
    assert request["headers"]["content-type"] == "application/json"
    assert request["body"] == {"a": 2, "b": 3}


def test_call_round_trips_nested_json(fake_platform: FakePlatform) -> None:
    value = {"text": "héllo", "items": [1, 2.5, None, True], "nested": {"k": ["v"]}}
    assert fn.call("echo", value=value) == {"value": value}


def test_ref_is_reusable(fake_platform: FakePlatform) -> None:
    add = fn.ref("add")
    assert [add.call(a=i, b=1) for i in range(3)] == [1, 2, 3]
    assert len(fake_platform.requests) == 3


def test_function_url_comes_from_the_info_endpoint_without_fn_http_url(
        fake_platform: FakePlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FN_HTTP_URL")
    assert fn.call("add", a=1, b=1) == 2
    assert fn.call("add", a=2, b=2) == 4
    paths = [r["path"] for r in fake_platform.requests]
    assert paths == ["/v1/info", "/fns/add", "/fns/add"]  # the info answer is cached
    assert fake_platform.requests[0]["headers"]["authorization"] == "Bearer test-key-123"


def test_remote_exception_becomes_remote_error(fake_platform: FakePlatform) -> None:
    with pytest.raises(fn.RemoteError) as info:
        fn.call("keyerror", x=1)
    error = info.value
    assert error.status == 500
    assert error.error_type == "KeyError"
    assert error.request_id == "r1"
    assert error.message == "'x'"
    assert str(error) == "KeyError: 'x' (request id r1)"


@pytest.mark.parametrize(
    ("name", "cls", "status"),
    [("invalid", fn.ValidationFailed, 422), ("unauthorized", fn.Unauthorized, 401),
     ("no-such-function", fn.NotFound, 404), ("timeout", fn.Timeout, 504)],
)
def test_error_statuses_map_to_error_classes(fake_platform: FakePlatform, name: str,
                                             cls: type[fn.ClientError], status: int) -> None:
    with pytest.raises(cls) as info:
        fn.call(name, a=1)
    assert info.value.status == status
    assert info.value.request_id is not None


def test_validation_failure_carries_the_detail(fake_platform: FakePlatform) -> None:
    with pytest.raises(fn.ValidationFailed) as info:
        fn.call("invalid", a=1)
    assert info.value.detail == [{"field": "b", "message": "Field required"}]


def test_connection_refused_is_unavailable(monkeypatch: pytest.MonkeyPatch, fake_platform: FakePlatform) -> None:
    monkeypatch.setenv("FN_RETRY_S", "0")  # retried refusals: tests of their own below
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("FN_HTTP_URL", url)
    with pytest.raises(fn.Unavailable) as info:
        fn.call("add", a=1, b=2)
    assert info.value.status == 503
    assert f"{url}/add" in str(info.value)


def test_unreachable_control_plane_suggests_fnctl_up(monkeypatch: pytest.MonkeyPatch,
                                                      fake_platform: FakePlatform) -> None:
    monkeypatch.setenv("FN_RETRY_S", "0")
    monkeypatch.setenv("FN_API_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("FN_HTTP_URL")
    with pytest.raises(fn.Unavailable, match=r"cannot reach the platform at .*/v1/info.*'fnctl up'"):
        fn.call("add", a=1, b=2)


def test_client_side_timeout_is_timeout(fake_platform: FakePlatform) -> None:
    with pytest.raises(fn.Timeout) as info:
        fn.ref("hang", timeout=0.2).call()
    assert info.value.status == 504
    assert "timed out" in str(info.value)


def test_no_platform_configured_is_a_config_error() -> None:
    with pytest.raises(fn.ConfigError, match="'fnctl up'"):
        fn.call("add", a=1, b=2)


def test_map_keeps_input_order(fake_platform: FakePlatform) -> None:
    # Item x answers after (10 - x) * 10 ms, so completion order is the reverse of input order.
    assert fn.map("square", [{"x": x} for x in range(10)], concurrency=10) == [x * x for x in range(10)]
    assert len(fake_platform.requests) == 10


def test_map_of_nothing(fake_platform: FakePlatform) -> None:
    assert fn.map("square", []) == []


def test_map_raises_the_first_error(fake_platform: FakePlatform) -> None:
    with pytest.raises(fn.RemoteError, match="KeyError"):
        fn.map("keyerror", [{"x": 1}, {"x": 2}])


def test_ref_map_can_return_exceptions_in_place(fake_platform: FakePlatform) -> None:
    results = fn.ref("invalid").map([{"a": 1}, {"a": 2}], return_exceptions=True)
    assert len(results) == 2
    assert all(isinstance(r, fn.ValidationFailed) for r in results)


def test_map_rejects_zero_concurrency() -> None:
    with pytest.raises(ValueError, match=r"concurrency \(0\) must be >= 1"):
        fn.map("square", [{"x": 1}], concurrency=0)


def test_acall(fake_platform: FakePlatform) -> None:
    async def main() -> tuple[Any, BaseException | None]:
        result = await fn.acall("add", a=20, b=22)
        try:
            await fn.acall("keyerror", x=1)
        except fn.RemoteError as exc:
            return result, exc
        return result, None

    result, error = asyncio.run(main())
    assert result == 42
    assert isinstance(error, fn.RemoteError)
    assert error.error_type == "KeyError"
    assert error.request_id == "r1"
    assert fake_platform.requests[0]["headers"]["authorization"] == "Bearer test-key-123"
    assert fake_platform.requests[0]["body"] == {"a": 20, "b": 22}


def test_acall_runs_in_consecutive_event_loops(fake_platform: FakePlatform) -> None:
    assert asyncio.run(fn.acall("add", a=1, b=2)) == 3
    assert asyncio.run(fn.acall("add", a=3, b=4)) == 7


def test_acall_connection_refused_is_unavailable(monkeypatch: pytest.MonkeyPatch,
                                                 fake_platform: FakePlatform) -> None:
    monkeypatch.setenv("FN_RETRY_S", "0")
    monkeypatch.setenv("FN_HTTP_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(fn.Unavailable):
        asyncio.run(fn.acall("add", a=1, b=2))


def test_a_503_is_retried_after_its_retry_after_and_the_call_succeeds(fake_platform: FakePlatform) -> None:
    assert fn.call("busy") == "done"
    assert sum(r["path"].endswith("/busy") for r in fake_platform.requests) == 3


def test_retries_stop_at_the_budget_with_the_platforms_error(monkeypatch: pytest.MonkeyPatch,
                                                             fake_platform: FakePlatform) -> None:
    monkeypatch.setenv("FN_RETRY_S", "1.5")
    started = time.monotonic()
    with pytest.raises(fn.Unavailable, match="at capacity") as info:
        fn.call("always-busy")
    assert info.value.retry_after == 1
    assert sum(r["path"].endswith("/always-busy") for r in fake_platform.requests) == 2
    assert time.monotonic() - started < 4


def test_a_500_or_a_4xx_is_never_retried(fake_platform: FakePlatform) -> None:
    for name, cls in (("keyerror", fn.RemoteError), ("invalid", fn.ValidationFailed)):
        with pytest.raises(cls):
            fn.call(name, a=1)
        assert sum(r["path"].endswith(f"/{name}") for r in fake_platform.requests) == 1


def test_a_refused_connection_is_retried_until_the_budget(monkeypatch: pytest.MonkeyPatch,
                                                          fake_platform: FakePlatform) -> None:
    monkeypatch.setenv("FN_RETRY_S", "0.7")
    monkeypatch.setenv("FN_HTTP_URL", f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(fn.Unavailable):
        fn.call("add", a=1, b=2)
    assert 0.5 < time.monotonic() - started < 3  # 0.2 + 0.4 s of backoff, then the next wait is past the budget


def test_acall_retries_a_503_too(fake_platform: FakePlatform) -> None:
    assert asyncio.run(fn.acall("busy")) == "done"


@pytest.mark.parametrize("value", ["abc", "-1", "1e9"])
def test_a_bad_retry_budget_is_a_config_error_naming_it(monkeypatch: pytest.MonkeyPatch, fake_platform: FakePlatform,
                                                        value: str) -> None:
    monkeypatch.setenv("FN_RETRY_S", value)
    with pytest.raises(fn.ConfigError, match="FN_RETRY_S"):
        fn.call("add", a=1, b=2)


def test_a_flow_run_closes_its_inputs_and_a_timeout_says_when_closing_is_what_it_waits_for(
        fake_platform: FakePlatform) -> None:
    run = fn.flows.start("sides")  # the fake flow: front required, back optional
    run.put("front", "f")
    with pytest.raises(fn.Timeout, match=r"optional input\(s\) back not given and the inputs not closed: call "
                                         r"run\.close_inputs\(\) to finish without them"):
        run.result(timeout=0)
    state = run.close_inputs()
    assert state["inputs_closed"] is True and fake_platform.requests[-1]["method"] == "POST"
    assert fake_platform.requests[-1]["path"] == f"/flows/sides/runs/{run.id}/close"
    assert run.result(timeout=5) == {"front": "f", "back": None}
    with pytest.raises(fn.Conflict, match=f"inputs of run {run.id} are closed"):
        run.put("back", "b")
