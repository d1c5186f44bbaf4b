"""The node cache: bounded by bytes, least recently used first, never what a live process uses."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest

import fn
from fnplatform.bundles.packaging import Manifest, build_zip, collect_files
from fnplatform.control.settings import PlatformSettings
from fnplatform.storage import cache
from fnplatform.storage.blobs import LocalStore, StoreConfig, fetch_artifact, fetch_bundle, put_artifact, put_bundle
from fnplatform.storage.cache import CachePolicy, prune

from .conftest import ProjectFactory

HOUR = 3600.0
MANIFEST = Manifest(functions=(fn.FunctionSpec(name="add", entrypoint="app:add"),))


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def aged(path: Path, seconds_ago: float) -> None:
    stamp = time.time() - seconds_ago
    os.utime(path, (stamp, stamp))


def other_process_bundle(root: Path, name: str, size: int, seconds_ago: float) -> Path:
    """A bundle folder as another process left it: unpacked, marked, last used *seconds_ago*."""
    folder = root / sha(name)
    folder.mkdir(parents=True)
    (folder / "app.py").write_bytes(b"x" * size)
    (folder / cache.SIZE_FILE).write_text(str(size))
    (folder / cache.MARKER).write_text(sha(name))
    aged(folder / cache.MARKER, seconds_ago)
    return folder


def other_process_artifact(root: Path, name: str, size: int, seconds_ago: float) -> Path:
    path = root / "artifacts" / sha(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"w" * size)
    aged(path, seconds_ago)
    return path


def test_least_recently_used_idle_entries_go_first_until_the_cache_fits(tmp_path: Path) -> None:
    oldest = other_process_bundle(tmp_path, "a", 400, 5 * HOUR)
    older = other_process_artifact(tmp_path, "b", 400, 4 * HOUR)
    old = other_process_bundle(tmp_path, "c", 400, 3 * HOUR)
    evicted = prune(tmp_path, CachePolicy(max_bytes=500, idle_s=HOUR))
    assert evicted == [oldest, older]
    assert not oldest.exists() and not older.exists()
    assert (old / "app.py").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["artifacts", old.name])  # nothing left aside


def test_entries_used_recently_are_kept_even_over_the_cap(tmp_path: Path) -> None:
    recent = other_process_bundle(tmp_path, "a", 1000, 60)
    artifact = other_process_artifact(tmp_path, "b", 1000, 60)
    assert prune(tmp_path, CachePolicy(max_bytes=10, idle_s=HOUR)) == []
    assert recent.exists() and artifact.exists()


def test_nothing_is_evicted_under_the_cap(tmp_path: Path) -> None:
    idle = other_process_bundle(tmp_path, "a", 100, 10 * HOUR)
    assert prune(tmp_path, CachePolicy(max_bytes=1000, idle_s=HOUR)) == []
    assert idle.exists()


def test_what_this_process_uses_is_kept_however_old(tmp_path: Path) -> None:
    mine = other_process_bundle(tmp_path, "mine", 500, 10 * HOUR)
    assert cache.use(mine / cache.MARKER, CachePolicy())
    aged(mine / cache.MARKER, 10 * HOUR)  # as if the heartbeat had stalled: the in-process set still holds it
    theirs = other_process_bundle(tmp_path, "theirs", 500, 9 * HOUR)
    assert prune(tmp_path, CachePolicy(max_bytes=100, idle_s=HOUR)) == [theirs]
    assert mine.exists()


def test_the_heartbeat_keeps_what_this_process_uses_fresh(tmp_path: Path) -> None:
    artifact = other_process_artifact(tmp_path, "model", 10, 0)
    assert cache.use(artifact, CachePolicy())
    aged(artifact, 10 * HOUR)
    cache.touch_in_use()
    assert time.time() - artifact.stat().st_mtime < 60


def test_an_entry_touched_during_its_eviction_is_put_back(tmp_path: Path) -> None:
    folder = other_process_bundle(tmp_path, "a", 500, 5 * HOUR)
    [item] = cache._items(tmp_path, time.time_ns(), int(HOUR * 1e9))
    os.utime(folder / cache.MARKER)  # another process takes it after the look, before the rename
    assert cache._evict(item) is False
    assert (folder / "app.py").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]


def test_leftovers_of_crashed_unpacking_are_removed_once_idle(tmp_path: Path) -> None:
    crashed = tmp_path / ".0123456789ab-xyz"
    (crashed / "code").mkdir(parents=True)
    aged(crashed, 2 * HOUR)
    running = tmp_path / ".ba9876543210-abc"
    running.mkdir()
    partial = tmp_path / "artifacts" / ".0123456789ab-tmp"
    partial.parent.mkdir()
    partial.write_bytes(b"half")
    aged(partial, 2 * HOUR)
    prune(tmp_path, CachePolicy(max_bytes=10**9, idle_s=HOUR))
    assert not crashed.exists() and not partial.exists()
    assert running.exists()  # perhaps another process unpacking right now


# --- through fetch_bundle / fetch_artifact ------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(StoreConfig(kind="local", root=str(tmp_path / "store")))


def stored_bundle(store: LocalStore, make_project: ProjectFactory, text: str) -> str:
    data = build_zip(collect_files(make_project({"app.py": text})), MANIFEST, max_bytes=10**6)
    digest = hashlib.sha256(data).hexdigest()
    put_bundle(store, digest, data)
    return digest


def test_a_new_bundle_evicts_idle_ones_but_not_those_in_use(store: LocalStore, make_project: ProjectFactory,
                                                            tmp_path: Path) -> None:
    root = tmp_path / "cache"
    policy = CachePolicy(max_bytes=1, idle_s=HOUR)
    first = fetch_bundle(store.config, stored_bundle(store, make_project, "A = 1\n"), root, policy)
    aged(first / cache.MARKER, 5 * HOUR)
    abandoned = other_process_bundle(root, "abandoned", 100, 4 * HOUR)
    second = fetch_bundle(store.config, stored_bundle(store, make_project, "B = 2\n"), root, policy)
    assert not abandoned.exists()  # idle, and no version here uses it
    assert (first / "app.py").read_text() == "A = 1\n"  # this process uses it
    assert (second / "app.py").read_text() == "B = 2\n"
    assert int((second / cache.SIZE_FILE).read_text()) > 0


def test_a_bundle_evicted_by_another_process_is_unpacked_again(store: LocalStore, make_project: ProjectFactory,
                                                               tmp_path: Path) -> None:
    digest = stored_bundle(store, make_project, "A = 1\n")
    target = fetch_bundle(store.config, digest, tmp_path / "cache")
    shutil.rmtree(target)
    assert fetch_bundle(store.config, digest, tmp_path / "cache") == target
    assert (target / "app.py").read_text() == "A = 1\n"


def test_a_new_artifact_evicts_idle_ones(store: LocalStore, tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights" * 100)
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    put_artifact(store, digest, model)
    root = tmp_path / "cache"
    abandoned = other_process_artifact(root, "old-model", 5000, 3 * HOUR)
    path = fetch_artifact(store.config, digest, root, CachePolicy(max_bytes=1000, idle_s=HOUR))
    assert path.read_bytes() == model.read_bytes()
    assert not abandoned.exists()


def test_the_policy_travels_as_plain_data() -> None:
    policy = CachePolicy(max_bytes=5, idle_s=7.5)
    assert CachePolicy.from_dict(policy.to_dict()) == policy
    assert CachePolicy.from_dict({}) == CachePolicy()


def test_settings_read_the_caps_and_the_cache_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"FN_MAX_UNPACKED_MB": "8", "FN_MAX_BUNDLE_ENTRIES": "500", "FN_MAX_MANIFEST_KB": "256",
                        "FN_MAX_COMPRESSION_RATIO": "50", "FN_CACHE_MAX_MB": "2048", "FN_CACHE_IDLE_S": "60"}.items():
        monkeypatch.setenv(name, value)
    settings = PlatformSettings.from_env()
    policy = settings.cache_policy
    assert (policy.max_bytes, policy.idle_s) == (2048 * 2**20, 60.0)
    assert policy.limits.to_dict() == {"max_unpacked_bytes": 8 * 2**20, "max_entries": 500,
                                       "max_manifest_bytes": 256 * 2**10, "max_ratio": 50.0}


def test_settings_defaults_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = PlatformSettings.from_env()
    assert defaults.bundle_limits.max_unpacked_bytes == 64 * 2**20
    assert defaults.cache_policy.max_bytes == 10 * 2**30
    monkeypatch.setenv("FN_MAX_BUNDLE_ENTRIES", "0")
    with pytest.raises(fn.ConfigError, match="max_entries=0 must be positive; fix FN_MAX_BUNDLE_ENTRIES"):
        PlatformSettings.from_env()
    monkeypatch.setenv("FN_MAX_BUNDLE_ENTRIES", "many")
    with pytest.raises(ValueError, match="FN_MAX_BUNDLE_ENTRIES='many' is not a number"):
        PlatformSettings.from_env()
    monkeypatch.delenv("FN_MAX_BUNDLE_ENTRIES")
    monkeypatch.setenv("FN_CACHE_IDLE_S", "-1")
    with pytest.raises(fn.ConfigError, match="must not be negative"):
        PlatformSettings.from_env()


def test_a_replica_unpacks_with_the_control_planes_caps(store: LocalStore, make_project: ProjectFactory,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The caps reach the replica as plain data (its init arguments): the deploy-time load check reports a refusal."""
    from fnplatform.bundles.safety import BundleLimits
    from fnplatform.serving.replica import THREAD_VARIABLES, validate_version

    for name in THREAD_VARIABLES:  # the load check sets them for the process: restore them afterwards
        monkeypatch.setenv(name, os.environ.get(name, ""))
    digest = stored_bundle(store, make_project, "def add(a, b):\n    return a + b\n" + "# padding\n" * 300)
    spec = fn.FunctionSpec(name="add", entrypoint="app:add", cpus=float(os.cpu_count() or 1))
    policy = CachePolicy(limits=BundleLimits(max_unpacked_bytes=1000)).to_dict()
    error = validate_version(spec.model_dump_json(), digest, store.config.to_dict(), str(tmp_path / "cache"), policy)
    assert error is not None
    assert "over the limit of 1,000 (FN_MAX_UNPACKED_MB)" in error
    assert not (tmp_path / "cache" / digest).exists()
