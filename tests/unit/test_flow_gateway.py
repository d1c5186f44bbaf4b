"""The flows gateway's calls to a run's host while that host dies or restarts, and closing a run's inputs over
HTTP. No Ray: the host is stood in (by a run host in this process for the close)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ray.exceptions import ActorUnavailableError
from starlette.requests import Request

import fn
from fnplatform.flows import gateway as flows_gateway
from fnplatform.flows.gateway import FlowGateway
from fnplatform.flows.hosts import FlowRuns
from fnplatform.flows.state import FlowState
from fnplatform.keys import Grant
from fnplatform.storage.blobs import StoreConfig, open_store

from .test_flow_run import optional_flow, optional_runtime


class FlakyActor:
    """A run host whose first *failures* calls fail as a restarting actor's do."""

    def __init__(self, failures: int | None) -> None:
        self.failures, self.calls = failures, 0
        self.state = self.close = self

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


# closing a run's inputs over HTTP: the real gateway and checkpoint database, the run host in this process ----

class InProcessHost:
    """A run host's actor handle whose calls (``handle.close.remote(run_id)``) go to a FlowRuns in this process."""

    def __init__(self, host: FlowRuns) -> None:
        self.host = host

    def __getattr__(self, method: str) -> Any:
        return SimpleNamespace(remote=getattr(self.host, method))


class GrantedKeys:
    def __init__(self, grant: Grant) -> None:
        self.grant = grant

    async def authenticate(self, headers: Any) -> Grant:
        return self.grant


def flow_gateway(state: FlowState, tmp_path: Path, host: Any, grant: Grant | None = None) -> FlowGateway:
    store = {"kind": "local", "root": str(tmp_path / "store")}
    gateway = FlowGateway.__new__(FlowGateway)
    gateway._store_config, gateway._db, gateway._store = store, state, open_store(StoreConfig(**store))
    gateway._keys = GrantedKeys(grant or Grant(key_id="k1", role="invoke"))  # type: ignore[assignment]
    gateway._host = lambda run_id: host  # type: ignore[method-assign]
    state.put_flow(optional_flow(), "0" * 64)
    return gateway


async def send(gateway: FlowGateway, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    path, _, query = path.partition("?")
    scope = {"type": "http", "method": method, "path": path, "query_string": query.encode(),
             "headers": [(b"content-type", b"application/json")]}
    response = await gateway(Request(scope, receive))
    return response.status_code, json.loads(bytes(response.body))


@pytest.fixture
def state(tmp_path: Path) -> FlowState:
    return FlowState(f"sqlite:///{tmp_path / 'flows.db'}")


def in_process_host(state: FlowState, tmp_path: Path) -> InProcessHost:
    return InProcessHost(FlowRuns({"kind": "local", "root": str(tmp_path / "store")}, database_url=state.url,
                                  runtime=lambda on_exit: optional_runtime()))


def test_closing_over_http_finishes_a_run_without_its_optional_input(state: FlowState, tmp_path: Path) -> None:
    host = in_process_host(state, tmp_path)
    gateway = flow_gateway(state, tmp_path, host)
    run_id = state.create_run(optional_flow(), "k1")
    url = f"/flows/unit-optional/runs/{run_id}"

    async def scenario() -> list[tuple[int, dict[str, Any]]]:
        answers = [await send(gateway, "POST", f"{url}/close")]  # 'front' is required and missing
        answers.append(await send(gateway, "PUT", f"{url}/inputs/front", b'"abcd"'))
        answers.append(await send(gateway, "POST", f"{url}/close"))
        answers.append(await send(gateway, "POST", f"{url}/close"))  # again: no error
        answers.append(await send(gateway, "PUT", f"{url}/inputs/back", b'"xy"'))
        answers.append(await send(gateway, "GET", f"{url}?wait=10"))
        answers.append(await send(gateway, "POST", f"{url}/close"))  # after the run's end: its state
        return answers

    missing, put, closed, again, late, final, after_end = asyncio.run(scenario())
    assert missing[0] == 409 and missing[1]["error"]["type"] == "Conflict"
    assert "required input(s) 'front' not given yet" in missing[1]["error"]["message"]
    assert put[0] == 202 and put[1]["inputs_closed"] is False
    assert closed[0] == 202 and closed[1]["inputs_closed"] is True and closed[1]["status"] == "running"
    assert again[0] == 202 and again[1]["inputs_closed"] is True
    assert late[0] == 409 and late[1]["error"]["message"] == f"inputs of run {run_id} are closed: input 'back' is refused"
    assert final[0] == 200 and final[1]["status"] == "succeeded"
    assert final[1]["output"] == {"front": 4, "back": None}
    assert after_end[0] == 202 and after_end[1]["status"] == "succeeded" and after_end[1]["output"] == final[1]["output"]
    record = state.run(run_id)
    assert record is not None and record.inputs_closed and "back" not in record.values


def test_a_close_whose_host_is_restarting_is_accepted_from_the_checkpoint(
        state: FlowState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flows_gateway, "ACTOR_RETRY_S", 0.3)
    gateway = flow_gateway(state, tmp_path, FlakyActor(failures=None))
    run_id = state.create_run(optional_flow(), "k1")
    assert state.add_input(run_id, "front", value_json=json.dumps("abcd"))
    status, body = asyncio.run(send(gateway, "POST", f"/flows/unit-optional/runs/{run_id}/close"))
    assert status == 202 and body["inputs_closed"] is True and body["status"] == "running"
    record = state.run(run_id)
    assert record is not None and record.inputs_closed  # the host takes it up from the checkpoint when it is back


def test_closing_follows_the_put_endpoints_key_rules(state: FlowState, tmp_path: Path) -> None:
    run_id = state.create_run(optional_flow(), "k1")
    path = f"/flows/unit-optional/runs/{run_id}/close"
    scoped = flow_gateway(state, tmp_path, None, Grant(key_id="k1", role="invoke", flows=frozenset({"other"})))
    status, body = asyncio.run(send(scoped, "POST", path))
    assert status == 403 and "may run only the flows other" in body["error"]["message"]
    stranger = flow_gateway(state, tmp_path, None, Grant(key_id="k2", role="invoke"))  # not the key that started it
    assert asyncio.run(send(stranger, "POST", path))[0] == 404
    assert asyncio.run(send(stranger, "GET", f"/flows/unit-optional/runs/{run_id}/close"))[0] == 404
    record = state.run(run_id)
    assert record is not None and not record.inputs_closed


def test_a_runs_evidence_is_for_admins_and_names_what_decided_it(state: FlowState, tmp_path: Path) -> None:
    import hashlib

    from fnplatform.storage.registry import Registry
    registry = Registry(state.url)  # the functions the steps call, at version 2 for 'decide'
    for name, sha in (("measure", "1"), ("maybe", "1"), ("decide", "1"), ("decide", "2")):
        spec = fn.FunctionSpec(name=name, entrypoint=f"main:{name}")
        registry.finish_version(name, registry.create_version(spec, sha * 64).number)
    host = in_process_host(state, tmp_path)
    admin = flow_gateway(state, tmp_path, host, Grant(key_id="k1", role="admin"))
    run_id = state.create_run(optional_flow(), "k1")
    url = f"/flows/unit-optional/runs/{run_id}"

    async def scenario() -> tuple[int, dict[str, Any]]:
        await send(admin, "PUT", f"{url}/inputs/front", b'"abcd"')
        await send(admin, "POST", f"{url}/close")
        await send(admin, "GET", f"{url}?wait=10")
        return await send(admin, "GET", f"{url}/evidence")

    status, evidence = asyncio.run(scenario())
    assert status == 200, evidence
    assert evidence["status"] == "succeeded" and evidence["bundle_sha256"] == "0" * 64
    assert evidence["inputs"]["front"] == {"given": True, "sha256": hashlib.sha256(b'"abcd"').hexdigest(), "bytes": 6,
                                           "received_at": evidence["inputs"]["front"]["received_at"], "kind": "json"}
    assert evidence["inputs"]["back"] == {"given": False, "note": "not given before the inputs were closed"}
    decide = evidence["steps"]["decide"]
    assert decide["version"] == 2 and decide["status"] == "done" and decide["attempts"] == 1
    assert decide["result"] == {"front": 4, "back": None} == evidence["output"]
    assert decide["started_at"] <= decide["recorded_at"] and evidence["steps"]["measure-front"]["version"] == 1
    for grant in (Grant(key_id="k1", role="invoke"), Grant(key_id="k1", role="deploy")):  # even the run's own key
        status, body = asyncio.run(send(flow_gateway(state, tmp_path, host, grant), "GET", f"{url}/evidence"))
        assert status == 403 and "needs 'admin'" in body["error"]["message"], body
    assert asyncio.run(send(admin, "GET", "/flows/unit-optional/runs/nope/evidence"))[0] == 404
