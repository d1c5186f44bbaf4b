"""The platform's sockets live in a short private folder whatever FN_HOME's length (HAProxy caps socket paths at 97 bytes)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import fn
from fnplatform.control.settings import RUNTIME_DIR_MAX_LEN, PlatformSettings, ensure_private_dir, runtime_dir

HAPROXY_SOCKET_MAX = 97  # "too long (max 97)"
NODE_ID = "f" * 56  # Serve nests each node's HAProxy files under its 56-hex node id


def home_of_length(base: Path, length: int) -> Path:
    home = base / ("h" * (length - len(str(base)) - 1))
    assert len(str(home)) == length
    return home


@pytest.mark.parametrize("length", [18, 21, 30, 120])
def test_socket_paths_fit_whatever_the_home_length(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, length: int) -> None:
    monkeypatch.delenv("FN_RUNTIME_DIR", raising=False)
    base = Path("/tmp") if length < 40 else tmp_path
    settings = PlatformSettings(home=home_of_length(base, length))
    assert len(str(settings.runtime_dir)) <= RUNTIME_DIR_MAX_LEN
    for name in ("admin.sock", "metrics.sock"):
        assert len(str(settings.haproxy_dir / NODE_ID / name)) <= HAPROXY_SOCKET_MAX
    plasma = settings.ray_temp_dir / "session_2026-11-30_20-39-06_123456_1234567" / "sockets" / "plasma_store"
    assert len(str(plasma)) < 108
    assert not str(settings.runtime_dir).startswith(str(settings.home))


def test_one_folder_per_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FN_RUNTIME_DIR", raising=False)
    assert runtime_dir(Path("/home/ec2-user/.fn")) == runtime_dir(Path("/home/ec2-user/.fn"))
    assert runtime_dir(Path("/home/ec2-user/.fn")) != runtime_dir(Path("/home/alexandra/.fn"))


def test_fn_runtime_dir_is_used_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FN_RUNTIME_DIR", "/run/fn-a")
    assert runtime_dir(Path("/anywhere")) == Path("/run/fn-a")
    monkeypatch.setenv("FN_RUNTIME_DIR", "/var/lib/a-folder-that-is-far-too-long/fn")
    with pytest.raises(fn.ConfigError, match=f"FN_RUNTIME_DIR=.* at most {RUNTIME_DIR_MAX_LEN} characters"):
        runtime_dir(Path("/anywhere"))
    monkeypatch.setenv("FN_RUNTIME_DIR", "relative/fn")
    with pytest.raises(fn.ConfigError, match="must be an absolute path"):
        runtime_dir(Path("/anywhere"))


def test_private_folder_is_created_0700_and_a_loose_one_is_tightened(tmp_path: Path) -> None:
    made = ensure_private_dir(tmp_path / "run")
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    made.chmod(0o755)
    ensure_private_dir(made)
    assert stat.S_IMODE(made.stat().st_mode) == 0o700


def test_a_link_or_a_file_in_its_place_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "run"
    os.symlink(target, link)
    with pytest.raises(fn.ConfigError, match="not a folder owned by this user"):
        ensure_private_dir(link)
    plain = tmp_path / "file"
    plain.write_text("x")
    with pytest.raises(fn.ConfigError, match="FN_RUNTIME_DIR"):
        ensure_private_dir(plain)


def test_a_folder_of_another_user_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    theirs = tmp_path / "run"
    theirs.mkdir(mode=0o700)
    monkeypatch.setattr(os, "getuid", lambda: theirs.stat().st_uid + 1)  # as another user sees it
    with pytest.raises(fn.ConfigError, match="not a folder owned by this user"):
        ensure_private_dir(theirs)


def test_the_local_platform_binds_haproxys_stats_and_metrics_to_this_machine_only() -> None:
    from ray.serve._private import haproxy_templates

    from fnplatform.serving import ray_compat

    original = haproxy_templates.HAPROXY_CONFIG_TEMPLATE
    try:
        assert ray_compat.harden_haproxy_config() == 9  # each rewrite (JSON errors too) still finds its line in Ray's template
        template = haproxy_templates.HAPROXY_CONFIG_TEMPLATE
        assert "bind 127.0.0.1:{{ config.metrics_port }}" in template and "bind 127.0.0.1:{{ config.stats_port }}" in template
        assert "mode 600 level admin" in template and "mode 666" not in template
        assert "acl routes_local src 127.0.0.1 ::1" in template and template.count("if routes routes_local") == 1
        assert ray_compat.harden_haproxy_config() == 0  # applied once
    finally:
        haproxy_templates.HAPROXY_CONFIG_TEMPLATE = original
