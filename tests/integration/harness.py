"""Test harness pieces shared by the integration tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import socket
import time
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
        job: dict[str, Any] = json.loads(result.output[start:]) if start >= 0 else {}
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
