"""Keys survive hub trouble, with no Ray: the real Hub class (what Ray runs as the actor) in-process, a
restart being a fresh Hub, and the data plane's real copies (KeyCache, Pushed) reading it through the
real HubRef. The control plane's refill runs over a real registry (SQLite)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

import fn
from fnplatform.control.plane import ControlPlane
from fnplatform.control.settings import PlatformSettings
from fnplatform.flows.state import FlowState
from fnplatform.keys import Grant, hash_key
from fnplatform.serving import auth
from fnplatform.serving.auth import KeyCache
from fnplatform.serving.hub import Hub, HubRef, HubUnavailable
from fnplatform.storage.blobs import StoreConfig, open_store
from fnplatform.storage.registry import Registry

from .test_control_plane import FakeDeployer, InProcessHub
from .test_gateway import InProcessActor

KEY = "fn_valid-key-0123456789abcdefghijklmnop"
NEW_KEY = "fn_created-after-the-restart-0123456789"
AUTH = {"authorization": f"Bearer {KEY}"}


def grants(*keys: str) -> dict[str, Any]:
    return {hash_key(key): Grant(key_id=f"k{i}", role="invoke").to_json() for i, key in enumerate(keys)}


class Cluster:
    """Where the hub actor is: ``restart()`` is Ray bringing the actor back, a new empty Hub behind the same
    handle; while ``hub`` is None it cannot be looked up and calls on a handle fail."""

    def __init__(self) -> None:
        self.hub: Hub | None = Hub()
        self.lookups = 0

    def find(self) -> Any:
        self.lookups += 1
        if self.hub is None:
            raise ValueError("Failed to look up actor with name 'fn-hub'")
        return self

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any) -> Any:
            if self.hub is None:
                raise RuntimeError("The actor died unexpectedly before finishing this task.")
            return await getattr(self.hub, name)(*args)

        return type("M", (), {"remote": staticmethod(call)})()

    def restart(self) -> Hub:
        self.hub = Hub()
        return self.hub


def test_an_unfilled_hub_answers_not_ready_and_says_so_in_its_status() -> None:
    async def scenario() -> None:
        hub = Hub()
        assert await hub.read("keys") == (0, None)  # "nothing published": a reader keeps its copy
        assert await hub.read_secrets(["api"]) == {}
        status = await hub.status()
        assert (status["topics"], status["secrets"]) == ([], False)
        await hub.publish("keys", {})
        await hub.put_secrets({})
        status = await hub.status()
        assert (status["topics"], status["secrets"]) == (["keys"], True)
        assert (await Hub().status())["start_id"] != status["start_id"]

    asyncio.run(scenario())


def test_versions_never_repeat_across_a_restart() -> None:
    # A reader holding version v of the old hub's keys must not take the new hub's v as "nothing new".
    before = asyncio.run(Hub().publish("keys", {"a": 1}))
    after = asyncio.run(Hub().publish("keys", {"b": 2}))  # the restarted hub's first publish
    assert after > before


def test_a_restarted_empty_hub_never_empties_a_replicas_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "KEY_CACHE_TTL_S", 0.0)  # every call re-reads the hub
    monkeypatch.setattr(auth, "KEY_MISS_REFRESH_S", 0.0)
    cluster = Cluster()
    asyncio.run(cluster.hub.publish("keys", grants(KEY)))  # type: ignore[union-attr]
    keys = KeyCache(HubRef(cluster.find, retry_s=0.0))

    async def scenario() -> None:
        assert (await keys.authenticate(AUTH)).key_id == "k0"
        hub = cluster.restart()  # empty until the control plane refills it
        for _ in range(3):
            assert (await keys.authenticate(AUTH)).key_id == "k0"
        await hub.publish("keys", grants(KEY, NEW_KEY))  # the refill
        assert (await keys.authenticate({"authorization": f"Bearer {NEW_KEY}"})).key_id == "k1"
        with pytest.raises(fn.Unauthorized) as refused:
            await keys.authenticate({"authorization": "Bearer fn_never-issued-0123456789abcdef"})
        assert refused.value.status == 401

    asyncio.run(scenario())


def test_a_replica_started_while_the_hub_is_away_says_503_then_serves_once_it_is_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "KEY_MISS_REFRESH_S", 0.0)
    cluster = Cluster()
    cluster.hub = None  # not created yet, or its node is gone
    keys = KeyCache(HubRef(cluster.find, retry_s=0.0))

    async def scenario() -> None:
        with pytest.raises(fn.Unavailable) as unavailable:
            await keys.authenticate(AUTH)
        assert (unavailable.value.status, unavailable.value.retry_after) == (503, 2.0)
        assert "not loaded" in unavailable.value.message
        with pytest.raises(fn.Unauthorized):  # no key at all is still a 401
            await keys.authenticate({})
        hub = cluster.restart()
        with pytest.raises(fn.Unavailable):  # there, but not filled yet: still no verdict on the key
            await keys.authenticate(AUTH)
        await hub.publish("keys", grants(KEY))
        assert (await keys.authenticate(AUTH)).key_id == "k0"  # the same replica, no restart

    asyncio.run(scenario())


class DeadHandle:
    """A handle to an actor that died for good: every call fails, as Ray's RayActorError does."""

    def __getattr__(self, name: str) -> Any:
        async def fail(*_args: Any) -> Any:
            raise RuntimeError("The actor died unexpectedly before finishing this task.")

        return type("M", (), {"remote": staticmethod(fail)})()


class HungHandle:
    def __getattr__(self, name: str) -> Any:
        async def hang(*_args: Any) -> Any:
            await asyncio.sleep(60)

        return type("M", (), {"remote": staticmethod(hang)})()


def test_a_failed_or_hung_call_drops_the_handle_and_the_next_call_looks_the_hub_up_again() -> None:
    hub = Hub()
    handles: list[Any] = [DeadHandle(), HungHandle(), InProcessActor(hub)]
    ref = HubRef(lambda: handles.pop(0), retry_s=0.0, timeout_s=0.2)

    async def scenario() -> None:
        await hub.publish("keys", {"x": 1})
        with pytest.raises(RuntimeError, match="died"):
            await ref.read.remote("keys", -1)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await ref.read.remote("keys", -1)
        assert time.monotonic() - started < 2  # the hub's deadline, not the hang
        assert (await ref.read.remote("keys", -1))[1] == {"x": 1}
        assert (await ref.read.remote("keys", -1))[1] == {"x": 1}  # the good handle is kept

    asyncio.run(scenario())
    assert handles == []


def test_a_missing_hub_is_looked_up_at_most_once_per_interval() -> None:
    cluster = Cluster()
    cluster.hub = None
    ref = HubRef(cluster.find, retry_s=30.0)
    for _ in range(5):
        with pytest.raises(HubUnavailable):
            ref.read.remote("keys", -1)
    assert cluster.lookups == 1


class RestartableHub(InProcessHub):
    """The control plane's hub client over an in-process Hub that can be restarted empty."""

    def status(self) -> dict[str, Any]:
        return asyncio.run(self.hub.status())

    def restart(self) -> None:
        self.hub = Hub()


@pytest.fixture
def plane(tmp_path: Path) -> ControlPlane:
    settings = PlatformSettings.from_env(home=tmp_path / "home", store=StoreConfig(kind="local", root=str(tmp_path / "store")))
    settings.home.mkdir()
    registry = Registry(settings.database_url)
    return ControlPlane(settings, registry, open_store(settings.store), FakeDeployer(), RestartableHub(),  # type: ignore[arg-type]
                        FlowState(settings.database_url))


def test_the_control_plane_refills_a_restarted_hub_with_everything_once(plane: ControlPlane) -> None:
    hub: RestartableHub = plane.hub  # type: ignore[assignment]
    created = plane.create_key("ci")
    assert plane.refill_hub() is True  # a hub it never filled whole
    assert plane.refill_hub() is False  # nothing changed since
    hub.restart()
    assert hub.read("keys") is None
    assert plane.refill_hub() is True
    assert hash_key(created["key"]) in hub.read("keys")
    assert hub.read("functions") == []
    assert asyncio.run(hub.hub.status())["secrets"] is True
    assert plane.refill_hub() is False
