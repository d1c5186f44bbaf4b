"""The control plane's API while the registry or the bundle store is unreachable, with no Ray: the real app
over a real SQLite registry and a real ControlPlane (deployer and hub stood in by test_control_plane's
fakes). An outage is a 503 with Retry-After naming what is unreachable, never a 500 or a hang, and the
API answers again once it is back, without a restart."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

from fnplatform.control.api import create_app
from fnplatform.control.plane import ControlPlane
from fnplatform.control.settings import PlatformSettings
from fnplatform.flows.state import FlowState
from fnplatform.storage.blobs import StoreConfig, open_store
from fnplatform.storage.registry import Registry

from .test_control_plane import FakeDeployer, InProcessHub

SHA = "0" * 64


def make_plane(tmp_path: Path, store: StoreConfig | None = None) -> ControlPlane:
    settings = PlatformSettings.from_env(home=tmp_path / "home",
                                         store=store or StoreConfig(kind="local", root=str(tmp_path / "store")))
    settings.home.mkdir()
    registry = Registry(settings.database_url)
    return ControlPlane(settings, registry, open_store(settings.store), FakeDeployer(), InProcessHub(),  # type: ignore[arg-type]
                        FlowState(settings.database_url))


@pytest.fixture
def plane(tmp_path: Path) -> ControlPlane:
    return make_plane(tmp_path)


@pytest.fixture
def admin(plane: ControlPlane) -> dict[str, str]:
    _, key = plane.registry.create_key("admin", "admin")
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client(plane: ControlPlane) -> Iterator[TestClient]:
    with TestClient(create_app(plane)) as client:
        yield client


def assert_unavailable(response: object, what: str) -> None:
    assert response.status_code == 503, response.text  # type: ignore[attr-defined]
    assert int(response.headers["retry-after"]) >= 1  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert error["type"] == "Unavailable" and what in error["message"], error
    assert "SELECT" not in error["message"]  # the driver's reason, not the SQL with its parameters


def test_a_registry_that_cannot_be_opened_is_503_and_served_again_once_back(
        plane: ControlPlane, admin: dict[str, str], client: TestClient) -> None:
    assert client.get("/v1/keys", headers=admin).status_code == 200
    path = Path(make_url(plane.registry.url).database or "")
    aside = path.with_name("moved-away")
    aside.mkdir()
    # The database goes away under the running control plane: its connections drop (as a restarted server's
    # do) and the file is replaced by something no database can open.
    plane.registry.engine.dispose()
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name.exists():
            shutil.move(name, aside / name.name)
    path.mkdir()
    try:
        assert_unavailable(client.get("/v1/keys", headers=admin), "the registry database")  # at the edge's key check
    finally:
        path.rmdir()
        for moved in aside.iterdir():
            shutil.move(moved, path.parent / moved.name)
    response = client.get("/v1/keys", headers=admin)
    assert response.status_code == 200, response.text


def test_a_locked_registry_is_503_on_a_write_and_the_write_works_once_released(
        plane: ControlPlane, admin: dict[str, str], client: TestClient) -> None:
    holder = sqlite3.connect(make_url(plane.registry.url).database or "", timeout=0)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another process holding the write lock past SQLite's busy timeout
        assert_unavailable(client.post("/v1/keys", json={"name": "ci"}, headers=admin), "database is locked")
    finally:
        holder.rollback()
        holder.close()
    response = client.post("/v1/keys", json={"name": "ci"}, headers=admin)
    assert response.status_code == 201, response.text


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again on leaving: connections are refused


def test_an_unreachable_store_is_a_quick_503_and_the_rest_of_the_api_still_answers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_EC2_METADATA_DISABLED": "true"}
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    plane = make_plane(tmp_path, StoreConfig(kind="s3", bucket="bundles", endpoint=f"http://127.0.0.1:{closed_port()}",
                                             region="us-east-1"))
    _, key = plane.registry.create_key("admin", "admin")
    admin = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(plane)) as client:
        started = time.monotonic()
        response = client.head(f"/v1/bundles/{SHA}", headers=admin)
        assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1
        response = client.post("/v1/deployments", json={"bundle_sha256": SHA}, headers=admin)
        assert_unavailable(response, "the bundle store")
        assert time.monotonic() - started < 15
        assert client.get("/v1/keys", headers=admin).status_code == 200


def test_a_gateway_answers_a_database_outage_503_and_other_database_errors_500_without_their_sql() -> None:
    import asyncio
    import json

    from sqlalchemy.exc import IntegrityError, OperationalError

    import fn
    from fnplatform.serving.http import answered
    from fnplatform.storage.outages import database_error

    async def failing(exc: BaseException) -> Any:
        raise exc

    def answer(exc: BaseException) -> tuple[int, dict[str, Any]]:
        response = asyncio.run(answered("rid-1", failing(exc), lambda e: database_error(e, "the jobs database")))
        return response.status_code, json.loads(bytes(response.body))["error"]

    status, error = answer(OperationalError("SELECT key_hash FROM keys", {}, Exception("database is locked")))
    assert status == 503 and "database is locked" in error["message"] and "SELECT" not in error["message"]
    status, error = answer(IntegrityError("INSERT INTO jobs VALUES ('hash-abc')", {}, Exception("UNIQUE failed")))
    assert status == 500 and error["message"] == "the jobs database refused the request" and error["request_id"] == "rid-1"
    assert answer(fn.NotFound("no job 'x'", status=404))[0] == 404
    status, error = answer(KeyError("k"))
    assert status == 500 and error["type"] == "KeyError"
