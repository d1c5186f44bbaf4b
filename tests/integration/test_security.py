"""Keys, roles, scopes, rate limits and body limits on the real platform, as an attacker or a careless
client meets them: over HTTP, on the control plane, the replicas, the catch-all gateway and the flows
gateway."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Platform

EXAMPLES = Path(__file__).resolve().parents[2] / "functions" / "examples"
MiB = 1024 * 1024


def make_key(platform: Platform, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{platform.api_url}/v1/keys", json={"name": "test", **body},
                          headers={"Authorization": f"Bearer {platform.key}"}, timeout=30)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def api(platform: Platform, method: str, path: str, key: str, headers: dict[str, str] | None = None,
        **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{platform.api_url}{path}", headers={"Authorization": f"Bearer {key}", **(headers or {})},
                         timeout=60, **kwargs)


def chunks(total_mib: int) -> Iterator[bytes]:
    for _ in range(total_mib):
        yield b"x" * MiB


def test_a_new_key_is_invoke_only_and_each_role_gets_403_beyond_it(basic: Platform) -> None:
    invoke = make_key(basic)
    assert invoke["role"] == "invoke"
    with basic.client(invoke["key"]) as client:
        assert client.post("/add", json={"a": 1, "b": 2}).json() == 3
    for method, path, body in (("POST", "/v1/deployments", {"bundle_sha256": "0" * 64}), ("POST", "/v1/keys", {"name": "x"}),
                               ("DELETE", "/v1/functions/add", None), ("GET", "/v1/functions/add/logs", None)):
        refused = api(basic, method, path, invoke["key"], json=body)
        assert refused.status_code == 403, (method, path, refused.text)
        assert refused.json()["error"]["type"] == "Forbidden"
    deploy = make_key(basic, role="deploy")
    assert api(basic, "GET", "/v1/functions/add/logs", deploy["key"]).status_code == 200
    assert api(basic, "POST", "/v1/keys", deploy["key"], json={"name": "x"}).status_code == 403
    assert api(basic, "GET", "/v1/keys", deploy["key"]).status_code == 403


def test_a_key_scoped_to_one_function_gets_403_on_others_over_every_path(basic: Platform) -> None:
    scoped = make_key(basic, functions=["add"])
    with basic.client(scoped["key"]) as client:
        assert client.post("/add", json={"a": 2, "b": 2}).json() == 4
        other = client.post("/size", content=b"abc", headers={"content-type": "application/octet-stream"})
        assert other.status_code == 403 and "may call only add" in other.json()["error"]["message"]
    listed = api(basic, "GET", "/v1/functions", scoped["key"]).json()
    assert [f["name"] for f in listed] == ["add"]
    assert api(basic, "GET", "/v1/functions/size", scoped["key"]).status_code == 404


def test_a_rate_limited_key_gets_429_with_retry_after(basic: Platform) -> None:
    limited = make_key(basic, rate_limit=1)
    with basic.client(limited["key"]) as client:
        responses = [client.post("/add", json={"a": 1, "b": 1}) for _ in range(6)]
    refused = [r for r in responses if r.status_code == 429]
    assert responses[0].status_code == 200 and refused, [r.status_code for r in responses]
    assert int(refused[0].headers["retry-after"]) >= 1
    assert {r.status_code for r in responses} <= {200, 429}


def test_the_last_admin_key_cannot_be_revoked(platform: Platform) -> None:
    own = platform.key.split("_")[1]  # fn_<id>_<secret>
    for key in api(platform, "GET", "/v1/keys", platform.key).json():  # other tests (the fuzzer) made admin keys
        if key["role"] == "admin" and not key["revoked"] and key["id"] != own:
            assert api(platform, "DELETE", f"/v1/keys/{key['id']}", platform.key).status_code == 204
    refused = api(platform, "DELETE", f"/v1/keys/{own}", platform.key)
    assert refused.status_code == 409 and "last admin key" in refused.json()["error"]["message"]


def test_an_unauthenticated_32_mib_chunked_body_is_refused_before_it_is_read(platform: Platform) -> None:
    started = time.perf_counter()
    for path in ("/v1/keys", "/v1/deployments"):
        try:
            response = httpx.post(f"{platform.api_url}{path}", content=chunks(32), timeout=60,
                                  headers={"content-type": "application/json"})
            assert response.status_code == 401
        except httpx.WriteError:  # the server answered 401 and closed while the client still sent
            pass
    assert time.perf_counter() - started < 30


def test_chunked_bodies_over_the_limit_are_413_on_functions_and_the_control_plane(basic: Platform) -> None:
    with basic.client() as client:
        try:
            response = client.post("/size", content=chunks(100), headers={"content-type": "application/octet-stream"})
            assert response.status_code == 413, response.text
        except httpx.WriteError:
            pass  # refused mid-upload: the connection closed before the client finished sending
        assert client.post("/size", content=b"ok", headers={"content-type": "application/octet-stream"}).json() == 2
    response = api(basic, "POST", "/v1/keys", basic.key, content=chunks(2), headers={"content-type": "application/json"})
    assert response.status_code == 413


@pytest.fixture(scope="module")
def flow(platform: Platform) -> Platform:
    job = platform.deploy(EXAMPLES / "flow")
    assert job["exit_code"] == 0, job["output"]
    return platform


def test_a_flow_run_belongs_to_the_key_that_started_it(flow: Platform) -> None:
    alice, bob = make_key(flow), make_key(flow)
    with flow.client(alice["key"]) as client:
        run_id = client.post("/flows/documents/runs").json()["id"]
        assert client.get(f"/flows/documents/runs/{run_id}").status_code == 200
        for bad in (b"\xef\xbb\xbf1", b"\xff\xfe1\x00"):  # JSON that would not load again once stored
            refused = client.put(f"/flows/documents/runs/{run_id}/inputs/front", content=bad,
                                 headers={"content-type": "application/json"})
            assert refused.status_code == 400, refused.text
        assert client.get(f"/flows/documents/runs/{run_id}").json()["inputs"]["front"] is False
    with flow.client(bob["key"]) as client:
        assert client.get(f"/flows/documents/runs/{run_id}").status_code == 404
        assert client.put(f"/flows/documents/runs/{run_id}/inputs/front", content=b"x").status_code == 404
        for wait in ("nan", "abc", "-1"):
            own = client.post("/flows/documents/runs").json()["id"]
            bad = client.get(f"/flows/documents/runs/{own}", params={"wait": wait})
            assert bad.status_code == 400 and "'wait'" in bad.json()["error"]["message"]
    listed = api(flow, "GET", "/v1/flows", bob["key"]).json()
    assert run_id not in {r["id"] for f in listed for r in f["runs"]}
    with flow.client() as admin:
        assert admin.get(f"/flows/documents/runs/{run_id}").status_code == 200
    scoped = make_key(flow, flows=["other"])
    with flow.client(scoped["key"]) as client:
        assert client.post("/flows/documents/runs").status_code == 403


def test_a_chunked_flow_input_over_the_flows_limit_is_413(platform: Platform) -> None:
    job = platform.deploy(Path(__file__).parent / "projects" / "flows")
    assert job["exit_code"] == 0, job["output"]
    with platform.client() as client:
        run_id = client.post("/flows/limited/runs").json()["id"]  # max_input_mb=0.5
        try:
            response = client.put(f"/flows/limited/runs/{run_id}/inputs/blob", content=chunks(4))
            assert response.status_code == 413 and "over the limit" in response.json()["error"]["message"]
        except httpx.WriteError:
            pass  # refused mid-upload
        state = client.get(f"/flows/limited/runs/{run_id}").json()
        assert state["status"] == "pending" and state["inputs"] == {"blob": False}  # nothing was accepted
