"""Durable logs in the control plane, with no Ray: the drain from an in-process hub into a real SQLite log
store (a hub restart, a control-plane restart, the per-pass bound), the API's log routes through the edge,
and ``fnctl logs`` against a stand-in API."""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

from fnctl import functions
from fnctl.main import cli
from fnplatform.control.api import create_app
from fnplatform.control.logbook import CONTROL_PLANE, Logbook
from fnplatform.control.plane import ControlPlane
from fnplatform.control.settings import PlatformSettings
from fnplatform.flows.state import FlowState
from fnplatform.logtext import format_line
from fnplatform.serving.hub import Hub
from fnplatform.storage.blobs import StoreConfig, open_store
from fnplatform.storage.logs import LogQuery, LogStore
from fnplatform.storage.registry import Registry

from .test_control_plane import FakeDeployer, InProcessHub
from .test_edge import key


def push(hub: InProcessHub, function: str, *texts: str, request: str = "-") -> None:
    asyncio.run(hub.hub.push_logs(function, [format_line("STDOUT", "r1", request, t) for t in texts]))


def stored(store: LogStore, source: str = "add") -> list[str]:
    return [r.line.text for r in store.query(LogQuery(source=source, limit=5000))]


@pytest.fixture
def hub() -> InProcessHub:
    return InProcessHub()


@pytest.fixture
def store(tmp_path: Path) -> LogStore:
    return LogStore(f"sqlite:///{tmp_path / 'registry.db'}")


def logbook(store: LogStore, hub: InProcessHub, **options: Any) -> Logbook:
    return Logbook(store, hub, retention_s=3600, max_bytes=2**30, **options)


def test_the_drain_copies_new_lines_once(store: LogStore, hub: InProcessHub) -> None:
    book = logbook(store, hub)
    assert book.drain() == 0
    push(hub, "add", "a1", "a2")
    push(hub, "echo", "e1")
    assert book.drain() == 3
    assert stored(store) == ["a1", "a2"] and stored(store, "echo") == ["e1"]
    assert book.drain() == 0  # idle: one log_heads call, nothing read
    push(hub, "add", "a3")
    assert book.drain() == 1 and stored(store) == ["a1", "a2", "a3"]


def test_a_restarted_hub_starts_its_numbers_again_and_nothing_is_duplicated_or_lost(store: LogStore,
                                                                                     hub: InProcessHub) -> None:
    book = logbook(store, hub)
    push(hub, "add", "before 1", "before 2", "before 3")
    assert book.drain() == 3
    hub.hub = Hub()  # Ray restarted it: empty, a new start id, sequence numbers from 1 again
    push(hub, "add", "after 1")
    assert book.drain() == 1
    push(hub, "add", "after 2")
    assert book.drain(only="add") == 1  # a read's drain of one function sees the same
    assert stored(store) == ["before 1", "before 2", "before 3", "after 1", "after 2"]


def test_a_drain_of_one_function_first_heard_after_a_hub_restart_resets_its_cursor(store: LogStore,
                                                                                    hub: InProcessHub) -> None:
    book = logbook(store, hub)
    push(hub, "add", "x1", "x2", "x3", "x4")
    assert book.drain(only="add") == 4
    hub.hub = Hub()
    push(hub, "add", "y1")  # sequence 1, below the stored cursor of 4
    assert book.drain(only="add") == 1 and stored(store)[-1] == "y1"


def test_a_restarted_control_plane_reads_on_from_the_stored_cursor(store: LogStore, hub: InProcessHub) -> None:
    push(hub, "add", "one", "two")
    assert logbook(store, hub).drain() == 2
    push(hub, "add", "three")
    again = logbook(LogStore(store.url), hub)  # a new process: cursors come from the database
    assert again.drain() == 1
    assert stored(store) == ["one", "two", "three"]


def test_two_drains_over_one_database_store_each_line_once(store: LogStore, hub: InProcessHub) -> None:
    first, second = logbook(store, hub), logbook(LogStore(store.url), hub)  # a control plane and its replacement
    push(hub, "add", "one")
    assert first.drain() == 1
    push(hub, "add", "two")
    assert second.drain() == 1
    push(hub, "add", "three")
    assert first.drain() == 1  # its own cursor was behind: it reads on from the stored one
    assert stored(store) == ["one", "two", "three"]


def test_one_pass_is_bounded_and_the_rest_waits_for_the_next(store: LogStore, hub: InProcessHub) -> None:
    book = logbook(store, hub, max_drain_lines=250)
    push(hub, "add", *[f"a{i}" for i in range(400)])
    push(hub, "echo", *[f"e{i}" for i in range(10)])
    first = book.drain()
    assert first <= 250 and stored(store, "echo") == [f"e{i}" for i in range(10)]  # the quiet one is not starved
    while book.drain():
        pass
    assert stored(store) == [f"a{i}" for i in range(400)]  # in order, none twice


def test_a_tick_stores_the_control_planes_records_even_when_the_hub_is_away(store: LogStore) -> None:
    class Away:
        def log_heads(self) -> tuple[str, dict[str, int]]:
            raise TimeoutError("the hub actor did not answer in 2 s")

        def logs_after(self, function: str, after: int, limit: int) -> tuple[str, int, list[str]]:
            raise TimeoutError("the hub actor did not answer in 2 s")

    book = Logbook(store, Away(), retention_s=3600, max_bytes=2**30)
    book.handler.emit(__import__("logging").makeLogRecord({"name": "fnplatform", "msg": "deployed add", "levelno": 20,
                                                           "levelname": "INFO"}))
    with pytest.raises(TimeoutError):
        book.tick()
    assert stored(store, CONTROL_PLANE) == ["fnplatform: deployed add"]
    page = book.read("add")  # a read still answers from the table
    assert page["lines"] == [] and page["next"] == 0


# the API ---------------------------------------------------------------------------------------------
@pytest.fixture
def plane(tmp_path: Path) -> ControlPlane:
    settings = PlatformSettings.from_env(home=tmp_path / "home", store=StoreConfig(kind="local", root=str(tmp_path / "store")))
    settings.home.mkdir()
    return ControlPlane(settings, Registry(settings.database_url), open_store(settings.store), FakeDeployer(),  # type: ignore[arg-type]
                        InProcessHub(), FlowState(settings.database_url))  # type: ignore[arg-type]


@pytest.fixture
def api(plane: ControlPlane) -> Iterator[TestClient]:
    with TestClient(create_app(plane)) as client:
        yield client


def deployed(plane: ControlPlane, name: str = "add") -> None:
    import fn

    plane.registry.create_version(fn.FunctionSpec(name=name), "0" * 64)


def test_the_logs_route_drains_first_and_filters(plane: ControlPlane, api: TestClient) -> None:
    deployed(plane)
    hub: InProcessHub = plane.hub  # type: ignore[assignment]
    push(hub, "add", "adding 1 and 2", request="req-1")
    push(hub, "add", "adding 3 and 4", "POST /add -> 200", request="req-2")
    deploy = key(plane, "deploy")
    page = api.get("/v1/functions/add/logs", headers=deploy).json()
    assert page["function"] == "add" and len(page["lines"]) == 3  # no wait for the housekeeping thread
    assert page["lines"][0].endswith("replica=r1 request=req-1 adding 1 and 2")
    assert page["entries"][2]["request_id"] == "req-2" and page["next"] == page["entries"][2]["id"]
    only = api.get("/v1/functions/add/logs", params={"request_id": "req-2", "grep": "adding", "since": "10m"},
                   headers=deploy).json()
    assert [e["text"] for e in only["entries"]] == ["adding 3 and 4"]
    push(hub, "add", "later")
    later = api.get("/v1/functions/add/logs", params={"after": page["next"]}, headers=deploy).json()
    assert [e["text"] for e in later["entries"]] == ["later"]
    none = api.get("/v1/functions/add/logs", params={"after": later["next"], "grep": "nothing"}, headers=deploy).json()
    assert none["lines"] == [] and none["next"] == later["next"]


@pytest.mark.parametrize(("params", "parameter", "problem"), [
    ({"since": "abc"}, "since", "'abc' is not a duration: use seconds (e.g. 90) or a number with s, m, h or d"),
    ({"since": "0"}, "since", "must be more than 0 s"),
    ({"grep": "x" * 201}, "grep", "has 201 characters; at most 200 are allowed"),
    ({"grep": ""}, "grep", "is empty"),
    ({"request_id": "a b"}, "request_id", "is not a request id"),
])
def test_bad_log_query_parameters_are_400s_naming_the_parameter(plane: ControlPlane, api: TestClient,
                                                                params: dict[str, str], parameter: str,
                                                                problem: str) -> None:
    deployed(plane)
    response = api.get("/v1/functions/add/logs", params=params, headers=key(plane, "deploy"))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "BadRequest" and error["detail"] == {"parameter": parameter}
    assert error["message"].startswith(f"query parameter '{parameter}': ") and problem in error["message"]


def test_the_old_parameters_keep_their_checks_and_a_missing_function_is_404(plane: ControlPlane,
                                                                           api: TestClient) -> None:
    deployed(plane)
    deploy = key(plane, "deploy")
    assert api.get("/v1/functions/add/logs", params={"limit": 0}, headers=deploy).status_code == 422
    assert api.get("/v1/functions/add/logs", params={"after": -1}, headers=deploy).status_code == 422
    assert api.get("/v1/functions/nope/logs", headers=deploy).status_code == 404


def test_control_plane_logs_are_for_admin_keys(plane: ControlPlane, api: TestClient) -> None:
    plane.logbook.store.add(CONTROL_PLANE, [format_line("INFO", "control-plane", "-", "fnplatform: ready")])
    assert api.get("/v1/logs/control-plane", headers=key(plane, "deploy")).status_code == 403
    page = api.get("/v1/logs/control-plane", params={"grep": "ready"}, headers=key(plane, "admin")).json()
    assert page["source"] == "control-plane" and [e["text"] for e in page["entries"]] == ["fnplatform: ready"]
    deployed(plane, "control-plane")  # a function of that name does not see the platform's lines
    own = api.get("/v1/functions/control-plane/logs", headers=key(plane, "deploy")).json()
    assert own["lines"] == []


def test_the_logs_route_still_needs_a_deploy_key(plane: ControlPlane, api: TestClient) -> None:
    deployed(plane)
    assert api.get("/v1/functions/add/logs", headers=key(plane, "invoke")).status_code == 403


# fnctl logs ------------------------------------------------------------------------------------------
class EndOfTest(Exception):
    """Raised by the stand-in API when its pages are spent: how a test ends --follow."""


class FakeApi:
    pages: list[dict[str, Any]] = []
    calls: list[tuple[str, dict[str, Any]]] = []

    def get(self, path: str, **params: Any) -> Any:
        FakeApi.calls.append((path, params))
        if not FakeApi.pages:
            raise EndOfTest
        return FakeApi.pages.pop(0)


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> type[FakeApi]:
    monkeypatch.setattr(functions, "Api", FakeApi)
    monkeypatch.setattr(functions, "time", SimpleNamespace(sleep=lambda seconds: None))  # this module's, not the clock
    FakeApi.pages, FakeApi.calls = [], []
    return FakeApi


def page(*texts: str, start: int = 1) -> dict[str, Any]:
    return {"next": start + len(texts) - 1 if texts else start, "lines": [f"L {t}" for t in texts],
            "entries": [{"id": start + i, "text": t} for i, t in enumerate(texts)]}


def test_fnctl_logs_passes_the_filters_and_follows_from_the_cursor(fake_api: type[FakeApi]) -> None:
    fake_api.pages = [page("a", "b"), page("c", start=3)]
    result = CliRunner().invoke(cli, ["logs", "add", "--since", "10m", "--request-id", "req-1", "--grep", "add ing",
                                      "--limit", "50", "--follow"])
    assert result.output == "L a\nL b\nL c\n" and isinstance(result.exception, EndOfTest)
    assert fake_api.calls == [
        ("/v1/functions/add/logs", {"limit": 50, "since": "10m", "request_id": "req-1", "grep": "add ing"}),
        ("/v1/functions/add/logs", {"after": 2, "limit": 5000, "since": "10m", "request_id": "req-1", "grep": "add ing"}),
        ("/v1/functions/add/logs", {"after": 3, "limit": 5000, "since": "10m", "request_id": "req-1", "grep": "add ing"})]


def test_fnctl_logs_json_and_the_control_plane(fake_api: type[FakeApi]) -> None:
    fake_api.pages = [page("x")]
    result = CliRunner().invoke(cli, ["logs", "--control-plane", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["entries"] == [{"id": 1, "text": "x"}]
    assert fake_api.calls == [("/v1/logs/control-plane", {"limit": 200})]
    fake_api.pages = [page("y"), page("z", start=2)]
    followed = CliRunner().invoke(cli, ["logs", "add", "--json", "-f"])
    assert [json.loads(line)["text"] for line in followed.output.splitlines()] == ["y", "z"]  # one entry a line


@pytest.mark.parametrize(("args", "problem"), [
    (["logs", "add", "--since", "abc"], "Invalid value for '--since': 'abc' is not a duration: use seconds (e.g. 90)"),
    (["logs", "add", "--grep", "x" * 201], "Invalid value for '--grep': has 201 characters; at most 200"),
    (["logs", "add", "--request-id", "a b"], "Invalid value for '--request-id': 'a b' is not a request id"),
    (["logs", "add", "--limit", "0"], "Invalid value for '--limit'"),
    (["logs"], "give a function NAME or --control-plane (one of them)"),
    (["logs", "add", "--control-plane"], "give a function NAME or --control-plane (one of them)"),
])
def test_fnctl_logs_refuses_bad_options_naming_them(fake_api: type[FakeApi], args: list[str], problem: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and problem in result.output, result.output
    assert "Traceback" not in result.output and fake_api.calls == []
