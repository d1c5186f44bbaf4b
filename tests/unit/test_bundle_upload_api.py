"""PUT /v1/bundles through the real FastAPI app in-process: caps answer 413, refused entries 400, with
the message naming the cap, the value and the setting; /v1/info publishes the caps for fnctl deploy."""

from __future__ import annotations

import hashlib
import io
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import fn
from fnplatform.bundles.packaging import MANIFEST_NAME, Manifest
from fnplatform.bundles.safety import BundleLimits
from fnplatform.control.api import create_app
from fnplatform.control.plane import ControlPlane
from fnplatform.control.settings import PlatformSettings
from fnplatform.flows.state import FlowState
from fnplatform.storage.blobs import StoreConfig, bundle_key, open_store
from fnplatform.storage.registry import Registry

from .test_control_plane import FakeDeployer, InProcessHub

MANIFEST = Manifest(functions=(fn.FunctionSpec(name="add", entrypoint="app:add"),)).to_json()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, ControlPlane]]:
    settings = PlatformSettings.from_env(home=tmp_path / "home", store=StoreConfig(kind="local", root=str(tmp_path / "s")),
                                         bundle_limits=BundleLimits(max_unpacked_bytes=1024 * 1024))
    settings.max_bundle_bytes = 200_000
    settings.home.mkdir()
    registry = Registry(settings.database_url)
    plane = ControlPlane(settings, registry, open_store(settings.store), FakeDeployer(), InProcessHub(),  # type: ignore[arg-type]
                         FlowState(settings.database_url))
    _, key = registry.create_key("test", "deploy")
    with TestClient(create_app(plane), headers={"authorization": f"Bearer {key}"}) as client:
        yield client, plane


def zipped(*members: tuple[str | zipfile.ZipInfo, bytes], declare: int | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST_NAME, MANIFEST)
        for name, data in members:
            archive.writestr(name, data)
        if declare is not None:
            archive.filelist[-1].file_size = declare
    return buffer.getvalue()


def put(client: TestClient, data: bytes) -> tuple[int, str]:
    response = client.put(f"/v1/bundles/{hashlib.sha256(data).hexdigest()}", content=data)
    return response.status_code, response.json().get("error", {}).get("message", "")


def test_a_normal_bundle_is_stored(api: tuple[TestClient, ControlPlane]) -> None:
    client, plane = api
    data = zipped(("app.py", b"def add(a, b):\n    return a + b\n"))
    response = client.put(f"/v1/bundles/{hashlib.sha256(data).hexdigest()}", content=data)
    assert response.status_code == 201
    assert response.json()["functions"] == ["add"]
    assert plane.store.exists(bundle_key(hashlib.sha256(data).hexdigest()))


def test_a_bomb_is_413_naming_the_cap_and_the_setting(api: tuple[TestClient, ControlPlane]) -> None:
    client, plane = api
    data = zipped(("big.bin", b"x" * 100), declare=300 * 1024 * 1024)
    status, message = put(client, data)
    assert status == 413
    assert f"unpacked size is {300 * 1024 * 1024 + len(MANIFEST):,} bytes" in message
    assert "over the limit of 1,048,576 (FN_MAX_UNPACKED_MB)" in message
    assert not plane.store.exists(bundle_key(hashlib.sha256(data).hexdigest()))


def test_a_symlink_entry_is_400(api: tuple[TestClient, ControlPlane]) -> None:
    client, _ = api
    link = zipfile.ZipInfo("app.py")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    status, message = put(client, zipped((link, b"/etc/passwd")))
    assert status == 400
    assert message == "the bundle has an unsafe entry 'app.py': it is a symlink; only regular files and folders are allowed"


def test_a_chunked_body_over_the_limit_is_413(api: tuple[TestClient, ControlPlane]) -> None:
    """No content-length to check up front: the bytes that arrive are counted."""
    client, _ = api

    def body() -> Iterator[bytes]:
        for _ in range(100):
            yield b"x" * 10_000

    response = client.put("/v1/bundles/" + "0" * 64, content=body())
    assert response.status_code == 413
    assert "over the limit of 200,000 bytes (FN_MAX_BUNDLE_MB)" in response.json()["error"]["message"]


def test_info_publishes_the_caps(api: tuple[TestClient, ControlPlane]) -> None:
    client, plane = api
    info = client.get("/v1/info").json()
    assert BundleLimits.from_dict(info["bundle_limits"]) == plane.settings.bundle_limits
