"""Replica log lines outlive the processes that held them: found by request id with ``fnctl logs``, still
found after Ray restarts the hub empty, and read by a control plane created again over the same registry,
with no line stored twice."""

from __future__ import annotations

import uuid
from typing import Any

import ray
from harness import Platform, wait_for

from fnplatform.serving.hub import find_hub


def _call_hello(platform: Platform) -> tuple[str, str]:
    """Call hello (it prints "greeting <name>") with a name and request id of this test's own."""
    marker, request_id = f"durable-{uuid.uuid4().hex[:8]}", f"req-durable-{uuid.uuid4().hex[:8]}"
    with platform.client() as client:
        response = client.post("/hello", json={"name": marker}, headers={"x-request-id": request_id})
    assert response.status_code == 200, response.text
    return marker, request_id


def _found(platform: Platform, marker: str, request_id: str) -> list[str]:
    result = platform.fnctl("logs", "hello", "--request-id", request_id, "--grep", marker, "--since", "10m")
    assert result.exit_code == 0, result.output
    return [line for line in result.output.splitlines() if f"greeting {marker}" in line]


def _start_id(platform: Platform) -> Any:
    try:
        return platform.control.hub.status()["start_id"]
    except Exception:  # noqa: BLE001 - restarting: a 503 from the hub client
        return None


def test_a_line_found_by_request_id_is_still_found_after_the_hub_restarts(basic: Platform) -> None:
    marker, request_id = _call_hello(basic)
    (line,) = wait_for(lambda: _found(basic, marker, request_id), timeout=20)
    assert f"request={request_id}" in line
    before = _start_id(basic)
    ray.kill(find_hub(), no_restart=False)  # Ray restarts it (max_restarts=-1), empty
    wait_for(lambda: _start_id(basic) not in {None, before}, timeout=60)
    basic.control.refill_hub()  # the housekeeping thread's job, every second
    _, held = ray.get(find_hub().read_logs.remote("hello", 0, 5000))
    assert not any(marker in text for text in held)  # the new hub never had it: the answer comes from the database
    assert _found(basic, marker, request_id) == [line]
    marker2, request_id2 = _call_hello(basic)  # the new hub's numbers start again; its lines are stored too
    wait_for(lambda: _found(basic, marker2, request_id2), timeout=20)
    assert _found(basic, marker, request_id) == [line]


def test_a_restarted_control_plane_reads_the_stored_lines_and_stores_none_twice(basic: Platform) -> None:
    from fnplatform.control.plane import ControlPlane
    from fnplatform.flows.state import FlowState

    marker, request_id = _call_hello(basic)
    wait_for(lambda: _found(basic, marker, request_id), timeout=20)
    control = basic.control
    restarted = ControlPlane(control.settings, control.registry, control.store, control.deployer, control.hub,
                             FlowState(control.settings.database_url))
    restarted.logbook.drain()  # what its housekeeping thread does first: from the cursors the first one stored
    page = restarted.logs("hello", 0, 5000, request_id=request_id, grep=marker)
    assert len(page["lines"]) == 1 and f"greeting {marker}" in page["lines"][0]
    marker2, request_id2 = _call_hello(basic)
    wait_for(lambda: restarted.logs("hello", 0, 200, request_id=request_id2)["lines"], timeout=20)
    assert len(_found(basic, marker2, request_id2)) == 1  # both control planes drained it: stored once
