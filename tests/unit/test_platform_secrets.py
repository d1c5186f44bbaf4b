"""Secrets the platform takes from its environment: the bootstrap admin key (FN_ADMIN_KEY), the scraper's
metrics key (FN_METRICS_KEY) and the registry URL of the flows gateway and run actors (FN_DATABASE_URL), never
from init arguments."""

from __future__ import annotations

import json
import logging
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

import fn
from fnplatform.control.api import create_app
from fnplatform.control.plane import ControlPlane
from fnplatform.control.server import METRICS_KEY_NAME, ensure_admin_key, ensure_metrics_key
from fnplatform.control.settings import PlatformSettings
from fnplatform.flows.run import FlowRun
from fnplatform.flows.state import FlowState
from fnplatform.keys import hash_key
from fnplatform.storage.blobs import StoreConfig, open_store
from fnplatform.storage.db import database_url_from_env
from fnplatform.storage.registry import Registry

from .test_control_plane import FakeDeployer, InProcessHub

ADMIN_KEY = "k" * 20 + "Zq-_.~0123456789abc"  # 39 characters from the allowed set
METRICS_KEY = "m" * 20 + "Zq-_.~0123456789abc"


def _settings(tmp_path: Path) -> PlatformSettings:
    settings = PlatformSettings.from_env(home=tmp_path / "home", store=StoreConfig(kind="local", root=str(tmp_path / "s")))
    settings.home.mkdir(exist_ok=True)
    return settings


# --- FN_ADMIN_KEY ----------------------------------------------------------------------------------


def test_two_starts_with_the_same_env_key_store_one_key_only_as_its_hash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FN_ADMIN_KEY", ADMIN_KEY)
    for _ in range(2):  # two control-plane starts against the same registry
        settings = _settings(tmp_path)
        ensure_admin_key(settings, Registry(settings.database_url))
    registry = Registry(settings.database_url)
    keys = registry.keys()
    assert len(keys) == 1 and keys[0].role == "admin" and not keys[0].revoked
    assert registry.verify_key(ADMIN_KEY) == keys[0]
    assert registry.key_hashes() == [hash_key(ADMIN_KEY)]
    database = Path(settings.database_url.removeprefix("sqlite:///"))
    assert ADMIN_KEY.encode() not in database.read_bytes()
    # The key's owner (a Kubernetes Secret) keeps it: no plaintext copy in FN_HOME.
    assert not (settings.home / "credentials.json").exists()


def test_a_revoked_env_key_stays_revoked_after_a_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("FN_ADMIN_KEY", ADMIN_KEY)
    settings = _settings(tmp_path)
    registry = Registry(settings.database_url)
    ensure_admin_key(settings, registry)
    bootstrap = registry.keys()[0].id
    registry.create_key("another admin", "admin")  # the last admin key cannot be revoked
    assert registry.revoke_key(bootstrap)
    with caplog.at_level(logging.WARNING, logger="fnplatform"):
        ensure_admin_key(_settings(tmp_path), registry)
    assert registry.verify_key(ADMIN_KEY) is None
    assert len(registry.keys()) == 2
    assert "FN_ADMIN_KEY is revoked" in caplog.text and ADMIN_KEY not in caplog.text


def test_without_an_env_key_restarts_reuse_the_key_in_the_credentials_file(tmp_path: Path) -> None:
    for _ in range(2):
        settings = _settings(tmp_path)
        ensure_admin_key(settings, Registry(settings.database_url))
    assert len(Registry(settings.database_url).keys()) == 1
    assert (settings.home / "credentials.json").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(("value", "problem"), [
    ("short", "has 5 characters"),
    (ADMIN_KEY + "\n", "contains whitespace (a trailing newline from echo?)"),
    (ADMIN_KEY + "$", "contains characters other than letters, digits and - _ . ~"),
])
def test_a_bad_env_key_is_refused_without_quoting_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str,
                                                     problem: str) -> None:
    monkeypatch.setenv("FN_ADMIN_KEY", value)
    with pytest.raises(fn.ConfigError) as info:
        PlatformSettings.from_env(home=tmp_path)
    message = str(info.value)
    assert message.startswith(f"FN_ADMIN_KEY {problem}; it must be at least 32 random letters")
    assert value.strip() not in message


def test_the_env_key_is_not_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FN_ADMIN_KEY", ADMIN_KEY)
    settings = PlatformSettings.from_env(home=tmp_path)
    assert settings.admin_key == ADMIN_KEY and ADMIN_KEY not in repr(settings)


def test_ensure_key_returns_the_existing_record(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    record, created = registry.ensure_key(ADMIN_KEY, "bootstrap")
    again, created_again = registry.ensure_key(ADMIN_KEY, "another name")
    assert created and not created_again and again == record and again.name == "bootstrap"


# --- FN_METRICS_KEY --------------------------------------------------------------------------------


def test_the_metrics_key_is_stored_once_as_an_unscoped_invoke_key_only_as_its_hash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FN_METRICS_KEY", METRICS_KEY)
    for _ in range(2):  # two control-plane starts against the same registry
        settings = _settings(tmp_path)
        ensure_metrics_key(settings, Registry(settings.database_url))
    registry = Registry(settings.database_url)
    (record,) = registry.keys()
    assert (record.name, record.role, record.functions, record.flows, record.revoked) == (
        METRICS_KEY_NAME, "invoke", None, None, False)
    assert registry.verify_key(METRICS_KEY) == record
    assert registry.key_hashes() == [hash_key(METRICS_KEY)]
    database = Path(settings.database_url.removeprefix("sqlite:///"))
    assert METRICS_KEY.encode() not in database.read_bytes()
    assert not (settings.home / "credentials.json").exists()


def test_without_the_metrics_key_no_key_is_made(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert settings.metrics_key == ""
    ensure_metrics_key(settings, registry := Registry(settings.database_url))
    assert registry.keys() == []


def test_the_metrics_key_reads_get_metrics_and_cannot_list_or_make_keys(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FN_METRICS_KEY", METRICS_KEY)
    settings = _settings(tmp_path)
    assert settings.store is not None
    registry = Registry(settings.database_url)
    ensure_metrics_key(settings, registry)
    plane = ControlPlane(settings, registry, open_store(settings.store), FakeDeployer(),  # type: ignore[arg-type]
                         InProcessHub(), FlowState(settings.database_url))  # type: ignore[arg-type]
    auth = {"authorization": f"Bearer {METRICS_KEY}"}
    with TestClient(create_app(plane)) as api:
        response = api.get("/metrics", headers=auth)
        assert response.status_code == 200 and "fn_requests_total" in response.text
        assert api.get("/v1/keys", headers=auth).status_code == 403
        assert api.post("/v1/keys", headers=auth, json={"name": "x", "role": "admin"}).status_code == 403


def test_a_revoked_metrics_key_stays_revoked_after_a_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("FN_METRICS_KEY", METRICS_KEY)
    settings = _settings(tmp_path)
    registry = Registry(settings.database_url)
    ensure_metrics_key(settings, registry)
    assert registry.revoke_key(registry.keys()[0].id)
    with caplog.at_level(logging.WARNING, logger="fnplatform"):
        ensure_metrics_key(_settings(tmp_path), registry)
    assert registry.verify_key(METRICS_KEY) is None and len(registry.keys()) == 1
    assert "FN_METRICS_KEY is revoked" in caplog.text and METRICS_KEY not in caplog.text


def test_a_metrics_key_stored_earlier_with_another_grant_is_reported_not_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    settings = _settings(tmp_path)
    registry = Registry(settings.database_url)
    registry.ensure_key(METRICS_KEY, "an operator's deploy key", role="deploy")
    monkeypatch.setenv("FN_METRICS_KEY", METRICS_KEY)
    with caplog.at_level(logging.WARNING, logger="fnplatform"):
        ensure_metrics_key(_settings(tmp_path), registry)
    (record,) = registry.keys()
    assert record.role == "deploy"
    assert "with role 'deploy', not an unscoped invoke key" in caplog.text and METRICS_KEY not in caplog.text


@pytest.mark.parametrize(("value", "problem"), [
    ("short", "has 5 characters"),
    (METRICS_KEY + "\n", "contains whitespace (a trailing newline from echo?)"),
    (METRICS_KEY + "$", "contains characters other than letters, digits and - _ . ~"),
])
def test_a_bad_metrics_key_is_refused_by_name_without_quoting_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                 value: str, problem: str) -> None:
    monkeypatch.setenv("FN_METRICS_KEY", value)
    with pytest.raises(fn.ConfigError) as info:
        PlatformSettings.from_env(home=tmp_path)
    message = str(info.value)
    assert message.startswith(f"FN_METRICS_KEY {problem}; it must be at least 32 random letters")
    assert "fnctl keys create prometheus --role invoke" in message
    assert value.strip() not in message


def test_the_metrics_key_must_not_be_the_admin_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FN_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("FN_METRICS_KEY", ADMIN_KEY)
    with pytest.raises(fn.ConfigError, match="FN_METRICS_KEY is the same key as FN_ADMIN_KEY") as info:
        PlatformSettings.from_env(home=tmp_path)
    assert ADMIN_KEY not in str(info.value)


def test_the_metrics_key_is_not_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FN_METRICS_KEY", METRICS_KEY)
    settings = PlatformSettings.from_env(home=tmp_path)
    assert settings.metrics_key == METRICS_KEY and METRICS_KEY not in repr(settings)


# --- FN_DATABASE_URL ----------------------------------------------------------------------------------

SECRET_URL = "postgresql+psycopg://fn:S3cretPassw0rdSentinel@db.internal:5432/fn?sslmode=require"


def test_the_deployer_passes_no_database_url_to_the_platform_apps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ray import serve

    from fnplatform.control.deployer import DeployContext, Deployer

    monkeypatch.setenv("FN_DATABASE_URL", SECRET_URL)
    settings = _settings(tmp_path)
    assert settings.database_url == SECRET_URL
    from fnplatform.jobs import runner

    captured: list[Any] = []
    runners: list[Any] = []
    monkeypatch.setattr(serve, "run_many", lambda targets, **_: captured.extend(targets))
    monkeypatch.setattr(runner, "runner", lambda store, **_: runners.append(store))  # the job runner actor's init argument
    store = StoreConfig(kind="local", root=str(tmp_path / "s"))
    Deployer(Registry(f"sqlite:///{tmp_path / 'r.db'}"), DeployContext(store=store, cache_dir=str(tmp_path))).ensure_gateway()
    assert {t.name for t in captured} == {"_fn_gateway", "_fn_flows", "_fn_jobs"}
    # Only this deployer's: in a whole-suite run, the integration session's control plane (alive until the session
    # ends) makes sure of its own runner every 5 s, through the same patched function.
    runners = [r for r in runners if r.get("root") == str(tmp_path / "s")]
    assert len(runners) == 1
    # What Serve's controller and Ray's GCS would keep and show: the applications and the runner with their init arguments.
    sent = pickle.dumps([t.target for t in captured] + runners)
    assert b"S3cretPassw0rdSentinel" not in sent and b"postgresql" not in sent
    assert store.to_dict()["root"].encode() in sent  # the flows gateway still gets its store


def test_flow_processes_read_the_database_url_from_their_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'flows.db'}"
    monkeypatch.setenv("FN_DATABASE_URL", url)
    assert database_url_from_env() == url
    run = FlowRun("r1", {"kind": "local", "root": str(tmp_path / "s")}, runtime=object())
    assert run._db.url == url


def test_a_flow_process_without_the_database_url_says_where_it_comes_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FN_DATABASE_URL", raising=False)
    with pytest.raises(fn.ConfigError, match=r"FN_DATABASE_URL is not set in this Ray worker's environment; .*Secret"):
        database_url_from_env()


def test_the_local_platform_hands_its_database_url_and_the_gcs_bounds_to_the_ray_it_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fnplatform.control.local import RAY_RECORD_BOUNDS, prepare_environment

    monkeypatch.setattr(os, "environ", dict(os.environ))  # prepare_environment writes Ray's settings here
    actors, tasks = RAY_RECORD_BOUNDS  # Ray's names for them are lower case
    os.environ.pop(actors, None)
    os.environ[tasks] = "500"  # an operator's own setting is kept
    monkeypatch.setenv("FN_RUNTIME_DIR", f"/tmp/fnu{os.getpid() % 100000}")
    settings = PlatformSettings.from_env(home=tmp_path, ingress="proxy")
    assert settings.database_url == f"sqlite:///{tmp_path / 'registry.db'}"
    try:
        prepare_environment(settings)
        assert os.environ["FN_DATABASE_URL"] == settings.database_url
        assert (os.environ[actors], os.environ[tasks]) == (RAY_RECORD_BOUNDS[actors], "500")
    finally:
        for path in (settings.ray_temp_dir, settings.runtime_dir):
            if path.is_dir():
                path.rmdir()


def test_credentials_are_written_0600_even_over_a_stale_world_readable_temp_file(tmp_path: Path) -> None:
    from fnplatform.control.server import _write_private

    target = tmp_path / "credentials.json"
    for stale in (tmp_path / "credentials.tmp", tmp_path / ".credentials.json.tmp"):
        stale.write_text("{}")
        stale.chmod(0o644)  # what an earlier crash (or another user) may leave behind
    target.write_text("{}")
    target.chmod(0o644)
    _write_private(target, {"api_key": "fn_x"})
    assert target.stat().st_mode & 0o777 == 0o600
    assert json.loads(target.read_text()) == {"api_key": "fn_x"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".credentials.json.tmp", "credentials.json", "credentials.tmp"]
