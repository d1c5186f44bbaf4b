"""The flows gateway's calls to a run's host while that host dies or restarts. No Ray: the host is stood in."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from ray.exceptions import ActorUnavailableError

import fn
from fnplatform.flows import gateway as flows_gateway
from fnplatform.flows.gateway import FlowGateway


class FlakyActor:
    """A run host whose first *failures* calls fail as a restarting actor's do."""

    def __init__(self, failures: int | None) -> None:
        self.failures, self.calls = failures, 0
        self.state = self

    def remote(self, *args: Any) -> Any:
        self.calls += 1
        failing = self.failures is None or self.calls <= self.failures

        async def answer() -> dict[str, Any]:
            if failing:
                raise ActorUnavailableError("The actor is temporarily unavailable: IOError: The actor is restarting.",
                                            None)
            return {"id": "r1", "status": "running"}
        return answer()


def gateway_with(actor: FlakyActor) -> FlowGateway:
    gateway = FlowGateway.__new__(FlowGateway)
    gateway._host = lambda run_id: actor  # type: ignore[method-assign]
    return gateway


def test_a_restarting_run_host_is_asked_again_until_it_answers() -> None:
    actor = FlakyActor(failures=3)
    assert asyncio.run(gateway_with(actor)._ask("r1", "state")) == {"id": "r1", "status": "running"}
    assert actor.calls == 4


def test_a_run_host_that_stays_away_is_a_503_with_retry_after_not_a_500(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flows_gateway, "ACTOR_RETRY_S", 0.5)
    actor = FlakyActor(failures=None)
    with pytest.raises(fn.Unavailable) as caught:
        asyncio.run(gateway_with(actor)._ask("r1", "state"))
    assert caught.value.status == 503 and caught.value.retry_after == 1
    assert "run r1's host is restarting (ActorUnavailableError)" in str(caught.value)
    assert actor.calls >= 2


def test_a_locked_checkpoint_database_is_a_503_with_retry_after_not_a_500() -> None:
    from sqlalchemy.exc import OperationalError
    from starlette.requests import Request

    class Keys:
        async def authenticate(self, headers: Any) -> Any:
            return object()

    gateway = FlowGateway.__new__(FlowGateway)
    gateway._keys = Keys()  # type: ignore[assignment]

    async def locked(request: Any, grant: Any) -> Any:
        raise OperationalError("INSERT INTO flow_values ...", {"secret": "x"}, Exception("database is locked"))

    gateway._route = locked  # type: ignore[method-assign]
    scope = {"type": "http", "method": "PUT", "path": "/flows/f/runs/r/inputs/x", "headers": [], "query_string": b""}
    response = asyncio.run(gateway(Request(scope)))
    assert response.status_code == 503 and int(response.headers["retry-after"]) > 0, response.body
    body = json.loads(bytes(response.body))
    assert body["error"]["type"] == "Unavailable" and "database is locked" in body["error"]["message"]
    assert "INSERT" not in body["error"]["message"] and "secret" not in body["error"]["message"]
