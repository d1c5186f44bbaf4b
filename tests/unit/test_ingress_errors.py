"""HAProxy's own answers (a replica gone mid-request, none up, none in time) are fn's JSON error.

The config is rendered from Serve's template with fn's rewrites, by Serve's own renderer (no Ray started),
checked by the HAProxy binary Serve ships, and run on loopback against a fake replica.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import fn
from fn._client import raise_for_response
from fnplatform.serving import ingress_errors, ray_compat
from fnplatform.serving.http import error_response

from .conftest import free_port

ERROR_KEYS = set(json.loads(bytes(error_response(503, "Unavailable", "m", "r").body))["error"])
MESSAGES = {error.status: error.message for error in ingress_errors.INGRESS_ERRORS}


def haproxy_binary() -> str:
    from ray.serve._private.haproxy import get_haproxy_binary

    try:
        return get_haproxy_binary()
    except FileNotFoundError as exc:
        pytest.skip(f"no HAProxy binary to check the config with (ray[serve] ships one on Linux): {exc}")


@dataclass
class Ports:
    frontend: int
    replica: int  # the fake replica's
    gone: int  # nobody listens: a replica that is not there


def render(folder: Path, ports: Ports, monkeypatch: pytest.MonkeyPatch, *, patched: bool = True) -> Path:
    """The HAProxy config Serve writes for two functions, with fn's rewrites when *patched*."""
    from ray.serve._private import haproxy, haproxy_templates
    from ray.serve.config import HTTPOptions

    template = haproxy_templates.HAPROXY_CONFIG_TEMPLATE
    if patched:
        template, _ = ray_compat.patch_haproxy_template(template)
    monkeypatch.setattr(haproxy, "HAPROXY_CONFIG_TEMPLATE", template)  # Serve's module holds its own reference
    config = haproxy.HAProxyConfig(
        socket_path=str(folder / "admin.sock"), server_state_base=str(folder), server_state_file=str(folder / "state"),
        stats_port=free_port(), metrics_port=free_port(), metrics_socket_path=str(folder / "metrics.sock"),
        http_options=HTTPOptions(host="127.0.0.1", port=ports.frontend), has_received_routes=True,
        has_received_servers=True)
    backends = {
        "echo": haproxy.BackendConfig(name="echo", path_prefix="/echo", app_name="echo", timeout_server_s=1,
                                      servers=[haproxy.ServerConfig(name="echo-1", host="127.0.0.1", port=ports.replica)]),
        "gone": haproxy.BackendConfig(name="gone", path_prefix="/gone", app_name="gone",
                                      servers=[haproxy.ServerConfig(name="gone-1", host="127.0.0.1", port=ports.gone)]),
    }
    path = folder / ("haproxy.cfg" if patched else "serve.cfg")
    haproxy.HAProxyApi(config, backends, config_file_path=str(path))._generate_config_file_internal()
    return path


@pytest.fixture
def short_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="fnh", dir="/tmp"))  # HAProxy's socket paths are limited to 97 bytes
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_patched_template_answers_haproxys_own_errors_with_fns_json_error() -> None:
    from ray.serve._private import haproxy_templates

    template, applied = ray_compat.patch_haproxy_template(haproxy_templates.HAPROXY_CONFIG_TEMPLATE)
    assert applied == 9  # each rewrite still finds its line in this Ray's template
    assert "errorfile 50" not in template  # Serve's plain-text 500 for 502/503/504 is gone
    for status in (400, 408, 500, 502, 503, 504):
        assert template.count(f"http-error status {status} content-type application/json ") == 1
    assert ingress_errors.request_id_rules() in template and "unique-id-format %[uuid,regsub(-,,g)]" in template
    assert ray_compat.patch_haproxy_template(template) == (template, 0)  # applied once


def test_haproxy_accepts_the_rendered_config_with_no_warning_of_its_own(short_dir: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    binary = haproxy_binary()
    ports = Ports(free_port(), free_port(), free_port())

    def warnings(path: Path) -> set[str]:
        check = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        return {line.split(":", 1)[1] for line in check.stderr.splitlines() if "[WARNING]" in line or "[ALERT]" in line}

    ours, serves = warnings(render(short_dir, ports, monkeypatch)), warnings(render(short_dir, ports, monkeypatch,
                                                                                  patched=False))
    assert ours <= serves, ours - serves


class FakeReplica(socketserver.ThreadingTCPServer):
    """Healthy to HAProxy's checks. On /echo/headers it answers with the request's headers. On /echo/die it
    closes the connection unanswered, as a replica process that exits mid-request does; on /echo/slow it
    answers nothing until the test ends. It closes each connection after answering, except on /echo/keep,
    which leaves HAProxy an idle connection to reuse."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int) -> None:
        self.done = threading.Event()
        super().__init__(("127.0.0.1", port), _ReplicaHandler)


class _ReplicaHandler(socketserver.StreamRequestHandler):
    server: FakeReplica

    def handle(self) -> None:
        with contextlib.suppress(OSError):  # HAProxy gave up on this connection (the 504): nothing to answer
            self.answer()

    def answer(self) -> None:
        while line := self.rfile.readline():
            path = line.split()[1] if len(line.split()) > 1 else b""
            headers = b""
            while (header := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                headers += header
            if path == b"/echo/die":
                return
            if path == b"/echo/slow":
                self.server.done.wait(10)
                return
            keep = path == b"/echo/keep"
            body = headers if path == b"/echo/headers" else b"success"
            self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n" % len(body)
                             + (b"" if keep else b"connection: close\r\n") + b"\r\n" + body)
            if not keep:
                return


@pytest.fixture
def ingress(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """HAProxy on loopback with the rendered config, in front of a fake replica and a port nobody listens on."""
    binary = haproxy_binary()
    ports = Ports(free_port(), free_port(), free_port())
    config = render(short_dir, ports, monkeypatch)
    replica = FakeReplica(ports.replica)
    threading.Thread(target=replica.serve_forever, daemon=True).start()
    process = subprocess.Popen([binary, "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 5
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", ports.frontend)) == 0:
                    break
            assert time.monotonic() < deadline, "HAProxy did not listen within 5 s"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{ports.frontend}"
    finally:
        replica.done.set()
        process.terminate()
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()
        replica.shutdown()
        replica.server_close()


def fn_error(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json", response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == ERROR_KEYS
    assert error["request_id"] and response.headers["x-request-id"] == error["request_id"]
    return error


def test_haproxys_own_errors_are_fns_json_error_with_the_request_id(ingress: str) -> None:
    assert httpx.get(f"{ingress}/echo").text == "success"  # the fake replica serves through this HAProxy

    died = httpx.post(f"{ingress}/echo/die", json={})  # the replica is gone mid-request
    assert died.status_code == 502 and died.headers["retry-after"] == "1"
    assert fn_error(died) == {"type": "Unavailable", "message": MESSAGES[502], "request_id": died.headers["x-request-id"]}
    assert re.fullmatch(r"[0-9a-f]{32}", died.headers["x-request-id"])  # HAProxy's id is a W3C trace id

    caller_id = 'caller "7"\\'  # quoted and escaped in the JSON body, sent back as is in the header
    absent = httpx.post(f"{ingress}/gone", json={}, headers={"x-request-id": caller_id})  # no replica up
    assert absent.status_code == 503 and absent.headers["retry-after"] == "1"
    assert fn_error(absent) == {"type": "Unavailable", "message": MESSAGES[503], "request_id": caller_id}
    with pytest.raises(fn.Unavailable) as unavailable:  # the SDK reads it as any fn error
        raise_for_response(absent)
    assert unavailable.value.request_id == caller_id and unavailable.value.retry_after == 1

    late = httpx.post(f"{ingress}/echo/slow", json={})  # no answer within the backend's timeout server (1 s)
    assert late.status_code == 504 and "retry-after" not in late.headers
    assert fn_error(late)["type"] == "Timeout"


def test_a_replica_gone_mid_request_after_a_kept_alive_answer_is_fns_json_502_too(ingress: str) -> None:
    # With Serve's own backends (http-reuse always), HAProxy would reuse that idle replica connection and,
    # when it closed unanswered, close the caller's connection with no answer at all (RFC 9112 9.3.1 leaves
    # the retry to the client). fn's backends close replica connections after each answer instead.
    assert httpx.get(f"{ingress}/echo/keep").text == "success"  # the replica offers HAProxy its connection
    died = httpx.post(f"{ingress}/echo/die", json={})
    assert died.status_code == 502 and fn_error(died)["type"] == "Unavailable"


def test_the_sdk_raises_these_as_fn_unavailable_with_the_request_id(ingress: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"FN_HTTP_URL": ingress, "FN_API_URL": ingress, "FN_API_KEY": "k", "FN_RETRY_S": "0"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(fn.Unavailable) as died:
        fn.call("echo/die")
    assert (died.value.status, died.value.error_type, died.value.retry_after) == (502, "Unavailable", 1)
    assert died.value.message == MESSAGES[502] and died.value.request_id
    with pytest.raises(fn.Unavailable) as absent:
        fn.call("gone")
    assert (absent.value.status, absent.value.message) == (503, MESSAGES[503])


def test_fn_ingress_reuse_keeps_serves_connection_reuse_and_nothing_else_changes() -> None:
    from ray.serve._private import haproxy_templates

    template = haproxy_templates.HAPROXY_CONFIG_TEMPLATE
    closing, applied = ray_compat.patch_haproxy_template(template)
    reusing, reused = ray_compat.patch_haproxy_template(template, reuse=True)
    assert "option http-server-close" in closing and "option http-server-close" not in reusing
    assert applied == reused + 1 and reusing == closing.replace("    option http-server-close\n", "")


def test_a_path_no_route_answers_yet_is_fns_json_503_while_the_platform_restores_its_routes(ingress: str) -> None:
    # fn's catch-all gateway holds "/" once it runs; before that (a platform starting or restarting), Serve's
    # HAProxy answered a plain-text 404, which told callers the function did not exist.
    early = httpx.post(f"{ingress}/not-routed-yet", json={})
    assert early.status_code == 503 and early.headers["retry-after"] == "1"
    error = fn_error(early)
    assert error["type"] == "Unavailable" and "the platform is starting or restoring its functions" in error["message"]


def test_haproxy_stamps_each_request_with_when_it_arrived_replacing_a_callers_stamp(ingress: str) -> None:
    before = time.time()
    sent = httpx.post(f"{ingress}/echo/headers", json={}, headers={"fn-arrived": "1000"}).text
    after = time.time()
    stamps = [line.split(":", 1)[1].strip() for line in sent.splitlines() if line.lower().startswith("fn-arrived:")]
    assert len(stamps) == 1, sent  # the caller's own value is replaced, not kept beside HAProxy's
    assert before - 0.01 <= int(stamps[0]) / 1000 <= after + 0.01  # ms since the epoch, when HAProxy took it
