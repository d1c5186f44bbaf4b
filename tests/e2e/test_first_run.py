"""What every new user meets first: the README's first command, on fresh homes of ordinary lengths.

`fnctl up` once failed for any FN_HOME over 17 characters (HAProxy's socket path limit), and the
call right after "deployed" once got a 404 (the ingress learnt the route a little later).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from e2e_cli import fnctl, free_port

pytestmark = pytest.mark.slow


def _home_of_length(base: Path, length: int) -> Path:
    """/home/ec2-user/.fn is 18 characters; the others are longer than any temp dir Ray would pick."""
    home = base / ("h" * (length - len(str(base)) - 1))
    assert len(str(home)) == length, home
    return home


def test_quickstart_twice_in_a_row_on_fresh_homes_of_18_and_120_characters() -> None:
    from fnplatform.control.local import ray_processes
    from fnplatform.control.settings import PlatformSettings

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FN_", "RAY_"))}
    for length in (18, 120):  # test_fnctl_user_story runs `fnctl up` on a home of 30
        base = Path(tempfile.mkdtemp(prefix="fnq", dir="/tmp"))  # /tmp/fnqXXXXXXXX: 16 characters
        home = _home_of_length(base, length)
        env = {**clean, "FN_HOME": str(home)}
        try:
            run = fnctl(env, "quickstart", "--api-port", str(free_port()), "--http-port", str(free_port()), timeout=420)
            assert run.returncode == 0, f"FN_HOME of {length} characters:\n{run.stdout}\n{run.stderr}"
            assert run.stdout.strip().splitlines()[-1] == "fn.call('add', a=2, b=3) -> 5", run.stdout
            _assert_private(home)
        finally:
            down = fnctl(env, "down", timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
        assert ray_processes(PlatformSettings(home=home).runtime_dir) == []
        shutil.rmtree(base, ignore_errors=True)


def _assert_private(home: Path) -> None:
    """What a local user shares with nobody: FN_HOME and its secrets-bearing files, and HAProxy's side ports."""
    import psutil

    assert home.stat().st_mode & 0o777 == 0o700
    for name in ("credentials.json", "registry.db", "secrets.key"):
        assert (home / name).stat().st_mode & 0o777 == 0o600, name
    listening: list[object] = []
    for _ in range(5):  # a reload may retire the only process seen before its successor is listed
        for proc in psutil.process_iter(["name"]):
            if proc.info["name"] != "haproxy":
                continue
            try:
                conns = proc.net_connections(kind="inet")
            except psutil.NoSuchProcess:
                continue
            listening += [conn.laddr for conn in conns if conn.status == psutil.CONN_LISTEN]
        if listening:
            break
        time.sleep(1)
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening  # type: ignore[attr-defined]
