"""The hub actor killed under a running platform: a replica keeps serving valid keys from its copy, the
restarted hub is refilled whole (what the housekeeping thread does within a second), and keys created
after the restart work."""

from __future__ import annotations

from typing import Any

import httpx
import ray
from harness import Platform, wait_for

from fnplatform.serving.hub import find_hub

BODY = {"content": b"abc", "headers": {"content-type": "application/octet-stream"}}


def _call(client: httpx.Client) -> httpx.Response:
    return client.post("/size", **BODY)  # type: ignore[arg-type]


def _start_id(platform: Platform) -> Any:
    try:
        return platform.control.hub.status()["start_id"]
    except Exception:  # noqa: BLE001 - restarting: a 503 from the hub client
        return None


def test_a_killed_hub_costs_no_valid_call_and_new_keys_work_after_its_refill(basic: Platform) -> None:
    with basic.client() as client:
        assert _call(client).status_code == 200  # a replica now holds the keys
        before = _start_id(basic)
        ray.kill(find_hub(), no_restart=False)  # Ray restarts it (max_restarts=-1), empty
        response = _call(client)
        assert response.status_code == 200, response.text  # served from the replica's copy
        wait_for(lambda: _start_id(basic) not in {None, before}, timeout=60)
        assert _call(client).status_code == 200  # an unfilled hub does not empty the copy
        assert basic.control.refill_hub() is True  # the housekeeping thread's job, every second
        created = basic.control.create_key("after the hub restart")
    with basic.client(created["key"]) as fresh:
        assert wait_for(lambda: _call(fresh).status_code == 200, timeout=10)
    with basic.client() as client:
        assert _call(client).status_code == 200
