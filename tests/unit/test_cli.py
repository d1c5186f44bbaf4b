"""fnctl without a platform: help for every command, clear one-line errors, no tracebacks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import fn
from fnctl.main import cli

from .conftest import REPO_ROOT, FakePlatform, free_port


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))


ALL_COMMANDS = list(command_paths(cli))


def test_the_expected_commands_exist() -> None:
    assert {" ".join(path) for path in ALL_COMMANDS} >= {
        "up", "down", "server", "quickstart", "deploy", "ls", "describe", "invoke", "logs", "rm",
        "keys", "keys create", "keys ls", "keys revoke", "secrets", "secrets set", "secrets ls", "secrets rm"}


def test_top_level_help() -> None:
    result = CliRunner().invoke(cli, ["--help"], prog_name="fnctl")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: fnctl [OPTIONS] COMMAND [ARGS]...")
    for name in ("deploy", "invoke", "keys", "up"):
        assert name in result.output


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=[" ".join(p) for p in ALL_COMMANDS])
def test_help_works_for_every_command(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert path[-1] in result.output.splitlines()[0]


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"], prog_name="fnctl")
    assert result.exit_code == 0
    assert result.output.strip() == f"fnctl, version {fn.__version__}"


@pytest.mark.parametrize(("data", "problem"), [("not json", "not valid JSON"),
                                               ("[1, 2]", "must be a JSON object")])
def test_invoke_with_bad_data_is_a_usage_error(data: str, problem: str) -> None:
    result = CliRunner().invoke(cli, ["invoke", "x", "--data", data])
    assert result.exit_code == 2
    assert "--data" in result.output
    assert problem in result.output
    assert "Traceback" not in result.output


def test_invoke_stream_and_spawn_together_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["invoke", "x", "--stream", "--spawn"])
    assert result.exit_code == 2 and "do not go together" in result.output and "Traceback" not in result.output


def test_ls_without_a_platform_is_one_clear_line(isolated_env: Path) -> None:
    result = CliRunner().invoke(cli, ["ls"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: no platform configured")
    assert "'fnctl up'" in lines[0]
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("args", [["describe", "add"], ["keys", "ls"], ["invoke", "add", "-d", "{}"]])
def test_other_commands_without_a_platform(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "no platform configured" in result.output
    assert "Traceback" not in result.output


def test_unreachable_control_plane_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FN_RETRY_S", "0")
    monkeypatch.setenv("FN_API_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("FN_API_KEY", "k")
    result = CliRunner().invoke(cli, ["ls"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot reach the control plane at http://127.0.0.1:")
    assert "'fnctl up'" in result.output
    assert "Traceback" not in result.output


def test_deploy_path_must_exist(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["deploy", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_invoke_prints_the_result(fake_platform: FakePlatform) -> None:
    result = CliRunner().invoke(cli, ["invoke", "add", "--data", '{"a": 2, "b": 3}'])
    assert result.exit_code == 0, result.output
    assert result.output == "5\n"
    assert fake_platform.last()["body"] == {"a": 2, "b": 3}
    assert fake_platform.last()["headers"]["authorization"] == "Bearer test-key-123"


def test_invoke_reads_data_from_a_file(fake_platform: FakePlatform, tmp_path: Path) -> None:
    (tmp_path / "args.json").write_text(json.dumps({"value": {"k": [1, 2]}}))
    result = CliRunner().invoke(cli, ["invoke", "echo", "-d", f"@{tmp_path / 'args.json'}", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"value": {"k": [1, 2]}}


def test_invoke_remote_error_is_one_line_with_type_and_request_id(fake_platform: FakePlatform) -> None:
    result = CliRunner().invoke(cli, ["invoke", "keyerror", "-d", "{}"])
    assert result.exit_code == 1
    assert result.output == "Error: KeyError: 'x' (request id r1)\n"


def test_invoke_of_an_internal_function_says_it_is_internal(fake_platform: FakePlatform) -> None:
    result = CliRunner().invoke(cli, ["invoke", "internal-step", "-d", "{}"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: internal-step is internal (internal=True): it has no HTTP endpoint")
    assert "call it from another function (fn.call) or a flow" in result.output
    assert [r["path"] for r in fake_platform.requests] == ["/internal-step", "/v1/functions/internal-step"]


def test_ls_shows_an_internal_function_as_internal(fake_platform: FakePlatform) -> None:
    result = CliRunner().invoke(cli, ["ls"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.rstrip() for line in result.output.splitlines()[1:]}
    assert lines["internal-step"].endswith("internal (no HTTP)")
    assert lines["add"].endswith(f"{fake_platform.url}/add")


def test_invoke_of_a_missing_function_is_still_its_404(fake_platform: FakePlatform) -> None:
    result = CliRunner().invoke(cli, ["invoke", "nothing", "-d", "{}"])
    assert result.exit_code == 1
    assert result.output == "Error: NotFound: no function named 'nothing' (request id r5)\n"


class FakeEntryPoint:
    def __init__(self, name: str, load: object) -> None:
        self.name = name
        self._load = load

    def load(self) -> object:
        if isinstance(self._load, BaseException):
            raise self._load
        return self._load


def test_command_groups_come_from_the_fnctl_commands_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    from fnctl.main import add_plugins

    @click.group()
    def extra() -> None:
        """An application's commands."""

    found = [FakeEntryPoint("extra", extra), FakeEntryPoint("broken", ImportError("No module named 'milvus'")),
             FakeEntryPoint("deploy", extra)]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: found if group == "fnctl.commands" else [])
    group = click.Group("fnctl", commands={"deploy": cli.commands["deploy"]})
    add_plugins(group)
    assert group.commands["extra"] is extra
    assert group.commands["deploy"] is cli.commands["deploy"]  # a plugin cannot replace the platform's own command
    broken = CliRunner().invoke(group, ["broken", "ingest", "x"])
    assert broken.exit_code == 1
    assert "'broken' is installed but failed to load: ImportError: No module named 'milvus'" in broken.output
    assert "Traceback" not in broken.output


def test_the_platform_cli_names_no_application() -> None:
    source = "\n".join(p.read_text() for p in (REPO_ROOT / "cli" / "fnctl").rglob("*.py") if "examples" not in p.parts)
    assert "vectorize" not in source and "kyc" not in source


def test_deploy_refuses_what_the_server_would_before_uploading(fake_platform: FakePlatform, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("raise SystemExit('must not be imported')\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "fast.so").write_bytes(b"\x7fELF")
    result = CliRunner().invoke(cli, ["deploy", str(tmp_path)])
    assert result.exit_code == 1
    assert "entry 'lib/fast.so' is refused: native code" in result.output
    assert "Traceback" not in result.output
    assert [r["path"] for r in fake_platform.requests] == ["/v1/info"]  # nothing uploaded


def test_up_after_a_platform_that_died_clears_what_it_left_before_checking_ports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from fnplatform.control import local

    home = tmp_path / "home"
    home.mkdir()
    dead = 2**22 + 12345  # above the default pid_max: no process has it
    state = {"pid": dead, "api_url": "http://127.0.0.1:1", "http_url": "http://127.0.0.1:2", "runtime_dir": str(tmp_path / "rt")}
    (home / "platform.json").write_text(json.dumps(state))
    cleared: list[Path] = []
    monkeypatch.setattr(local, "kill_survivors", lambda runtime_dir, grace_s=5.0: cleared.append(runtime_dir) or 3)
    monkeypatch.setenv("FN_HOME", str(home))
    with socket.socket() as busy:  # a port still held: up stops there, after the clean-up
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = CliRunner().invoke(cli, ["up", "--api-port", str(busy.getsockname()[1])])
    assert cleared == [tmp_path / "rt"]
    assert not (home / "platform.json").exists()
    assert "stopped 3 processes left by a platform that ended without 'fnctl down'" in result.output
    assert result.exit_code != 0 and "is in use" in result.output


# fnctl flow: against the fake flow "sides" (front required, back optional) -----------------------------
def flow_requests(platform: FakePlatform) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in platform.requests if r["path"].startswith("/flows/")]


def test_flow_run_closes_the_inputs_so_a_run_without_its_optional_input_finishes(fake_platform: FakePlatform,
                                                                                tmp_path: Path) -> None:
    (tmp_path / "front.txt").write_bytes(b"the front")
    result = CliRunner().invoke(cli, ["flow", "run", "sides", "-i", f"front=@{tmp_path / 'front.txt'}", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"id": "run1", "output": {"front": "the front", "back": None}}
    assert flow_requests(fake_platform) == ["POST /flows/sides/runs", "PUT /flows/sides/runs/run1/inputs/front",
                                            "POST /flows/sides/runs/run1/close", "GET /flows/sides/runs/run1"]


def test_flow_run_with_a_required_input_missing_is_one_clear_error(fake_platform: FakePlatform) -> None:
    result = CliRunner().invoke(cli, ["flow", "run", "sides", "-i", "back=b"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot close the inputs of run run1: required input(s) 'front' not given yet")
    assert "Pass each required input with -i NAME=VALUE; run run1 was left open" in result.output
    assert "Traceback" not in result.output
    assert "GET /flows/sides/runs/run1" not in flow_requests(fake_platform)  # no waiting for a run that cannot end


@pytest.mark.parametrize(("options", "closes"), [(["--no-wait"], False), (["--no-wait", "--close"], True),
                                                 (["--no-close"], False)])
def test_flow_run_leaves_the_inputs_open_with_no_wait_or_no_close(fake_platform: FakePlatform, options: list[str],
                                                                  closes: bool) -> None:
    result = CliRunner().invoke(cli, ["flow", "run", "sides", "-i", "front=f", "-i", "back=b", *options])
    assert result.exit_code == 0, result.output
    assert ("POST /flows/sides/runs/run1/close" in flow_requests(fake_platform)) is closes
    assert fake_platform.runs["run1"]["closed"] is closes


def test_flow_close_status_and_ls_show_the_optional_inputs(fake_platform: FakePlatform) -> None:
    assert CliRunner().invoke(cli, ["flow", "run", "sides", "-i", "front=f", "--no-wait"]).output == "run1\n"
    status = CliRunner().invoke(cli, ["flow", "status", "sides", "run1"])
    assert status.exit_code == 0 and "inputs: front, back? (missing)" in status.output, status.output
    closed = CliRunner().invoke(cli, ["flow", "close", "sides", "run1"])
    assert closed.exit_code == 0, closed.output
    assert closed.output.splitlines() == ["inputs of run run1 closed; it is succeeded",
                                          "inputs: front, back? (not given, inputs closed)"]
    again = CliRunner().invoke(cli, ["flow", "close", "sides", "run1", "--json"])
    assert again.exit_code == 0 and json.loads(again.output)["inputs_closed"] is True
    listed = CliRunner().invoke(cli, ["flow", "ls"])
    assert listed.exit_code == 0 and "front, back?" in listed.output, listed.output
    missing = CliRunner().invoke(cli, ["flow", "close", "sides", "nope"])
    assert missing.exit_code == 1 and missing.output.startswith("Error: NotFound: no run of flow 'sides'")


def test_flow_get_prints_the_output_or_for_admins_the_evidence(fake_platform: FakePlatform,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert CliRunner().invoke(cli, ["flow", "run", "sides", "-i", "front=f"]).exit_code == 0
    got = CliRunner().invoke(cli, ["flow", "get", "sides", "run1"])
    assert got.exit_code == 0 and json.loads(got.output) == {"id": "run1", "flow": "sides", "status": "succeeded",
                                                             "output": {"front": "f", "back": None}}, got.output
    evidence = CliRunner().invoke(cli, ["flow", "get", "sides", "run1", "--evidence"])
    assert evidence.exit_code == 0 and json.loads(evidence.output)["steps"]["read"]["version"] == 3
    monkeypatch.setenv("FN_API_KEY", "an-invoke-key")
    refused = CliRunner().invoke(cli, ["flow", "get", "sides", "run1", "--evidence"])
    assert refused.exit_code == 1 and "Forbidden" in refused.output and "needs 'admin'" in refused.output
