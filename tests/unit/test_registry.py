"""The registry on SQLite: versions, the active version of each function, API keys stored hashed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import fn
from fnplatform.keys import hash_key
from fnplatform.storage.registry import Registry

SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64


def spec(name: str = "add", **options: object) -> fn.FunctionSpec:
    return fn.FunctionSpec(name=name, entrypoint=f"app:{name.replace('-', '_')}", **options)  # type: ignore[arg-type]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "registry.db"


@pytest.fixture
def registry(db_path: Path) -> Iterator[Registry]:
    registry = Registry(f"sqlite:///{db_path}")
    yield registry
    registry.engine.dispose()


def test_versions_are_numbered_per_function(registry: Registry) -> None:
    first = registry.create_version(spec("add"), SHA_A)
    second = registry.create_version(spec("add", cpus=1), SHA_B)
    other = registry.create_version(spec("reverse"), SHA_C)
    assert (first.number, second.number, other.number) == (1, 2, 1)
    assert (first.status, first.error, first.bundle_sha256) == ("deploying", None, SHA_A)
    assert second.spec.cpus == 1
    assert [v.number for v in registry.versions("add")] == [1, 2]
    assert registry.function_names() == ["add", "reverse"]
    assert registry.versions("missing") == []


def test_nothing_is_active_until_a_version_is_ready(registry: Registry) -> None:
    registry.create_version(spec(), SHA_A)
    assert registry.active("add") is None
    assert registry.actives() == []
    registry.finish_version("add", 1)
    active = registry.active("add")
    assert active is not None
    assert (active.number, active.status, active.bundle_sha256) == (1, "ready", SHA_A)


def test_ready_version_becomes_active(registry: Registry) -> None:
    registry.create_version(spec(), SHA_A)
    registry.finish_version("add", 1)
    registry.create_version(spec(), SHA_B)
    registry.finish_version("add", 2)
    active = registry.active("add")
    assert active is not None and active.number == 2
    assert [v.status for v in registry.versions("add")] == ["ready", "ready"]


def test_failed_version_leaves_the_active_one_alone(registry: Registry) -> None:
    registry.create_version(spec(), SHA_A)
    registry.finish_version("add", 1)
    registry.create_version(spec(), SHA_B)
    registry.finish_version("add", 2, error="setup() raised RuntimeError: no weights")
    active = registry.active("add")
    assert active is not None and active.number == 1
    failed = registry.versions("add")[1]
    assert (failed.status, failed.error) == ("failed", "setup() raised RuntimeError: no weights")


def test_first_version_failing_leaves_nothing_active(registry: Registry) -> None:
    registry.create_version(spec(), SHA_A)
    registry.finish_version("add", 1, error="boom")
    assert registry.active("add") is None
    assert registry.versions("add")[0].status == "failed"


def test_finish_unknown_version_is_a_no_op(registry: Registry) -> None:
    registry.finish_version("nope", 3)
    registry.create_version(spec(), SHA_A)
    registry.finish_version("add", 7)
    assert registry.active("add") is None


def test_actives_lists_one_active_version_per_function_by_name(registry: Registry) -> None:
    for name in ("zeta", "alpha", "mid"):
        registry.create_version(spec(name), SHA_A)
        registry.finish_version(name, 1)
    registry.create_version(spec("alpha"), SHA_B)
    registry.finish_version("alpha", 2)
    registry.create_version(spec("mid"), SHA_C)  # still deploying
    registry.create_version(spec("never"), SHA_C)
    assert [(v.function, v.number) for v in registry.actives()] == [("alpha", 2), ("mid", 1), ("zeta", 1)]


def test_delete_function_removes_it_and_its_versions(registry: Registry) -> None:
    registry.create_version(spec("add"), SHA_A)
    registry.create_version(spec("add"), SHA_B)
    registry.finish_version("add", 2)
    registry.create_version(spec("keep"), SHA_C)
    assert registry.delete_function("add") is True
    assert registry.active("add") is None
    assert registry.versions("add") == []
    assert registry.function_names() == ["keep"]
    assert [v.number for v in registry.versions("keep")] == [1]
    assert registry.delete_function("add") is False
    assert registry.create_version(spec("add"), SHA_A).number == 1  # the name can be used again


def test_version_record_to_json(registry: Registry) -> None:
    record = registry.create_version(spec(pool="gpu", gpus=0.5), SHA_A)
    body = record.to_json()
    assert body["function"] == "add"
    assert body["version"] == 1
    assert body["bundle_sha256"] == SHA_A
    assert body["status"] == "deploying"
    assert body["created_at"].endswith("Z")
    assert body["spec"]["gpus"] == 0.5
    assert fn.FunctionSpec.model_validate(body["spec"]) == record.spec


def test_create_key_returns_the_plaintext_once_and_stores_only_its_hash(registry: Registry, db_path: Path) -> None:
    record, plaintext = registry.create_key("ci")
    assert plaintext.startswith(f"fn_{record.id}_")
    assert len(plaintext) > 40
    assert (record.name, record.role, record.revoked) == ("ci", "invoke", False)  # least privilege by default
    assert registry.key_hashes() == [hash_key(plaintext)]
    registry.engine.dispose()  # checkpoint SQLite's WAL into the file
    stored = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    assert hash_key(plaintext).encode() in stored  # we are looking at the right bytes
    assert plaintext.encode() not in stored
    assert plaintext.split("_", 2)[2].encode() not in stored
    assert "key" not in record.to_json() and plaintext not in str(record.to_json())


def test_verify_and_revoke_keys(registry: Registry) -> None:
    ci, ci_key = registry.create_key("ci")
    laptop, laptop_key = registry.create_key("laptop", role="deploy")
    assert ci_key != laptop_key
    verified = registry.verify_key(ci_key)
    assert verified is not None and verified.id == ci.id
    assert registry.verify_key(ci_key + "x") is None
    assert registry.verify_key("") is None
    assert registry.revoke_key(ci.id) is True
    assert registry.verify_key(ci_key) is None
    assert registry.revoke_key(ci.id) is False  # already revoked
    assert registry.revoke_key("unknown") is False
    laptop_verified = registry.verify_key(laptop_key)
    assert laptop_verified is not None and laptop_verified.role == "deploy"
    assert registry.key_hashes() == [hash_key(laptop_key)]
    records = registry.keys()
    assert {(k.name, k.revoked) for k in records} == {("ci", True), ("laptop", False)}
    assert laptop.to_json()["revoked"] is False


def test_state_persists_across_registry_objects(registry: Registry, db_path: Path) -> None:
    registry.create_version(spec(), SHA_A)
    registry.finish_version("add", 1)
    record, plaintext = registry.create_key("ci")
    registry.engine.dispose()
    again = Registry(f"sqlite:///{db_path}")
    try:
        active = again.active("add")
        assert active is not None and (active.number, active.bundle_sha256) == (1, SHA_A)
        verified = again.verify_key(plaintext)
        assert verified is not None and verified.id == record.id
        assert again.create_version(spec(), SHA_B).number == 2
    finally:
        again.engine.dispose()


def test_versions_left_deploying_by_a_dead_control_plane_are_marked_failed(registry: Registry) -> None:
    done = registry.create_version(spec("done"), SHA_A)
    registry.finish_version("done", done.number)
    registry.create_version(spec("stuck"), SHA_B)
    assert registry.fail_unfinished("restarted") == 1
    assert [v.status for v in registry.versions("stuck")] == ["failed"]
    assert registry.versions("stuck")[0].error == "restarted"
    assert [v.status for v in registry.versions("done")] == ["ready"]


def test_a_key_keeps_its_role_scope_and_rate_limit_and_the_data_plane_gets_them_by_hash(registry: Registry) -> None:
    record, plaintext = registry.create_key("kiosk", "invoke", functions=["b", "a", "a"], flows=[], rate_limit=2.5)
    assert (record.functions, record.flows, record.rate_limit) == (("a", "b"), (), 2.5)
    grant = registry.grants()[hash_key(plaintext)]
    assert grant.may_call("a") and not grant.may_call("c") and not grant.may_run("kyc")
    assert (grant.key_id, grant.role, grant.rate_limit) == (record.id, "invoke", 2.5)
    _, unscoped = registry.create_key("ops", "deploy")
    assert registry.grants()[hash_key(unscoped)].may_call("anything")


def test_the_last_admin_key_cannot_be_revoked(registry: Registry) -> None:
    first, _ = registry.create_key("owner", "admin")
    second, _ = registry.create_key("second admin", "admin")
    invoker, _ = registry.create_key("app")
    assert registry.revoke_key(invoker.id)
    assert registry.revoke_key(second.id)
    with pytest.raises(fn.Conflict, match="last admin key"):
        registry.revoke_key(first.id)
    assert registry.key(first.id) is not None and not registry.key(first.id).revoked  # type: ignore[union-attr]


def test_last_use_is_recorded_in_batches(registry: Registry) -> None:
    record, _ = registry.create_key("ci")
    assert record.last_used_at is None
    at = datetime(2026, 1, 2, 3, 4, 5)
    registry.touch_keys({record.id: at, "gone": at})
    used = registry.key(record.id)
    assert used is not None and used.last_used_at == at and used.to_json()["last_used_at"] == "2026-01-02T03:04:05Z"


def test_a_registry_from_before_key_scopes_gains_the_new_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:  # the api_keys table as an earlier release created it
        connection.execute(text("CREATE TABLE api_keys (id VARCHAR(16) PRIMARY KEY, name VARCHAR(100), "
                                "hash VARCHAR(64) UNIQUE, role VARCHAR(16), created_at DATETIME, revoked_at DATETIME)"))
        connection.execute(text("INSERT INTO api_keys VALUES ('abcd1234', 'old', :h, 'admin', '2026-01-01', NULL)"),
                           {"h": hash_key("fn_old")})
    engine.dispose()
    registry = Registry(url)
    old = registry.verify_key("fn_old")
    assert old is not None and old.role == "admin" and old.functions is None and old.rate_limit is None
    assert registry.grants()[hash_key("fn_old")].has_role("admin")
