"""The bundle store: content-addressed bundles at ``bundles/<sha256>.zip``, in S3 or a local folder.

S3 goes through boto3 against any endpoint (AWS, MinIO, moto's server); credentials come from the
usual AWS variables. The local store keeps the same layout under a folder. Both refuse to keep
bytes whose hash does not match their name, and an existing hash is never uploaded again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from fn import NotFound, Unavailable
from fnplatform.bundles.extract import extract_bundle
from fnplatform.bundles.packaging import BundleError, Manifest, hash_file, inspect_bundle
from fnplatform.bundles.safety import BundleLimits
from fnplatform.deadlines import (
    RETRY_AFTER_S,
    STORE_CONNECT_TIMEOUT_S,
    STORE_MAX_ATTEMPTS,
    STORE_READ_TIMEOUT_S,
)

from . import cache as node_cache
from .cache import CachePolicy


@dataclass(frozen=True)
class StoreConfig:
    """What a replica needs to reach the store: passed to every deployment, so it must be plain data."""

    kind: str  # "local" | "s3"
    root: str = ""  # local: the folder
    bucket: str = ""
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if self.kind == "local":
            return self.root
        return f"s3://{self.bucket}/{self.prefix}" + (f" at {self.endpoint}" if self.endpoint else "")


def bundle_key(sha256: str) -> str:
    return f"bundles/{sha256}.zip"


def artifact_key(sha256: str) -> str:
    return f"artifacts/{sha256}"


class BundleStore(Protocol):
    config: StoreConfig

    def exists(self, key: str) -> bool: ...
    def read(self, key: str) -> bytes: ...
    def write(self, key: str, data: bytes) -> None: ...
    def write_file(self, key: str, path: Path) -> None: ...
    def download(self, key: str, dest: Path) -> None: ...
    def delete(self, key: str) -> None: ...
    def listing(self, prefix: str) -> Iterator[tuple[str, float, int]]: ...


class LocalStore:
    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.root = Path(config.root)

    def exists(self, key: str) -> bool:
        return (self.root / key).is_file()

    def read(self, key: str) -> bytes:
        path = self.root / key
        if not path.is_file():
            raise FileNotFoundError(f"{key} is not in the store {self.root}")
        return path.read_bytes()

    def write(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)

    def write_file(self, key: str, source: Path) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        os.close(fd)
        shutil.copyfile(source, tmp)
        os.replace(tmp, path)

    def download(self, key: str, dest: Path) -> None:
        path = self.root / key
        if not path.is_file():
            raise FileNotFoundError(f"{key} is not in the store {self.root}")
        shutil.copyfile(path, dest)

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def listing(self, prefix: str) -> Iterator[tuple[str, float, int]]:
        """(key, last modified as epoch seconds, size) of each object under *prefix*, an unfinished upload too."""
        folder = self.root / prefix
        if not folder.is_dir():
            return
        for path in folder.rglob("*"):
            with contextlib.suppress(FileNotFoundError):  # deleted since the folder was listed
                if path.is_file():
                    stat = path.stat()
                    yield path.relative_to(self.root).as_posix(), stat.st_mtime, stat.st_size


class S3Store:
    def __init__(self, config: StoreConfig) -> None:
        import boto3
        from botocore.config import Config

        self.config = config
        self._client = boto3.client(
            "s3", endpoint_url=config.endpoint, region_name=config.region,
            # An unreachable store fails in seconds (a 503), never holds a thread: fnplatform.deadlines.
            config=Config(connect_timeout=STORE_CONNECT_TIMEOUT_S, read_timeout=STORE_READ_TIMEOUT_S,
                          retries={"max_attempts": STORE_MAX_ATTEMPTS, "mode": "standard"}),
        )

    def _key(self, key: str) -> str:
        return f"{self.config.prefix.strip('/')}/{key}" if self.config.prefix.strip("/") else key

    def _unavailable(self, action: str, exc: Exception) -> Unavailable:
        return Unavailable(f"the bundle store {self.config.describe()} is unreachable ({action}): {exc}", status=503,
                           retry_after=RETRY_AFTER_S)

    def ensure_bucket(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.head_bucket(Bucket=self.config.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket", "NotFound"}:
                raise self._unavailable("head bucket", exc) from None
            self._create_bucket()
        except BotoCoreError as exc:
            raise self._unavailable("head bucket", exc) from None

    def _create_bucket(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        # Outside us-east-1, S3 refuses a CreateBucket without the region as its location constraint.
        region = self._client.meta.region_name
        extra: dict[str, Any] = (
            {"CreateBucketConfiguration": {"LocationConstraint": region}} if region and region != "us-east-1" else {}
        )
        try:
            self._client.create_bucket(Bucket=self.config.bucket, **extra)
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable("create bucket", exc) from None

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.head_object(Bucket=self.config.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise self._unavailable("head", exc) from None
        except BotoCoreError as exc:
            raise self._unavailable("head", exc) from None

    def read(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self._client.get_object(Bucket=self.config.bucket, Key=self._key(key))["Body"]
            return bytes(body.read())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey"}:
                raise FileNotFoundError(f"{key} is not in {self.config.describe()}") from None
            raise self._unavailable("get", exc) from None
        except BotoCoreError as exc:
            raise self._unavailable("get", exc) from None

    def write(self, key: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.put_object(Bucket=self.config.bucket, Key=self._key(key), Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable("put", exc) from None

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.delete_object(Bucket=self.config.bucket, Key=self._key(key))  # no error if it is gone
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable("delete", exc) from None

    def listing(self, prefix: str) -> Iterator[tuple[str, float, int]]:
        from botocore.exceptions import BotoCoreError, ClientError

        base = self._key("")
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.config.bucket,
                                                                                 Prefix=self._key(prefix)):
                for item in page.get("Contents", []):
                    yield str(item["Key"])[len(base):], item["LastModified"].timestamp(), int(item["Size"])
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable("list", exc) from None

    def write_file(self, key: str, path: Path) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.upload_file(str(path), self.config.bucket, self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable("put", exc) from None

    def download(self, key: str, dest: Path) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.download_file(self.config.bucket, self._key(key), str(dest))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                raise FileNotFoundError(f"{key} is not in {self.config.describe()}") from None
            raise self._unavailable("get", exc) from None
        except BotoCoreError as exc:
            raise self._unavailable("get", exc) from None


def open_store(config: StoreConfig) -> LocalStore | S3Store:
    if config.kind == "local":
        return LocalStore(config)
    if config.kind == "s3":
        return S3Store(config)
    raise ValueError(f"unknown store kind {config.kind!r}; expected 'local' or 's3'")


def put_bundle(store: BundleStore, sha256: str, data: bytes) -> bool:
    """Store a bundle once and verify it by reading it back; returns False when it was already there."""
    key = bundle_key(sha256)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise BundleError(f"refusing to store bytes under {sha256}: their sha256 differs")
    if store.exists(key) and hashlib.sha256(store.read(key)).hexdigest() == sha256:
        return False
    store.write(key, data)
    stored = hashlib.sha256(store.read(key)).hexdigest()
    if stored != sha256:
        raise Unavailable(f"the bundle store kept different bytes for {sha256} (read back {stored}); try again", status=503)
    return True


def fetch_bundle(config: StoreConfig, sha256: str, cache_dir: str | Path, policy: CachePolicy | None = None) -> Path:
    """The unpacked bundle folder in this node's cache, downloading, verifying and unpacking it on first use."""
    policy = policy or CachePolicy()
    target = Path(cache_dir) / sha256
    if node_cache.use(target / node_cache.MARKER, policy):
        return target
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{sha256[:12]}-"))
    try:
        archive_path = staging / "bundle.zip"
        open_store(config).download(bundle_key(sha256), archive_path)
        digest = hash_file(archive_path)
        if digest != sha256:
            raise BundleError(f"bundle {sha256} from {config.describe()} has sha256 {digest}: refusing to load it")
        size = extract_bundle(archive_path, staging / "code", policy.limits)
        (staging / "code" / node_cache.SIZE_FILE).write_text(str(size))
        (staging / "code" / node_cache.MARKER).write_text(sha256)
        try:
            os.rename(staging / "code", target)
        except OSError:
            if not (target / node_cache.MARKER).is_file():  # lost a race to a replica that did not finish
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    node_cache.use(target / node_cache.MARKER, policy)
    node_cache.prune(cache_dir, policy)
    return target


def put_artifact(store: BundleStore, sha256: str, path: Path) -> bool:
    """Store a model file under its hash (already verified by the caller); False when it was there."""
    key = artifact_key(sha256)
    if store.exists(key):
        return False
    if hash_file(path) != sha256:
        raise BundleError(f"refusing to store an artifact under {sha256}: its sha256 differs")
    store.write_file(key, path)
    return True


def fetch_artifact(config: StoreConfig, sha256: str, cache_dir: str | Path, policy: CachePolicy | None = None) -> Path:
    """The artifact's file in this node's cache, downloaded and verified on first use (then shared)."""
    policy = policy or CachePolicy()
    folder = Path(cache_dir) / "artifacts"
    target = folder / sha256
    if node_cache.use(target, policy):
        return target  # only ever renamed into place after its hash was checked
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{sha256[:12]}-")
    os.close(fd)
    try:
        try:
            open_store(config).download(artifact_key(sha256), Path(tmp))
        except FileNotFoundError:
            raise BundleError(f"artifact {sha256} is not in the store {config.describe()}; deploy the project "
                              f"again with 'fnctl deploy' to upload it") from None
        digest = hash_file(Path(tmp))
        if digest != sha256:
            raise BundleError(f"artifact {sha256} from {config.describe()} has sha256 {digest}: refusing to load it")
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    node_cache.use(target, policy)
    node_cache.prune(cache_dir, policy)
    return target


def bundle_missing(sha256: str) -> NotFound:
    return NotFound(f"bundle {sha256} is not in the store; upload it first (PUT /v1/bundles/{sha256})", status=404)


def bundle_manifest_from_store(store: BundleStore, sha256: str, max_bytes: int,
                               limits: BundleLimits | None = None) -> Manifest:
    """The manifest of a bundle already in the store, checked again as it is read."""
    try:
        data = store.read(bundle_key(sha256))
    except FileNotFoundError:
        raise bundle_missing(sha256) from None
    return inspect_bundle(data, expected_sha256=sha256, max_bytes=max_bytes, limits=limits)
