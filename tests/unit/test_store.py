"""The bundle store: a local folder, and S3 through boto3 against moto's real S3 API over HTTP."""

from __future__ import annotations

import hashlib
import io
import shutil
import time
import zipfile
from pathlib import Path

import pytest

import fn
from fnplatform.bundles.packaging import (
    MANIFEST_NAME,
    BundleError,
    Manifest,
    build_zip,
    collect_files,
)
from fnplatform.storage.blobs import (
    LocalStore,
    S3Store,
    StoreConfig,
    bundle_key,
    bundle_manifest_from_store,
    fetch_bundle,
    open_store,
    put_bundle,
)

from .conftest import ProjectFactory, free_port


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def bundle(make_project: ProjectFactory) -> tuple[str, bytes]:
    """A real bundle (no discovery needed: the manifest is given)."""
    root = make_project({"app.py": "import fn\n", "pkg/data.txt": "payload\n"})
    manifest = Manifest(functions=(fn.FunctionSpec(name="add", entrypoint="app:add"),))
    data = build_zip(collect_files(root), manifest, max_bytes=10**6)
    return sha(data), data


@pytest.fixture
def local(tmp_path: Path) -> LocalStore:
    return LocalStore(StoreConfig(kind="local", root=str(tmp_path / "store")))


class CorruptingStore(LocalStore):
    """A store that keeps other bytes than it was given."""

    def write(self, key: str, data: bytes) -> None:
        super().write(key, data[::-1])


# --- local store ------------------------------------------------------------------------------


def test_local_store_write_read_exists(local: LocalStore) -> None:
    assert not local.exists("bundles/x.zip")
    local.write("bundles/x.zip", b"one")
    local.write("bundles/x.zip", b"two")
    assert local.exists("bundles/x.zip")
    assert local.read("bundles/x.zip") == b"two"
    assert sorted(p.name for p in (local.root / "bundles").iterdir()) == ["x.zip"]  # no temp files left


def test_local_store_read_missing(local: LocalStore) -> None:
    with pytest.raises(FileNotFoundError, match=r"bundles/none\.zip is not in the store"):
        local.read("bundles/none.zip")


def test_open_store(tmp_path: Path) -> None:
    assert isinstance(open_store(StoreConfig(kind="local", root=str(tmp_path))), LocalStore)
    with pytest.raises(ValueError, match="unknown store kind 'ftp'; expected 'local' or 's3'"):
        open_store(StoreConfig(kind="ftp"))


def test_store_config_is_plain_data() -> None:
    config = StoreConfig(kind="s3", bucket="bundles", prefix="fn", endpoint="http://127.0.0.1:9000")
    assert StoreConfig(**config.to_dict()) == config
    assert config.describe() == "s3://bundles/fn at http://127.0.0.1:9000"
    assert StoreConfig(kind="local", root="/var/fn").describe() == "/var/fn"


def test_bundle_key() -> None:
    assert bundle_key("ab" * 32) == f"bundles/{'ab' * 32}.zip"


# --- put_bundle -------------------------------------------------------------------------------


def test_put_bundle_stores_once(local: LocalStore, bundle: tuple[str, bytes]) -> None:
    digest, data = bundle
    assert put_bundle(local, digest, data) is True
    path = local.root / bundle_key(digest)
    assert path.read_bytes() == data
    mtime = path.stat().st_mtime_ns
    time.sleep(0.01)
    assert put_bundle(local, digest, data) is False
    assert path.stat().st_mtime_ns == mtime  # not written again


def test_put_bundle_refuses_bytes_that_do_not_match_their_name(local: LocalStore) -> None:
    with pytest.raises(BundleError, match=r"refusing to store bytes under 0{64}: their sha256 differs"):
        put_bundle(local, "0" * 64, b"data")
    assert not local.exists(bundle_key("0" * 64))


def test_put_bundle_replaces_corrupt_stored_bytes(local: LocalStore, bundle: tuple[str, bytes]) -> None:
    digest, data = bundle
    local.write(bundle_key(digest), b"truncated")
    assert put_bundle(local, digest, data) is True
    assert local.read(bundle_key(digest)) == data


def test_put_bundle_verifies_by_reading_back(tmp_path: Path, bundle: tuple[str, bytes]) -> None:
    digest, data = bundle
    store = CorruptingStore(StoreConfig(kind="local", root=str(tmp_path / "bad")))
    with pytest.raises(fn.Unavailable, match=f"kept different bytes for {digest}"):
        put_bundle(store, digest, data)


# --- fetch_bundle -----------------------------------------------------------------------------


def test_fetch_bundle_downloads_verifies_and_extracts(local: LocalStore, bundle: tuple[str, bytes],
                                                      tmp_path: Path) -> None:
    digest, data = bundle
    put_bundle(local, digest, data)
    cache = tmp_path / "cache"
    target = fetch_bundle(local.config, digest, cache)
    assert target == cache / digest
    assert (target / "app.py").read_text() == "import fn\n"
    assert (target / "pkg" / "data.txt").read_text() == "payload\n"
    assert (target / MANIFEST_NAME).is_file()
    assert (target / ".verified").read_text() == digest
    assert sorted(p.name for p in cache.iterdir()) == [digest]  # no staging folders left


def test_fetch_bundle_uses_the_verified_cache(local: LocalStore, bundle: tuple[str, bytes], tmp_path: Path) -> None:
    digest, data = bundle
    put_bundle(local, digest, data)
    first = fetch_bundle(local.config, digest, tmp_path / "cache")
    shutil.rmtree(local.root)  # the store is gone: the cache must answer
    assert fetch_bundle(local.config, digest, tmp_path / "cache") == first


def test_fetch_bundle_refuses_tampered_bytes(local: LocalStore, bundle: tuple[str, bytes], tmp_path: Path) -> None:
    digest, data = bundle
    tampered = bytearray(data)
    tampered[len(tampered) // 2] ^= 0xFF
    local.write(bundle_key(digest), bytes(tampered))
    cache = tmp_path / "cache"
    with pytest.raises(BundleError) as info:
        fetch_bundle(local.config, digest, cache)
    assert f"has sha256 {sha(bytes(tampered))}: refusing to load it" in str(info.value)
    assert not (cache / digest).exists()


def test_fetch_bundle_missing(local: LocalStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fetch_bundle(local.config, "1" * 64, tmp_path / "cache")


# --- S3 over HTTP (moto's server) -------------------------------------------------------------


@pytest.fixture
def s3(s3_endpoint: str, request: pytest.FixtureRequest) -> S3Store:
    bucket = "fn-" + hashlib.sha256(request.node.name.encode()).hexdigest()[:20]
    store = S3Store(StoreConfig(kind="s3", bucket=bucket, prefix="team/", endpoint=s3_endpoint))
    store.ensure_bucket()
    return store


def test_s3_ensure_bucket_creates_it_once(s3: S3Store) -> None:
    s3.ensure_bucket()  # already there: no error
    names = [b["Name"] for b in s3._client.list_buckets()["Buckets"]]
    assert s3.config.bucket in names


def test_s3_ensure_bucket_outside_us_east_1(s3_endpoint: str) -> None:
    store = S3Store(StoreConfig(kind="s3", bucket="fn-eu-bundles", endpoint=s3_endpoint, region="eu-west-1"))
    store.ensure_bucket()
    store.ensure_bucket()
    assert store._client.get_bucket_location(Bucket="fn-eu-bundles")["LocationConstraint"] == "eu-west-1"
    store.write("k", b"v")
    assert store.read("k") == b"v"


def test_s3_put_read_and_key_layout(s3: S3Store, bundle: tuple[str, bytes]) -> None:
    digest, data = bundle
    assert not s3.exists(bundle_key(digest))
    assert put_bundle(s3, digest, data) is True
    assert put_bundle(s3, digest, data) is False
    assert s3.exists(bundle_key(digest))
    assert s3.read(bundle_key(digest)) == data
    keys = [o["Key"] for o in s3._client.list_objects_v2(Bucket=s3.config.bucket)["Contents"]]
    assert keys == [f"team/bundles/{digest}.zip"]


def test_s3_read_missing_is_file_not_found(s3: S3Store) -> None:
    with pytest.raises(FileNotFoundError, match=f"bundles/none.zip is not in s3://{s3.config.bucket}/team/"):
        s3.read("bundles/none.zip")


def test_s3_fetch_bundle(s3: S3Store, bundle: tuple[str, bytes], tmp_path: Path) -> None:
    digest, data = bundle
    put_bundle(s3, digest, data)
    target = fetch_bundle(s3.config, digest, tmp_path / "cache")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            assert (target / name).read_bytes() == archive.read(name)


def test_s3_fetch_bundle_refuses_tampered_bytes(s3: S3Store, bundle: tuple[str, bytes], tmp_path: Path) -> None:
    digest, data = bundle
    s3.write(bundle_key(digest), data + b"extra")
    with pytest.raises(BundleError, match="refusing to load it"):
        fetch_bundle(s3.config, digest, tmp_path / "cache")


def test_s3_missing_bucket_is_reported(s3_endpoint: str) -> None:
    store = S3Store(StoreConfig(kind="s3", bucket="fn-never-created", endpoint=s3_endpoint))
    with pytest.raises(fn.Unavailable, match="NoSuchBucket"):
        store.write("k", b"v")


def test_s3_unreachable_endpoint_is_unavailable(s3_endpoint: str) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = S3Store(StoreConfig(kind="s3", bucket="fn-bundles", endpoint=endpoint))
    started = time.monotonic()
    with pytest.raises(fn.Unavailable) as info:
        store.exists("bundles/x.zip")
    assert time.monotonic() - started < 30
    message = str(info.value)
    assert info.value.status == 503
    assert f"the bundle store s3://fn-bundles/ at {endpoint} is unreachable" in message
    assert "Could not connect to the endpoint URL" in message



def test_bundle_manifest_from_store(local: LocalStore, bundle: tuple[str, bytes]) -> None:
    digest, data = bundle
    with pytest.raises(fn.NotFound, match=rf"bundle {digest} is not in the store; upload it first"):
        bundle_manifest_from_store(local, digest, max_bytes=10**6)
    put_bundle(local, digest, data)
    manifest = bundle_manifest_from_store(local, digest, max_bytes=10**6)
    assert [s.entrypoint for s in manifest.functions] == ["app:add"]
    local.write(bundle_key(digest), data[:-1])  # the stored copy went bad: checked again on read
    with pytest.raises(BundleError, match="sha256"):
        bundle_manifest_from_store(local, digest, max_bytes=10**6)
