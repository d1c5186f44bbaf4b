"""Secrets at rest: values encrypted in the real SQLite file, the master key's file (0600, no links) and
FN_SECRETS_KEY, a changed key or a moved ciphertext reported by the secret's name, the registry file 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

import fn
from fnplatform.storage.registry import Registry
from fnplatform.storage.secrets import (
    KEY_FILE,
    LocalKeyCipher,
    SecretDecryptError,
    SecretStore,
    load_or_create_key_file,
    open_cipher,
    parse_master_key,
)

VALUE = "sk-live-7f3a9c0d2b1e4f5a"


def store_at(tmp_path: Path, key: bytes | None = None) -> SecretStore:
    cipher = LocalKeyCipher(key) if key else open_cipher(tmp_path / "home", environ={})
    return SecretStore(f"sqlite:///{tmp_path / 'registry.db'}", cipher)


def database_bytes(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob("registry.db*"))


def test_a_value_is_read_back_but_is_nowhere_in_the_database_files(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    record, changed = store.put("openai", {"OPENAI_API_KEY": VALUE, "ORG": "acme-research-org"})
    assert changed and record.revision == 1 and record.keys == ("OPENAI_API_KEY", "ORG")
    assert store.values(["openai", "missing"]) == {"openai": {"OPENAI_API_KEY": VALUE, "ORG": "acme-research-org"}}
    stored = database_bytes(tmp_path)  # the file and its write-ahead log, as a backup would copy them
    assert b"OPENAI_API_KEY" in stored  # key names are shown by 'fnctl secrets ls': stored in clear on purpose
    assert VALUE.encode() not in stored
    assert b"acme-research-org" not in stored


def test_setting_the_same_values_is_no_new_revision_and_new_values_are(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.put("db", {"PASSWORD": "one"})
    assert store.put("db", {"PASSWORD": "one"})[1] is False
    record, changed = store.put("db", {"PASSWORD": "two", "USER": "app"})
    assert changed and record.revision == 2 and record.keys == ("PASSWORD", "USER")
    assert store.revisions(["db", "other"]) == {"db": 2}
    assert [r.name for r in store.records()] == ["db"]
    assert store.delete("db") and not store.delete("db")
    assert store.values(["db"]) == {}


def test_the_key_file_is_created_once_private_and_reused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = load_or_create_key_file(home / KEY_FILE)
    info = (home / KEY_FILE).stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert load_or_create_key_file(home / KEY_FILE) == first
    assert [p.name for p in home.iterdir()] == [KEY_FILE]  # no temporary file left behind
    store_a = store_at(tmp_path)
    store_a.put("s", {"K": VALUE})
    assert store_at(tmp_path).values(["s"]) == {"s": {"K": VALUE}}  # a restarted control plane reads it


def test_a_key_file_others_can_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    load_or_create_key_file(path)
    path.chmod(0o644)
    with pytest.raises(fn.ConfigError, match=r"mode 0600 \(it is -rw-r--r--\); fix it with 'chmod 600"):
        load_or_create_key_file(path)


def test_a_link_in_place_of_the_key_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("00" * 32)
    target.chmod(0o600)
    (tmp_path / KEY_FILE).symlink_to(target)
    with pytest.raises(fn.ConfigError, match="not a link"):
        load_or_create_key_file(tmp_path / KEY_FILE)
    dangling = tmp_path / "home2"
    dangling.mkdir()
    (dangling / KEY_FILE).symlink_to(tmp_path / "nothing-here")
    with pytest.raises(fn.ConfigError, match="not a link"):
        load_or_create_key_file(dangling / KEY_FILE)
    assert not (tmp_path / "nothing-here").exists()  # the key was not written through the link


def test_fn_secrets_key_is_used_instead_of_the_file(tmp_path: Path) -> None:
    key = os.urandom(32)
    from_env = open_cipher(tmp_path, environ={"FN_SECRETS_KEY": key.hex()})
    assert from_env.key_id == LocalKeyCipher(key).key_id
    assert not (tmp_path / KEY_FILE).exists()
    import base64

    assert parse_master_key(base64.b64encode(key).decode(), "x") == key
    assert parse_master_key(base64.urlsafe_b64encode(key).decode(), "x") == key


@pytest.mark.parametrize("bad", ["short", "zz" * 32, "00" * 31, "hunter2-" * 8])
def test_a_malformed_master_key_is_refused_without_quoting_it(bad: str) -> None:
    with pytest.raises(fn.ConfigError) as info:
        open_cipher(Path("/nonexistent"), environ={"FN_SECRETS_KEY": bad})
    assert "FN_SECRETS_KEY is not a secrets master key" in str(info.value)
    assert "token_hex(32)" in str(info.value)
    assert bad not in str(info.value)


def test_a_changed_master_key_names_the_secret_and_setting_it_again_works(tmp_path: Path) -> None:
    store_at(tmp_path, b"a" * 32).put("openai", {"K": VALUE})
    other = store_at(tmp_path, b"b" * 32)
    with pytest.raises(SecretDecryptError, match="secret 'openai' was encrypted with master key local:"):
        other.values(["openai"])
    record, changed = other.put("openai", {"K": "new"})
    assert changed and record.revision == 2
    assert other.values(["openai"]) == {"openai": {"K": "new"}}


def test_a_ciphertext_moved_onto_another_secret_does_not_decrypt(tmp_path: Path) -> None:
    store = store_at(tmp_path, b"k" * 32)
    store.put("a", {"K": "alpha"})
    store.put("b", {"K": "bravo"})
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE secrets SET ciphertext = (SELECT ciphertext FROM secrets WHERE name = 'a') "
                                "WHERE name = 'b'"))
    with pytest.raises(SecretDecryptError, match=r"secret 'b': .*does not decrypt"):
        store.values(["b"])


def test_a_store_without_a_key_lists_but_cannot_read_or_write(tmp_path: Path) -> None:
    store_at(tmp_path).put("s", {"K": VALUE})
    keyless = SecretStore(f"sqlite:///{tmp_path / 'registry.db'}")
    assert keyless.revisions(["s"]) == {"s": 1}
    with pytest.raises(fn.ConfigError, match="without a master key"):
        keyless.values(["s"])


def test_the_registry_file_is_private(tmp_path: Path) -> None:
    Registry(f"sqlite:///{tmp_path / 'registry.db'}").create_key("ci")
    for path in tmp_path.glob("registry.db*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    old = tmp_path / "old.db"
    old.touch(mode=0o644)
    old.chmod(0o644)
    Registry(f"sqlite:///{old}")
    assert stat.S_IMODE(old.stat().st_mode) == 0o600  # one made by an earlier version is narrowed


def test_secrets_under_another_master_key_are_named(tmp_path: Path) -> None:
    store_at(tmp_path, b"a" * 32).put("old", {"K": "v"})
    store = store_at(tmp_path, b"b" * 32)
    store.put("new", {"K": "v"})
    assert store.foreign() == ["old"]


def test_the_platform_home_is_made_private(tmp_path: Path) -> None:
    from fnplatform.control.server import private_home

    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    private_home(home)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
