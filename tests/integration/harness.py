"""Test harness pieces shared by the integration tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from fnctl.main import cli


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Platform:
    api_url: str
    http_url: str
    key: str
    head_node: str
    gpu_node: str
    control: Any
    home: Path

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.Client(base_url=self.http_url, headers=headers, timeout=120)

    def fnctl(self, *args: str) -> Any:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    def deploy(self, path: Path | str) -> dict[str, Any]:
        result = self.fnctl("deploy", str(path), "--json")
        start = result.output.find("{")
        job: dict[str, Any] = json.JSONDecoder().raw_decode(result.output[start:])[0] if start >= 0 else {}
        job["exit_code"] = result.exit_code
        job["output"] = result.output
        return job


def wait_for(predicate: Any, timeout: float, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Run an ASGI app under uvicorn on a free loopback port; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=30, interval=0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
