"""Shared by the benchmarks: a throwaway local platform (fresh FN_HOME, free ports, stopped at the
end), percentiles, and the printed table."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from _procs import reap, tree, wait_for_no_ray


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class LocalPlatform:
    env: dict[str, str]
    api: httpx.Client
    http_url: str
    key: str
    home: Path | None = None

    @property
    def state(self) -> dict[str, object]:
        assert self.home is not None
        state: dict[str, object] = json.loads((self.home / "platform.json").read_text())
        return state

    def processes(self) -> list[psutil.Process]:
        """The platform's processes: its server and everything under it (GCS, raylet, workers, agents)."""
        return tree(int(self.state["pid"]))  # type: ignore[call-overload]

    def deploy(self, project: str | Path) -> float:
        """fnctl deploy PROJECT; its wall time in seconds."""
        start = time.perf_counter()
        self.fnctl("deploy", str(project))
        return time.perf_counter() - start

    def replicas(self, name: str) -> list[dict[str, object]]:
        found: list[dict[str, object]] = self.api.get(f"/v1/functions/{name}").json()["replicas"]
        return found

    def log_lines(self, name: str) -> list[str]:
        found: list[str] = self.api.get(f"/v1/functions/{name}/logs", params={"limit": 5000}).json()["lines"]
        return found

    def fnctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "fnctl.main", *args], env=self.env, capture_output=True,
                              text=True, check=False, timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"fnctl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def running(self, name: str) -> int:
        rows = self.api.get("/v1/functions").json()
        return next(int(r["running"]) for r in rows if r["name"] == name)

    def wait_for_zero(self, names: list[str], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while any(self.running(n) for n in names):
            if time.monotonic() > deadline:
                raise SystemExit(f"{names} did not scale to zero within {timeout} s")
            time.sleep(0.5)
        time.sleep(1)


@contextmanager
def local_platform(*up_args: str, extra_env: dict[str, str] | None = None) -> Iterator[LocalPlatform]:
    """A throwaway platform; waits first while any Ray cluster runs here, and checks its own is gone after."""
    wait_for_no_ray()
    home = Path(tempfile.mkdtemp(prefix="fnb", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FN_", "RAY_"))} | {"FN_HOME": str(home)}
    env |= extra_env or {}
    api_port, http_port = free_port(), free_port()
    probe = LocalPlatform(env=env, api=httpx.Client(), http_url="", key="")
    probe.fnctl("up", "--api-port", str(api_port), "--http-port", str(http_port), *up_args)
    creds = json.loads((home / "credentials.json").read_text())
    api = httpx.Client(base_url=creds["api_url"], headers={"Authorization": f"Bearer {creds['api_key']}"}, timeout=60)
    platform = LocalPlatform(env=env, api=api, http_url=creds["http_url"], key=creds["api_key"], home=home)
    procs = platform.processes()
    try:
        yield platform
    finally:
        api.close()
        procs += [p for p in platform.processes() if p not in procs]
        probe.fnctl("down")
        reap(f"platform {home}", procs, f"{home}/")
        shutil.rmtree(home, ignore_errors=True)


def print_table(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'value'.ljust(value_width)}  note")
    for name, value, note in rows:
        print(f"{name.ljust(width)}  {value.ljust(value_width)}  {note}")


def save(name: str, results: dict[str, object]) -> None:
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=2))
