"""Unit-test fixtures: no Ray, no network beyond loopback, every test in its own FN_HOME."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fnplatform.serving.http import error_response as _error

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Never read the developer's ~/.fn or FN_* settings; and no test starts Ray (several Ray calls start a
    local cluster on their own when none is connected: seconds per test, and not a unit test any more)."""
    home = tmp_path_factory.mktemp("fn-home")
    monkeypatch.setenv("FN_HOME", str(home))
    for name in ("FN_API_URL", "FN_API_KEY", "FN_HTTP_URL", "FN_ADMIN_KEY", "FN_METRICS_KEY", "FN_DATABASE_URL",
                 "FN_WEBHOOK_ALLOW_LOOPBACK", "FN_WEBHOOK_ALLOW_PRIVATE"):
        monkeypatch.delenv(name, raising=False)
    ray = sys.modules.get("ray")
    connected = ray is not None and ray.is_initialized()  # scripts/test runs these after the integration session
    yield home
    ray = sys.modules.get("ray")
    if not connected and ray is not None and ray.is_initialized():
        ray.shutdown()
        pytest.fail("this unit test started Ray (a Ray call with no cluster connected starts a local one)")


ProjectFactory = Callable[[dict[str, str]], Path]


@pytest.fixture
def make_project(tmp_path: Path) -> ProjectFactory:
    """Write {relative path: source} into a fresh project folder and return it."""
    counter = iter(range(1000))

    def make(files: dict[str, str]) -> Path:
        root = tmp_path / f"project{next(counter)}"
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip())
        root.mkdir(exist_ok=True)
        return root

    return make


def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class FakePlatform:
    """A tiny real HTTP server standing in for the function endpoints and ``/v1/info``, for the SDK's HTTP
    client (its error bodies come from the replica's own ``error_response``, not a copy of the format).
    Tests of calling functions without HTTP use ``fn.testing.local()`` instead."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # runs of the fake flow "sides", by id

    def last(self) -> dict[str, Any]:
        return self.requests[-1]


def _fake_app(platform: FakePlatform) -> Starlette:
    async def info(request: Request) -> JSONResponse:
        platform.requests.append({"path": request.url.path, "headers": dict(request.headers), "body": None})
        return JSONResponse({"http_url": f"{platform.url}/fns/"})

    async def function(request: Request) -> Response:
        body = json.loads(await request.body() or b"null")
        name = request.path_params["name"]
        platform.requests.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
        if name == "add":
            return JSONResponse(body["a"] + body["b"])
        if name == "echo":
            return JSONResponse(body)
        if name == "square":  # later items answer first, so order must come from the client
            await asyncio.sleep((10 - body["x"]) * 0.01)
            return JSONResponse(body["x"] ** 2)
        if name == "keyerror":
            return _error(500, "KeyError", "'x'", "r1")
        if name == "invalid":
            return _error(422, "ValidationFailed", "invalid arguments: b: Field required", "r2",
                          detail=[{"field": "b", "message": "Field required"}])
        if name == "unauthorized":
            return _error(401, "Unauthorized", "missing or invalid API key", "r3")
        if name == "timeout":
            return _error(504, "Timeout", "the function ran past its timeout_s (1 s)", "r4")
        if name == "hang":
            await asyncio.sleep(1.0)
            return JSONResponse("late")
        if name == "busy":  # at capacity for its first two calls (a full queue, a replica being replaced)
            if sum(r["path"].endswith("/busy") for r in platform.requests) <= 2:
                return _error(503, "Unavailable", "busy is at capacity", "r7", retry_after=0)
            return JSONResponse("done")
        if name == "always-busy":
            return _error(503, "Unavailable", "always-busy is at capacity", "r8", retry_after=1)
        return _error(404, "NotFound", f"no function named {name!r}", "r5")

    async def describe(request: Request) -> Response:
        name = request.path_params["name"]
        platform.requests.append({"path": request.url.path, "headers": dict(request.headers), "body": None})
        if name == "internal-step":  # deployed with internal=True: its endpoint (above) answers 404
            return JSONResponse({"name": name, "endpoint": None, "internal": True, "spec": {"internal": True}})
        return _error(404, "NotFound", f"no function named {name!r}", "r6")

    async def list_functions(request: Request) -> JSONResponse:
        row = {"pool": "cpu", "kind": "function", "version": 1, "status": "RUNNING", "running": 1, "target": 1}
        return JSONResponse([{**row, "name": "add", "endpoint": f"{platform.url}/add", "internal": False},
                             {**row, "name": "internal-step", "endpoint": None, "internal": True}])

    # The flow "sides": inputs front and back (optional), its output what it was given; as the flows gateway
    # answers (flows/gateway.py), in miniature.
    def run_state(run_id: str) -> dict[str, Any]:
        run = platform.runs[run_id]
        given, closed = run["inputs"], run["closed"]
        done = "front" in given and ("back" in given or closed)
        state = {"id": run_id, "flow": "sides", "status": "succeeded" if done else "running",
                 "inputs": {name: name in given for name in ("front", "back")}, "optional": ["back"],
                 "inputs_closed": closed, "steps": {"read": {"status": "succeeded" if done else "waiting"}}}
        return {**state, "output": {"front": given.get("front"), "back": given.get("back")}} if done else state

    async def flow_run(request: Request) -> Response:
        params = request.path_params
        platform.requests.append({"path": request.url.path, "method": request.method, "body": await request.body()})
        if params["flow"] != "sides" or params.get("run_id", "") not in {"", *platform.runs}:
            return _error(404, "NotFound", f"no run of flow {params['flow']!r}", "r9")
        if "run_id" not in params:
            run_id = f"run{len(platform.runs) + 1}"
            platform.runs[run_id] = {"inputs": {}, "closed": False}
            return JSONResponse({"id": run_id, "flow": "sides", "status": "pending"}, status_code=201)
        run_id, run = params["run_id"], platform.runs[params["run_id"]]
        if "input" in params:
            if run["closed"]:
                return _error(409, "Conflict", f"inputs of run {run_id} are closed: input {params['input']!r} is "
                                               f"refused", "r10")
            body = platform.requests[-1]["body"]
            json_body = request.headers.get("content-type") == "application/json"
            run["inputs"][params["input"]] = json.loads(body) if json_body else body.decode()
        elif request.url.path.endswith("/evidence"):
            if request.headers.get("authorization") != "Bearer test-key-123":  # fake_platform's key is the admin
                return _error(403, "Forbidden", "this API key has the role 'invoke'; this needs 'admin'", "r12")
            return JSONResponse({"run": run_id, "flow": "sides", "inputs": {"front": {"given": True, "sha256": "ab"}},
                                 "steps": {"read": {"version": 3}}})
        elif request.url.path.endswith("/close"):
            if "front" not in run["inputs"]:
                return _error(409, "Conflict", f"cannot close the inputs of run {run_id}: required input(s) 'front' "
                                               f"not given yet (only its optional inputs ['back'] may be missing); "
                                               f"give them first", "r11")
            run["closed"] = True
        return JSONResponse(run_state(run_id), status_code=200 if request.method == "GET" else 202)

    async def list_flows(request: Request) -> JSONResponse:
        return JSONResponse([{"name": "sides", "inputs": ["front", "back"], "optional": ["back"],
                              "steps": {"read": "read"}, "output": "read", "runs": []}])

    return Starlette(routes=[
        Route("/v1/info", info, methods=["GET"]),
        Route("/v1/functions", list_functions, methods=["GET"]),
        Route("/v1/functions/{name}", describe, methods=["GET"]),
        Route("/v1/flows", list_flows, methods=["GET"]),
        Route("/flows/{flow}/runs", flow_run, methods=["POST"]),
        Route("/flows/{flow}/runs/{run_id}", flow_run, methods=["GET"]),
        Route("/flows/{flow}/runs/{run_id}/inputs/{input}", flow_run, methods=["PUT"]),
        Route("/flows/{flow}/runs/{run_id}/close", flow_run, methods=["POST"]),
        Route("/flows/{flow}/runs/{run_id}/evidence", flow_run, methods=["GET"]),
        Route("/fns/{name}", function, methods=["POST"]),
        Route("/{name}", function, methods=["POST"]),
    ])


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakePlatform]:
    platform = FakePlatform()
    config = uvicorn.Config(_fake_app(platform), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off", ws="none", http="h11")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-platform", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake platform server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    platform.url = f"http://127.0.0.1:{port}"
    yield platform
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def fake_platform(fake_server: FakePlatform, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePlatform]:
    """The fake server, with FN_API_URL / FN_API_KEY / FN_HTTP_URL pointing at it and fresh SDK clients."""
    from fn import _client

    monkeypatch.setenv("FN_API_URL", fake_server.url)
    monkeypatch.setenv("FN_API_KEY", "test-key-123")
    monkeypatch.setenv("FN_HTTP_URL", fake_server.url)
    fake_server.requests.clear()
    fake_server.runs.clear()
    yield fake_server
    with _client._lock:
        for client in _client._sync_clients.values():
            client.close()
        _client._sync_clients.clear()
        _client._http_urls.clear()


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3 API over HTTP on loopback (moto's server), without the developer's AWS settings."""
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as patch:
        empty = tmp_path_factory.mktemp("aws")
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(empty / "config"),
                            "AWS_SHARED_CREDENTIALS_FILE": str(empty / "credentials")}.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
            patch.delenv(name, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            yield f"http://127.0.0.1:{server._server.server_port}"
        finally:
            server.stop()
