"""Replicas under faults, on the real cluster: a replica whose workers are all held by calls past their
timeout_s is replaced by Serve, and a long call in flight survives a redeploy of its function."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from harness import Platform, wait_for

import fn

pytestmark = pytest.mark.slow


def _project(root: Path, source: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "main.py").write_text(textwrap.dedent(source))
    return root


def test_a_replica_whose_workers_are_held_by_timed_out_calls_is_replaced(platform: Platform, tmp_path: Path) -> None:
    project = _project(tmp_path / "stuck", """
        import os, time
        import fn

        @fn.function(name="stuck", timeout_s=2, max_concurrency=2, min_replicas=1, max_replicas=1)
        def stuck(seconds: float) -> int:
            time.sleep(seconds)  # a sync call past timeout_s keeps its worker thread: Python cannot stop it
            return os.getpid()
    """)
    job = platform.deploy(project)
    assert job["exit_code"] == 0, job["output"]
    first = fn.call("stuck", seconds=0)
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            fn.call("stuck", seconds=600)
        except fn.FnError as exc:
            errors.append(exc)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for thread in holders:
        thread.start()
    for thread in holders:
        thread.join(timeout=60)
    assert [type(e) for e in errors] == [fn.Timeout, fn.Timeout], errors  # each got its 504 after timeout_s

    def replaced() -> Any:
        try:
            pid = fn.call("stuck", seconds=0)
        except fn.FnError:  # the held replica answers 504, or none is ready while it is replaced
            return None
        return pid if pid != first else None

    # Without the health check both workers stay held for 600 s and every call is a 504.
    assert wait_for(replaced, timeout=150, interval=2)


def test_a_long_call_in_flight_survives_a_redeploy_of_its_function(platform: Platform, tmp_path: Path) -> None:
    source = """
        import time
        import fn

        @fn.function(name="long-call", timeout_s=60, min_replicas=1, max_replicas=1)
        def long_call(seconds: float) -> str:
            time.sleep(seconds)
            return "VERSION"
    """
    v1 = _project(tmp_path / "v1", source.replace("VERSION", "v1"))
    v2 = _project(tmp_path / "v2", source.replace("VERSION", "v2"))
    assert platform.deploy(v1)["exit_code"] == 0
    assert fn.call("long-call", seconds=0) == "v1"
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["answer"] = fn.call("long-call", seconds=15)
        except fn.FnError as exc:
            outcome["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(1)  # the call is on the replica; the deploy takes seconds more before it replaces it
    job = platform.deploy(v2)  # replaces the replica while the call runs on it
    assert job["exit_code"] == 0, job["output"]
    caller.join(timeout=120)
    assert outcome == {"answer": "v1"}, outcome  # the old replica finished it: its shutdown waits for timeout_s
    assert fn.call("long-call", seconds=0) == "v2"
