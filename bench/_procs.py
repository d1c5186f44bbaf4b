"""Processes: the one-Ray-cluster-at-a-time rule, process trees, and making sure a stopped cluster is gone."""

from __future__ import annotations

import contextlib
import os
import time

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
