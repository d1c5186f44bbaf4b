"""The baselines' processes: plain Ray Serve workers (bench/raw_serve.py) and the uvicorn floor app,
plus the rule that only one Ray cluster runs on this machine at a time."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _procs import free_port, reap, tree, wait_for_no_ray

HERE = Path(__file__).resolve().parent
FLOOR_KEY = "bench-key"


@dataclass
class RawServe:
    proc: subprocess.Popen[str]
    info: dict[str, Any]
    temp_dir: str
    lines: queue.Queue[str] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")  # EOF

    def readline(self, timeout_s: float) -> str:
        try:
            return self.lines.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError(f"raw Serve worker said nothing for {timeout_s:g} s") from None

    def replicas(self, app: str) -> list[dict[str, Any]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"replicas {app}\n")
        self.proc.stdin.flush()
        reply: list[dict[str, Any]] = json.loads(self.readline(60))
        return reply


def _haproxy_env(temp_dir: str) -> dict[str, str]:
    """HAProxy's files and side ports of its own, so it cannot collide with anyone else's on this host."""
    base = Path(temp_dir) / "haproxy"
    base.mkdir(parents=True, exist_ok=True)
    return {"RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(base / "haproxy.cfg"),
            "RAY_SERVE_HAPROXY_SOCKET_PATH": str(base / "admin.sock"),
            "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(base),
            "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(base / "server-state"),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port())}


@contextmanager
def raw_serve(mode: str, switches: dict[str, str] | None = None, ready_timeout_s: float = 300) -> Iterator[RawServe]:
    """A plain Ray Serve in its own process group and temp dir; stopped, and checked gone, on exit."""
    wait_for_no_ray()
    temp_dir = tempfile.mkdtemp(prefix="rs", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FN_"))}
    # Token auth as the platform runs it, with a token of its own (Ray would otherwise write ~/.ray).
    env |= {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1",  # only how long serve.shutdown() waits
            **(switches or {})}
    if env.get("RAY_SERVE_ENABLE_HA_PROXY") == "1":
        env |= _haproxy_env(temp_dir)
    log = open(Path(temp_dir) / "worker.log", "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([sys.executable, str(HERE / "raw_serve.py"), mode, str(free_port()), temp_dir],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                            start_new_session=True, env=env)
    worker = RawServe(proc=proc, info={}, temp_dir=temp_dir)
    label = f"raw Serve {mode} {' '.join(f'{k}={v}' for k, v in (switches or {}).items())}".strip()
    try:
        deadline = time.monotonic() + ready_timeout_s
        while not worker.info:
            line = worker.readline(max(1.0, deadline - time.monotonic()))
            if not line:
                log.flush()
                tail = (Path(temp_dir) / "worker.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{label} exited before it was ready:\n{tail}")
            if line.startswith("READY "):
                worker.info = json.loads(line[6:])
        yield worker
    finally:
        procs = tree(proc.pid)
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.write("exit\n")
            proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
        reap(label, procs, f"{temp_dir}/")
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


@contextmanager
def floor_app() -> Iterator[str]:
    """The plain Starlette app under uvicorn; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "baseline_app.py"), str(port)], start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(f"{url}/noop", json={"x": 1}, headers={"Authorization": f"Bearer {FLOOR_KEY}"},
                           timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the floor app did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
