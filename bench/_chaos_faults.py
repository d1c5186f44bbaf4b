"""The chaos suite's faults, one at a time against a throwaway local platform, and the S3 server (moto,
in a process of its own so that it can be stopped). Each fault returns when it is over: when it struck
and when it ended (a kill: the same instant; a lock or a stop: when it was released), and a note."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import psutil
from _chaos_load import Load, flow_output
from _chaos_outcomes import RunRecord
from _procs import LocalPlatform, free_port

HOLD_S = 10.0  # how long the registry and the store are unavailable
BUCKET = "fn-chaos"
# Ray names a worker process after what it runs: "ray::<Class>" while an actor is idle, "ray::<Class>.<method>"
# while it runs a method; a Serve replica is "ray::ServeReplica:<app>:<deployment>".
REPLICA = re.compile(r"ray::ServeReplica:echo:echo(\.|\s|$)")
HUB = re.compile(r"ray::Hub(\.|\s|$)")  # fnplatform.serving.hub.Hub, the actor named HUB_NAME
FLOW_RUN = re.compile(r"ray::FlowRuns(\.|\s|$)")  # fnplatform.flows.hosts.FlowRuns, the run hosts


class FaultError(Exception):
    """The fault could not be injected as planned (what to look for is gone, a restart failed)."""


@dataclass(frozen=True)
class Injected:
    at: float  # time.monotonic()
    end: float
    note: str


class MotoServer:
    """moto's S3 server on loopback, in its own process group so that SIGSTOP stops all of it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """What the platform needs to keep bundles and flow blobs there (control/settings.py, storage/blobs.py)."""
        return {"FN_S3_BUCKET": BUCKET, "FN_S3_ENDPOINT": self.url, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}

    def __enter__(self) -> MotoServer:
        self._proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(self.url, timeout=2)
                return self  # any answer: it listens (the platform creates the bucket at start)
            except httpx.TransportError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise SystemExit(f"moto's S3 server did not start on port {self.port}") from None
                time.sleep(0.3)

    def signal(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        os.killpg(self._proc.pid, sig)

    def __exit__(self, *_: object) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.signal(signal.SIGCONT)
            self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@dataclass
class Target:
    """What the faults act on."""

    platform: LocalPlatform
    load: Load
    moto: MotoServer

    @property
    def ports(self) -> tuple[int, int]:
        api, http = httpx.URL(str(self.platform.api.base_url)), httpx.URL(self.platform.http_url)
        assert api.port is not None and http.port is not None
        return api.port, http.port


def titled(platform: LocalPlatform, pattern: re.Pattern[str]) -> list[psutil.Process]:
    """The platform's own processes (never another cluster's on this machine) whose title matches."""
    found = []
    for proc in platform.processes():
        try:
            title = " ".join(proc.cmdline()).strip()
        except psutil.Error:
            continue
        if pattern.match(title):
            found.append(proc)
    return found


def _kill(procs: list[psutil.Process]) -> float:
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGKILL)
    return time.monotonic()


def kill_replica(t: Target) -> Injected:
    found = titled(t.platform, REPLICA)
    if not found:
        raise FaultError("no process titled ray::ServeReplica:echo:echo")
    at = _kill(found[:1])
    return Injected(at, at, f"SIGKILL the echo replica (pid {found[0].pid}, 1 of {len(found)})")


def kill_hub(t: Target) -> Injected:
    found = titled(t.platform, HUB)
    if not found:
        raise FaultError("no process titled ray::Hub")
    at = _kill(found)
    return Injected(at, at, f"SIGKILL the hub actor (pid {found[0].pid}); Ray restarts it empty")


def kill_flow_run(t: Target) -> Injected:
    """A run given its first input, then every run host killed (with every other run of the load they hold)
    before its second: the second must still finish it, and so must the others."""
    load = t.load
    start = time.monotonic()
    run_id = load.new_run()
    if run_id is None or not load.put(run_id, "x", 1000):
        raise FaultError("the victim run could not be started or given its first input")
    # The put was answered by the run's host (flows/gateway.py _put asks it): its process is up.
    hosts = titled(t.platform, FLOW_RUN)
    if not hosts:
        raise FaultError(f"no ray::FlowRuns process is running after run {run_id} was given an input")
    at = _kill(hosts)
    time.sleep(1)
    pad = b"after the kill"
    accepted = load.put(run_id, "pad", pad)
    if accepted:
        load.follow(RunRecord(run_id, start, flow_output(1000, pad), victim=True))
    return Injected(at, at, f"SIGKILL every run host (pid {', '.join(str(p.pid) for p in hosts)}) after run "
                            f"{run_id}'s input x, then gave input pad: "
                            + ("accepted" if accepted else "refused (see the flow put rows)"))


def lock_registry(t: Target) -> Injected:
    """Hold SQLite's write lock on FN_HOME/registry.db (the registry and the flows' checkpoints) for HOLD_S."""
    assert t.platform.home is not None
    connection = sqlite3.connect(t.platform.home / "registry.db", timeout=60, isolation_level=None)
    try:
        mode = str(connection.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        connection.execute("BEGIN EXCLUSIVE")
        at = time.monotonic()
        time.sleep(HOLD_S)
        connection.execute("ROLLBACK")
        end = time.monotonic()
    finally:
        connection.close()
    # In WAL mode BEGIN EXCLUSIVE blocks writers only (SQLite's docs): the platform's reads go on.
    readers = ("WAL mode: writes blocked, reads not" if mode == "wal" else f"journal mode {mode}: reads and writes blocked")
    return Injected(at, end, f"BEGIN EXCLUSIVE on registry.db for {HOLD_S:g} s; {readers}")


def stop_store(t: Target) -> Injected:
    t.moto.signal(signal.SIGSTOP)
    at = time.monotonic()
    try:
        time.sleep(HOLD_S)
    finally:
        t.moto.signal(signal.SIGCONT)
    end = time.monotonic()
    return Injected(at, end, f"SIGSTOP the S3 server for {HOLD_S:g} s (connections are accepted by the kernel, "
                             f"never answered until SIGCONT)")


def _fnctl(platform: LocalPlatform, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fnctl.main", *args], env=platform.env, capture_output=True, text=True,
                          check=False, timeout=420)


def restart_control_plane(t: Target) -> Injected:
    """SIGKILL the control plane, then ``fnctl up`` on the same ports, as a user would after a crash. Locally
    the control plane started Ray (fate-shared: Ray's GCS and raylet die with it), so this restarts the node."""
    platform = t.platform
    state = platform.state
    pid, runtime_dir = int(state["pid"]), str(state.get("runtime_dir", ""))  # type: ignore[call-overload]
    api_port, http_port = t.ports
    at = _kill([psutil.Process(pid)])
    with contextlib.suppress(psutil.Error):
        psutil.Process(pid).wait(timeout=30)
    time.sleep(5)  # Ray's processes go with it (PR_SET_PDEATHSIG); count what is left after a moment
    left = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if runtime_dir and runtime_dir in " ".join(proc.info["cmdline"] or []):
                left.append(proc)
    started = time.monotonic()
    up = _fnctl(platform, "up", "--api-port", str(api_port), "--http-port", str(http_port))
    how = "fnctl up"
    if up.returncode != 0:
        # 'up' only checks the ports; 'down' with the pid dead kills what is left of Ray by its runtime folder.
        first = (up.stderr or up.stdout).strip().splitlines()[-1:] or ["?"]
        down = _fnctl(platform, "down")
        up = _fnctl(platform, "up", "--api-port", str(api_port), "--http-port", str(http_port))
        how = f"fnctl up failed ({first[0][:120]}); fnctl down (rc {down.returncode}) + fnctl up"
        if up.returncode != 0:
            raise FaultError(f"the platform did not come back: {(up.stderr or up.stdout).strip()[-300:]}")
    return Injected(at, at, f"SIGKILL the control plane (pid {pid}); {len(left)} of its processes were alive 5 s later; "
                            f"{how} took {time.monotonic() - started:.0f} s; recovery counts from the kill")


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Callable[[Target], Injected]
    max_recovery_s: float  # in a full run; --quick takes less where it can


FAULTS = [
    Fault("replica", kill_replica, 60),
    Fault("hub", kill_hub, 60),
    Fault("flow-run", kill_flow_run, 60),
    Fault("registry", lock_registry, 60),
    Fault("store", stop_store, 60),
    Fault("control-plane", restart_control_plane, 240),  # last: it restarts the whole local node
]
QUICK = ("replica", "hub", "flow-run")
