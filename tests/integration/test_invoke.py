"""Deployed from an S3 bundle, called three ways, and every bad input answered clearly."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from harness import Platform, wait_for

import fn


def test_http_sdk_and_fnctl_agree(basic: Platform) -> None:
    with basic.client() as client:
        response = client.post("/add", content=b'{"a": 2, "b": 3}',
                               headers={"content-type": "application/x-www-form-urlencoded"})  # what curl -d sends
        assert response.status_code == 200, response.text
        assert response.json() == 5
    assert fn.call("add", a=2, b=3) == 5
    assert fn.map("add", [{"a": i, "b": 1} for i in range(5)]) == [1, 2, 3, 4, 5]
    result = basic.fnctl("invoke", "add", "--data", '{"a": 2, "b": 3}')
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "5"


def test_acall_and_model_setup(basic: Platform) -> None:
    assert asyncio.run(fn.acall("reverser", text="abc")) == ">cba"


def test_bundle_came_from_s3(basic: Platform) -> None:
    import boto3

    described = basic.fnctl("describe", "add", "--json")
    info = json.loads(described.output)
    s3 = boto3.client("s3", endpoint_url=basic.control.store.config.endpoint, region_name="us-east-1")
    head = s3.head_object(Bucket="fn-bundles", Key=f"bundles/{info['bundle_sha256']}.zip")
    assert head["ContentLength"] > 0
    assert info["spec"]["pool"] == "cpu"
    assert info["versions"][-1]["status"] == "ready"


def test_bad_inputs(basic: Platform) -> None:
    with basic.client() as client:
        invalid = client.post("/add", json={"a": "x"})
        assert invalid.status_code == 422
        fields = {d["field"] for d in invalid.json()["error"]["detail"]}
        assert fields == {"a", "b"}
        assert client.post("/add", json={"a": 1, "b": 2, "c": 3}).status_code == 422
        not_json = client.post("/add", content=b"not json", headers={"content-type": "application/json"})
        assert not_json.status_code == 400
        assert "JSON" in not_json.json()["error"]["message"]
        unknown = client.post("/no-such-function", json={})
        assert unknown.status_code == 404
        assert unknown.json()["error"]["type"] == "NotFound"
    with basic.client(key="fn_wrong_key") as client:
        assert client.post("/add", json={"a": 1, "b": 2}).status_code == 401
    assert httpx.post(f"{basic.http_url}/add", json={"a": 1, "b": 2}).status_code == 401


def test_public_function_needs_no_key(basic: Platform) -> None:
    response = httpx.get(f"{basic.http_url}/hello", params={"name": "ada"}, timeout=60)
    assert response.status_code == 200
    assert response.json() == {"greeting": "hello ada"}


def test_function_that_raises_is_500_and_replica_keeps_serving(basic: Platform) -> None:
    with basic.client() as client:
        for _ in range(2):
            response = client.post("/boom", json={"key": "x"})
            assert response.status_code == 500
            error = response.json()["error"]
            assert error["type"] == "KeyError"
            assert error["message"] == "'x'"
            assert error["request_id"]
    with pytest.raises(fn.RemoteError) as raised:
        fn.call("boom", key="y")
    assert raised.value.error_type == "KeyError"
    assert raised.value.request_id


def test_timeout_is_504(basic: Platform) -> None:
    with basic.client() as client:
        response = client.post("/slow", json={"seconds": 5})
        assert response.status_code == 504
        assert "timeout_s" in response.json()["error"]["message"]
        assert client.post("/slow", json={"seconds": 0.01}).json() == "done"


def test_raw_and_multipart_bodies_reach_bytes_parameters(basic: Platform) -> None:
    payload = bytes(range(256)) * 10
    with basic.client() as client:
        raw = client.post("/size", content=payload, headers={"content-type": "image/png"})
        assert raw.json() == len(payload)
        multipart = client.post("/size", files={"data": ("x.bin", payload, "application/octet-stream")})
        assert multipart.json() == len(payload)


def test_logs_carry_the_request_id(basic: Platform) -> None:


    request_id = "req-logs-test-1"
    with basic.client() as client:
        assert client.post("/add", json={"a": 40, "b": 2}, headers={"x-request-id": request_id}).json() == 42

    def found() -> str | None:
        result = basic.fnctl("logs", "add")
        lines = [line for line in result.output.splitlines() if f"request={request_id}" in line]
        return "\n".join(lines) if any("adding 40 and 2" in line for line in lines) else None

    text = wait_for(found, timeout=15)
    assert "POST /add -> 200" in text


def test_unknown_function_in_cli_is_one_clear_line(basic: Platform) -> None:
    result = basic.fnctl("describe", "nope")
    assert result.exit_code == 1
    assert "no function named 'nope'" in result.output
    assert "Traceback" not in result.output


def test_control_plane_needs_a_key_and_serves_openapi(platform: Platform) -> None:
    headers = {"Authorization": f"Bearer {platform.key}"}
    assert httpx.get(f"{platform.api_url}/openapi.json", timeout=30).status_code == 401  # the API docs need a key too
    schema = httpx.get(f"{platform.api_url}/openapi.json", headers=headers, timeout=30).json()
    assert {"/v1/deployments", "/v1/functions", "/v1/keys"} <= set(schema["paths"])
    assert httpx.get(f"{platform.api_url}/v1/functions", timeout=30).status_code == 401
    invalid = httpx.post(f"{platform.api_url}/v1/keys", json={}, headers=headers, timeout=30)
    assert invalid.status_code == 422
    assert invalid.json()["error"]["detail"][0]["field"] == "name"
    created = httpx.post(f"{platform.api_url}/v1/keys", json={"name": "temp"}, headers=headers, timeout=30)
    assert created.status_code == 201
    basic_key = created.json()
    revoked = httpx.delete(f"{platform.api_url}/v1/keys/{basic_key['id']}", headers=headers, timeout=30)
    assert revoked.status_code == 204
    assert httpx.get(f"{platform.api_url}/v1/functions", timeout=30,
                     headers={"Authorization": f"Bearer {basic_key['key']}"}).status_code == 401
