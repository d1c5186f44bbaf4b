"""Processes: the platform under test (a throwaway ``fnctl up`` on a fresh FN_HOME and free ports), the
one-Ray-cluster-at-a-time rule, process trees, and making sure a stopped cluster is gone."""

from __future__ import annotations

import contextlib
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

LEFTOVERS: list[str] = []  # processes a stopped cluster left behind; the suite reports them


def raylets() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if (proc.info["name"] == "raylet" or (cmdline and os.path.basename(cmdline[0]) == "raylet")) and _alive(proc):
            found.append(proc)
    return found


def wait_for_no_ray(poll_s: float = 60) -> None:
    """Never run two Ray clusters at once on this machine: wait while anyone's raylet is running."""
    while found := raylets():
        print(f"waiting: a Ray cluster is running (raylet pid {', '.join(str(p.pid) for p in found)}); "
              f"re-checking in {poll_s:g} s", flush=True)
        time.sleep(poll_s)


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _survivors(procs: list[psutil.Process], marker: str) -> list[psutil.Process]:
    alive = [p for p in procs if _alive(p)]
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if marker in " ".join(proc.info["cmdline"] or []) and proc.pid != os.getpid() and proc not in alive:
                alive.append(proc)
    return [p for p in alive if _alive(p)]


def reap(label: str, procs: list[psutil.Process], marker: str, grace_s: float = 5) -> None:
    """Make sure *procs* (a stopped cluster's process tree) and anything naming *marker* are gone.

    Ray's dashboard and runtime-env agents outlive ``ray.shutdown()`` and ignore SIGTERM, so
    survivors get SIGKILL after a grace period; anything alive after that is recorded as left behind.
    """
    deadline = time.monotonic() + grace_s
    while (alive := _survivors(procs, marker)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    time.sleep(1)
    if left := _survivors(procs, marker):
        LEFTOVERS.extend(f"{label}: pid {p.pid} {p.name()}" for p in left)
        print(f"warning: {label} left {len(left)} processes behind: {[p.pid for p in left]}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
def local_platform(*up_args: str, extra_env: dict[str, str] | None = None, exclusive: bool = True) -> Iterator[LocalPlatform]:
    """A throwaway platform; waits first while any Ray cluster runs here (unless not *exclusive*: a run
    that measures no speed may share the machine), and checks its own is gone after."""
    if exclusive:
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
    # Its sockets' and Ray's folder, named in every command line (before the runtime folder: Ray's temp dir).
    runtime_dir = str(platform.state.get("runtime_dir") or platform.state["ray_temp_dir"])
    try:
        yield platform
    finally:
        api.close()
        procs += [p for p in platform.processes() if p not in procs]
        probe.fnctl("down")
        reap(f"platform {home}", procs, f"{runtime_dir}/")
        shutil.rmtree(home, ignore_errors=True)
