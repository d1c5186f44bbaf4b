"""A replica that dies mid-request: the caller gets a 5xx error (never a hang), and the function serves again.

The fn-JSON check needs HAProxy in front (the local platform's ingress, RAY_SERVE_ENABLE_HA_PROXY=1): this
session's cluster runs Serve's Python proxy unless that is set before it starts, and the Python proxy answers
a dead replica with its own plain-text 500. HAProxy's answers are also checked without Ray in
tests/unit/test_ingress_errors.py.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator

import httpx
import pytest
from harness import Platform, wait_for

import fn

HAPROXY = os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") == "1"


@pytest.fixture(scope="module")
def fragile(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("fragile")
    (root / "main.py").write_text(textwrap.dedent("""
        import os

        import fn

        @fn.function(cpus=0.25, idle_timeout_s=30)
        def fragile(crash: bool = False) -> str:
            if crash:
                os._exit(1)  # the replica process dies with the request in flight
            return "alive"
    """))
    job = platform.deploy(root)
    assert job["exit_code"] == 0, job["output"]
    yield platform
    platform.fnctl("rm", "fragile")


def _crash(platform: Platform) -> httpx.Response | None:
    """The answer to a call that kills its replica, or None when the connection closed unanswered."""
    assert fn.call("fragile") == "alive"  # a replica is up, so the crash happens mid-request
    with platform.client() as client:
        try:
            response: httpx.Response = client.post("/fragile", json={"crash": True}, timeout=60)
        except httpx.RemoteProtocolError:  # HAProxy on a reused replica connection: HTTP lets the client retry
            return None
    return response


def _serves_again() -> bool:
    try:
        return bool(fn.call("fragile") == "alive")
    except fn.ClientError:  # Serve has not noticed the dead replica yet, or is starting another
        return False


def test_a_replica_dying_mid_request_gets_a_5xx_and_the_function_recovers(fragile: Platform) -> None:
    response = _crash(fragile)
    if response is None:
        assert HAPROXY, "only HAProxy closes a caller's connection unanswered (when its replica connection was reused)"
    else:
        assert 500 <= response.status_code < 600, response.text
    wait_for(_serves_again, timeout=90, interval=1)


def test_an_sdk_caller_gets_an_fn_error_when_the_replica_dies(fragile: Platform) -> None:
    assert fn.call("fragile") == "alive"
    with pytest.raises(fn.ClientError) as failed:
        fn.call("fragile", crash=True)
    assert failed.value.status >= 500
    wait_for(_serves_again, timeout=90, interval=1)


@pytest.mark.skipif(not HAPROXY, reason="this cluster runs Serve's Python proxy, whose 500 for a dead replica is "
                    "its own plain text; set RAY_SERVE_ENABLE_HA_PROXY=1 and FN_HAPROXY_LOCAL_ONLY=1 before it starts")
def test_through_haproxy_the_error_is_fns_json_never_html(fragile: Platform) -> None:
    response = _crash(fragile)
    if response is not None:
        assert response.headers["content-type"] == "application/json", response.text
        error = response.json()["error"]
        assert set(error) == {"type", "message", "request_id"} and error["type"] == "Unavailable"
        assert response.status_code == 502 and response.headers["retry-after"] == "1"
        assert response.headers["x-request-id"] == error["request_id"]
    wait_for(_serves_again, timeout=90, interval=1)
