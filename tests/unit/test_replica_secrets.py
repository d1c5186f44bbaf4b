"""A replica's secrets, with no Ray: read from the hub (in-process) into os.environ before the user's module is
imported, also from inside a running event loop (Serve's __init__), and a clear failure when they never come."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import fn
from fnplatform.bundles.packaging import build_bundle
from fnplatform.serving import secrets as replica_secrets
from fnplatform.serving.hub import Hub
from fnplatform.storage.blobs import StoreConfig, open_store, put_bundle

from .conftest import ProjectFactory
from .test_gateway import InProcessActor
from .test_imports import run_python

SPEC = fn.FunctionSpec(name="f", secrets=("openai", "db"))


def hub_with(secrets: dict[str, dict[str, str]]) -> Hub:
    hub = Hub()
    asyncio.run(hub.put_secrets({name: {"revision": 1, "values": values} for name, values in secrets.items()}))
    return hub


@pytest.fixture
def clean_env() -> Iterator[None]:
    """install() writes os.environ: put it back as it was."""
    names = ("OPENAI_API_KEY", "DB_PASSWORD", "SHARED")
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    yield
    for name in names:
        os.environ.pop(name, None)
    os.environ.update(saved)


@pytest.mark.usefixtures("clean_env")
def test_the_values_of_every_named_secret_land_in_the_environment() -> None:
    hub = hub_with({"openai": {"OPENAI_API_KEY": "sk-1", "SHARED": "from-openai"}, "db": {"DB_PASSWORD": "pw", "SHARED": "db"},
                    "other": {"NOT_MINE": "x"}})
    names = replica_secrets.install(SPEC, InProcessActor(hub), wait_s=1)
    assert names == ["DB_PASSWORD", "OPENAI_API_KEY", "SHARED"]
    assert (os.environ["OPENAI_API_KEY"], os.environ["DB_PASSWORD"]) == ("sk-1", "pw")
    assert os.environ["SHARED"] == "db"  # in the order secrets=[...] lists them (deploys refuse such clashes)
    assert "NOT_MINE" not in os.environ  # only what the spec names is read


@pytest.mark.usefixtures("clean_env")
def test_install_works_inside_a_running_event_loop_as_in_serves_constructor() -> None:
    hub = hub_with({"openai": {"OPENAI_API_KEY": "sk-2"}, "db": {"DB_PASSWORD": "pw"}})

    async def constructor() -> list[str]:
        return replica_secrets.install(SPEC, InProcessActor(hub), wait_s=1)

    assert asyncio.run(constructor()) == ["DB_PASSWORD", "OPENAI_API_KEY"]
    assert os.environ["OPENAI_API_KEY"] == "sk-2"


@pytest.mark.usefixtures("clean_env")
def test_a_secret_published_late_is_waited_for() -> None:
    hub = hub_with({"openai": {"OPENAI_API_KEY": "sk-3"}})

    async def publish_later() -> None:
        await asyncio.sleep(0.3)
        await hub.put_secrets({"openai": {"revision": 1, "values": {"OPENAI_API_KEY": "sk-3"}},
                               "db": {"revision": 1, "values": {"DB_PASSWORD": "late"}}})

    class SlowHub(InProcessActor):
        def __init__(self) -> None:
            super().__init__(hub)
            self.started = False

        def __getattr__(self, name: str) -> object:
            if name == "read_secrets" and not self.started:
                self.started = True
                asyncio.get_running_loop().create_task(publish_later())
            return super().__getattr__(name)

    assert replica_secrets.install(SPEC, SlowHub(), wait_s=5) == ["DB_PASSWORD", "OPENAI_API_KEY"]
    assert os.environ["DB_PASSWORD"] == "late"


def test_a_secret_that_never_comes_fails_the_start_naming_it_and_never_a_value() -> None:
    hub = hub_with({"openai": {"OPENAI_API_KEY": "sk-never-shown"}})
    started = time.monotonic()
    with pytest.raises(replica_secrets.SecretsUnavailable) as info:
        replica_secrets.install(SPEC, InProcessActor(hub), wait_s=0.6)
    assert 0.5 < time.monotonic() - started < 5
    message = str(info.value)
    assert "secret(s) 'db' are not published to the hub" in message and "gave up after 0.6 s" in message
    assert "sk-never-shown" not in message


def test_no_hub_is_a_clear_error_and_no_secrets_need_none() -> None:
    with pytest.raises(replica_secrets.SecretsUnavailable, match="cannot reach the platform's hub actor"):
        replica_secrets.install(SPEC, None, wait_s=0)
    assert replica_secrets.install(fn.FunctionSpec(name="plain"), None) == []


MODULE = """
import os

import fn

TOKEN_AT_IMPORT = os.environ.get("API_TOKEN")  # None where 'fnctl deploy' imports it to find the functions


@fn.model(secrets=["api"])
class Checker:
    def setup(self) -> None:
        self.token = os.environ["API_TOKEN"]
        if TOKEN_AT_IMPORT != self.token:
            raise RuntimeError("the module was imported before its secret was set")

    def __call__(self, guess: str) -> bool:
        return guess == self.token == TOKEN_AT_IMPORT
"""

CHECK = """
import asyncio, json, sys
from types import SimpleNamespace
from fnplatform.serving import replica, secrets
from fnplatform.serving.hub import Hub

class Actor:
    def __init__(self, obj): self._obj = obj
    def __getattr__(self, name): return SimpleNamespace(remote=getattr(self._obj, name))

hub = Hub()
if {publish}:
    asyncio.run(hub.put_secrets({{"api": {{"revision": 1, "values": {{"API_TOKEN": "tok-42"}}}}}}))
replica.lazy_hub = lambda: Actor(hub)
secrets.WAIT_S = 0.5
print(json.dumps({{"error": replica.validate_version({spec!r}, {sha!r}, {store!r}, {cache!r})}}))
"""


@pytest.mark.parametrize("publish", [True, False])
def test_the_load_check_imports_the_module_with_its_secrets_already_set(
        publish: bool, make_project: ProjectFactory, tmp_path: Path) -> None:
    bundle = build_bundle(make_project({"main.py": MODULE}))
    store = StoreConfig(kind="local", root=str(tmp_path / "store"))
    put_bundle(open_store(store), bundle.sha256, bundle.data)
    spec = bundle.manifest.functions[0]
    code = CHECK.format(publish=publish, spec=spec.model_dump_json(), sha=bundle.sha256, store=store.to_dict(),
                        cache=str(tmp_path / "cache"))
    error = run_python(code, cwd=tmp_path)["error"]
    if publish:
        assert error is None
    else:
        assert isinstance(error, str) and error.startswith("SecretsUnavailable: secret(s) 'api' are not published")
