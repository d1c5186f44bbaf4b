"""The control plane's HTTP edge, in-process: roles per route, scopes, rate limits, and body limits
that hold on the bytes that arrive, checked before the API reads anything. A real registry (SQLite)
and store; the deployer and hub are the control-plane tests' fakes. No Ray."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

from fnplatform.control.api import create_app
from fnplatform.control.edge import Edge, rule_for
from fnplatform.control.plane import ControlPlane
from fnplatform.control.settings import PlatformSettings
from fnplatform.flows.state import FlowState
from fnplatform.storage.blobs import StoreConfig, open_store
from fnplatform.storage.registry import Registry

from .test_control_plane import FakeDeployer, InProcessHub

MiB = 1024 * 1024


@pytest.fixture
def plane(tmp_path: Path) -> ControlPlane:
    settings = PlatformSettings.from_env(home=tmp_path / "home",
                                         store=StoreConfig(kind="local", root=str(tmp_path / "store")))
    settings.home.mkdir()
    settings.max_bundle_bytes = 256 * 1024
    registry = Registry(settings.database_url)
    return ControlPlane(settings, registry, open_store(settings.store), FakeDeployer(), InProcessHub(),  # type: ignore[arg-type]
                        FlowState(settings.database_url))


@pytest.fixture
def api(plane: ControlPlane) -> Iterator[TestClient]:
    with TestClient(create_app(plane)) as client:
        yield client


def key(plane: ControlPlane, role: str, **scope: Any) -> dict[str, str]:
    _, plaintext = plane.registry.create_key(f"{role} key", role, **scope)
    return {"authorization": f"Bearer {plaintext}"}


def test_everything_but_healthz_needs_a_key_the_api_docs_included(api: TestClient) -> None:
    assert api.get("/healthz").status_code == 200
    for path in ("/v1/info", "/v1/functions", "/openapi.json", "/docs", "/v1/keys", "/nowhere"):
        response = api.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["type"] == "Unauthorized" and response.headers["x-request-id"]
    assert api.get("/v1/info", headers={"authorization": "Bearer fn_wrong"}).status_code == 401


def test_an_invoke_key_reads_but_cannot_deploy_remove_read_logs_or_manage_keys(plane: ControlPlane,
                                                                               api: TestClient) -> None:
    invoke = key(plane, "invoke")
    assert api.get("/v1/flows", headers=invoke).status_code == 200
    assert api.get("/openapi.json", headers=invoke).status_code == 200
    refused = {
        ("POST", "/v1/deployments", "deploy"), ("PUT", "/v1/bundles/" + "a" * 64, "deploy"),
        ("HEAD", "/v1/artifacts/" + "a" * 64, "deploy"), ("DELETE", "/v1/functions/add", "deploy"),
        ("GET", "/v1/functions/add/logs", "deploy"), ("GET", "/v1/keys", "admin"), ("POST", "/v1/keys", "admin"),
        ("DELETE", "/v1/keys/abcd", "admin"), ("GET", "/v1/secrets", "deploy"),
    }
    for method, path, needed in refused:
        response = api.request(method, path, headers=invoke, json={"name": "x"} if method == "POST" else None)
        assert response.status_code == 403, (method, path)
        if method != "HEAD":
            message = response.json()["error"]["message"]
            assert f"the role 'invoke'; this needs {needed!r}" in message and "--role" in message


def test_a_deploy_key_deploys_but_cannot_manage_keys(plane: ControlPlane, api: TestClient) -> None:
    deploy = key(plane, "deploy")
    assert api.get("/v1/functions/add/logs", headers=deploy).status_code == 404  # past the edge: no such function
    assert api.post("/v1/deployments", headers=deploy, json={"bundle_sha256": "0" * 64}).status_code == 404
    assert api.post("/v1/keys", headers=deploy, json={"name": "mine"}).status_code == 403


def test_an_admin_makes_narrow_keys_and_cannot_revoke_the_last_admin_key(plane: ControlPlane, api: TestClient) -> None:
    admin_record, admin_key = plane.registry.create_key("owner", "admin")
    admin = {"authorization": f"Bearer {admin_key}"}
    created = api.post("/v1/keys", headers=admin, json={"name": "kiosk", "functions": ["add"], "rate_limit": 5})
    assert created.status_code == 201
    body = created.json()
    assert (body["role"], body["functions"], body["flows"], body["rate_limit"]) == ("invoke", ["add"], [], 5)
    assert body["key"].startswith("fn_")
    bad = api.post("/v1/keys", headers=admin, json={"name": "x", "role": "root", "rate_limit": -1,
                                                    "functions": ["Bad Name"]})
    assert bad.status_code == 422
    assert {p["field"] for p in bad.json()["error"]["detail"]} == {"role", "rate_limit", "functions.0"}
    last = api.delete(f"/v1/keys/{admin_record.id}", headers=admin)
    assert last.status_code == 409 and "last admin key" in last.json()["error"]["message"]
    assert api.get("/v1/keys", headers=admin).status_code == 200  # still locked in, not out


def test_a_scoped_key_sees_only_its_functions(plane: ControlPlane, api: TestClient) -> None:
    scoped = key(plane, "invoke", functions=["ocr"])
    assert api.get("/v1/functions/add", headers=scoped).status_code == 404  # not "forbidden": it learns nothing


def test_the_control_plane_rate_limits_a_key(plane: ControlPlane, api: TestClient) -> None:
    limited = key(plane, "invoke", rate_limit=1)
    statuses = [api.get("/v1/flows", headers=limited).status_code for _ in range(4)]
    assert statuses[0] == 200 and 429 in statuses
    refused = api.get("/v1/flows", headers=limited)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1


class Body:
    """An ASGI receive that hands out *chunks* of 1 MiB lazily and counts what was taken."""

    def __init__(self, chunks: int) -> None:
        self.left, self.taken = chunks, 0

    async def __call__(self) -> dict[str, Any]:
        if self.left == 0:
            return {"type": "http.disconnect"}
        self.left -= 1
        self.taken += 1
        return {"type": "http.request", "body": b"[" * MiB, "more_body": self.left > 0}


def send_to(edge: Edge, method: str, path: str, headers: dict[str, str], body: Body) -> int:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(k.encode(), v.encode()) for k, v in headers.items()], "http_version": "1.1",
             "scheme": "http", "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8080)}
    asyncio.run(edge(scope, body, send))
    return int(sent[0]["status"])


def test_an_unauthenticated_32_mib_body_is_refused_before_a_byte_is_read(plane: ControlPlane) -> None:
    edge = create_app(plane)
    for path in ("/v1/keys", "/v1/deployments"):
        body = Body(32)
        assert send_to(edge, "POST", path, {"content-type": "application/json"}, body) == 401
        assert body.taken == 0


def test_a_chunked_json_body_over_1_mib_is_413_after_1_mib_is_read(plane: ControlPlane) -> None:
    edge = create_app(plane)
    admin = key(plane, "admin")
    body = Body(32)  # no Content-Length
    assert send_to(edge, "POST", "/v1/keys", {**admin, "content-type": "application/json"}, body) == 413
    assert body.taken == 2
    declared = Body(32)
    assert send_to(edge, "POST", "/v1/keys", {**admin, "content-length": str(32 * MiB)}, declared) == 413
    assert declared.taken == 0


def test_a_chunked_bundle_over_its_limit_is_413(plane: ControlPlane) -> None:
    edge = create_app(plane)
    body = Body(8)
    assert send_to(edge, "PUT", "/v1/bundles/" + "a" * 64, key(plane, "deploy"), body) == 413
    assert body.taken == 1  # the limit is 256 KiB: the first MiB is already over it


def test_bad_query_values_are_client_errors(plane: ControlPlane, api: TestClient) -> None:
    admin = key(plane, "admin")
    for wait in ("nan", "inf", "abc", "-1", "1e9"):
        response = api.get(f"/v1/deployments/nope?wait={wait}", headers=admin)
        assert response.status_code == 422, wait
        assert response.json()["error"]["detail"][0]["field"] == "query.wait"


def test_every_route_of_the_api_has_a_rule_and_only_healthz_is_open(plane: ControlPlane) -> None:
    edge = create_app(plane)
    app: Any = edge.app
    for route in app.routes:
        for method in getattr(route, "methods", None) or ():
            rule = rule_for(method, route.path.replace("{", "").replace("}", ""))
            assert (rule.role is None) == (route.path == "/healthz"), (method, route.path)


@pytest.mark.parametrize("path", ["/v1/secrets/a\nb", "/v1/keys/\n", "/\n", "/v1/functions/x\r\n/logs"])
def test_paths_with_control_characters_still_meet_a_rule(path: str) -> None:
    rule = rule_for("DELETE", path)
    assert rule.role in {"deploy", "admin", "invoke"}


def test_a_path_with_a_control_character_is_400_before_any_rule(plane: ControlPlane, api: TestClient) -> None:
    invoke = key(plane, "invoke")
    # The router's "$" matches before a final newline: "/v1/keys\n" would reach the keys route under the
    # catch-all rule. Refused whatever the key.
    for path in ("/v1/keys%0A", "/v1/deployments%0A", "/v1/secrets%0A", "/v1/functions/add/logs%0A"):
        response = api.post(path, headers=invoke, json={"name": "x", "role": "admin"})
        assert response.status_code == 400, path
        assert "control character" in response.json()["error"]["message"]
    assert not any(k.role == "admin" for k in plane.registry.keys())  # noqa: SIM118 - Registry.keys() is a query


def test_head_needs_the_role_of_get_and_unknown_paths_need_admin(plane: ControlPlane, api: TestClient) -> None:
    invoke = key(plane, "invoke")
    assert api.head("/v1/functions/add/logs", headers=invoke).status_code == 403
    assert api.get("/v1/nothing-here", headers=invoke).status_code == 403  # deny by default
    assert api.get("/v1/nothing-here", headers=key(plane, "admin")).status_code == 404


def test_scopes_are_for_invoke_keys_and_a_function_scope_runs_no_flows(plane: ControlPlane, api: TestClient) -> None:
    admin = key(plane, "admin")
    refused = api.post("/v1/keys", headers=admin, json={"name": "x", "role": "deploy", "functions": ["a"]})
    assert refused.status_code == 422 and "scope invoke keys only" in refused.json()["error"]["message"]
    scoped = api.post("/v1/keys", headers=admin, json={"name": "x", "functions": ["a"]}).json()
    assert (scoped["functions"], scoped["flows"]) == (["a"], [])  # a flow's steps could call any function


def test_info_tells_invoke_keys_where_to_call_and_nothing_of_the_store_or_ray(plane: ControlPlane,
                                                                              api: TestClient) -> None:
    invoke = api.get("/v1/info", headers=key(plane, "invoke")).json()
    assert set(invoke) == {"version", "api_url", "http_url"}
    deploy = api.get("/v1/info", headers=key(plane, "deploy")).json()
    assert {"store", "ray_address", "bundle_limits"} <= set(deploy)


def test_deploy_long_polls_do_not_hold_up_other_routes(plane: ControlPlane) -> None:
    """Twelve clients waiting on a deploy (each up to 2 s) must not delay a plain read: they wait in their
    own threads, not in the default executor that the other routes' database calls use."""
    from fnplatform.control.plane import DeployJob

    plane.jobs["j1"] = DeployJob(id="j1", bundle_sha256="0" * 64, functions=["add"])
    headers = key(plane, "admin")
    app = create_app(plane)

    async def run() -> float:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers) as client:
            waits = [asyncio.create_task(client.get("/v1/deployments/j1", params={"wait": 2})) for _ in range(12)]
            await asyncio.sleep(0.3)
            started = time.perf_counter()
            assert (await client.get("/v1/flows")).status_code == 200
            took = time.perf_counter() - started
            assert {r.status_code for r in await asyncio.gather(*waits)} == {200}
            return took

    assert asyncio.run(run()) < 1.0


def test_the_control_plane_keeps_a_bounded_history_of_deploy_jobs(plane: ControlPlane) -> None:
    from fnplatform.control.plane import KEPT_JOBS, DeployJob

    for i in range(KEPT_JOBS + 50):
        plane.jobs[f"done-{i}"] = DeployJob(id=f"done-{i}", bundle_sha256="0" * 64, functions=[], state="succeeded")
    plane.jobs["running"] = DeployJob(id="running", bundle_sha256="0" * 64, functions=["add"])
    plane._forget_old_jobs()
    assert len(plane.jobs) == KEPT_JOBS + 1 and "running" in plane.jobs and "done-0" not in plane.jobs
