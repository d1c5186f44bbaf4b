"""fnctl jobs, schedules, keys webhook-secret and invoke --spawn, against the real jobs gateway and the real
control plane app (SQLite registry and jobs tables, local store) on a loopback port. No Ray: the hub and the
deployer are the control-plane tests' stand-ins, and a thread here plays the job runner."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner, Result
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

import fn
from fnctl.main import cli
from fnplatform.control.api import create_app
from fnplatform.control.plane import ControlPlane
from fnplatform.control.settings import PlatformSettings
from fnplatform.flows.state import FlowState
from fnplatform.jobs import runner as jobs_runner
from fnplatform.jobs.gateway import JobGateway
from fnplatform.jobs.settings import JobSettings
from fnplatform.keys import Grant
from fnplatform.serving.edge import api_key
from fnplatform.storage.blobs import StoreConfig, open_store
from fnplatform.storage.db import utcnow
from fnplatform.storage.jobs import JobStore
from fnplatform.storage.registry import Registry

from .test_control_plane import FakeDeployer, InProcessHub

RUNNER = "test-runner"


class RegistryKeys:
    """The gateway's key check, against the registry itself (the real one reads the hub's published copy of it)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def authenticate(self, headers: Any) -> Grant:
        key = api_key(headers)
        record = self.registry.verify_key(key) if key else None
        if record is None:
            raise fn.Unauthorized("missing or invalid API key", status=401)
        return record.grant


@dataclass
class Platform:
    url: str
    plane: ControlPlane
    jobs: JobStore
    admin_key: str
    invoke_key: str
    stop: threading.Event = field(default_factory=threading.Event)
    runner: threading.Thread | None = None

    def run_due(self) -> None:
        """One look of the runner: add succeeds, boom fails every attempt, slow runs until cancelled, parked waits."""
        for job_id in self.jobs.cancels(RUNNER):
            self.jobs.finish(job_id, RUNNER, "cancelled")
        for due in self.jobs.due(utcnow(), 50):
            job = None if due.function == "parked" else self.jobs.claim(due.id, RUNNER, 60)
            if job is None:
                continue
            kwargs = json.loads(job.arguments or "{}")
            if job.function in {"add", "nightly"}:
                self.jobs.finish(job.id, RUNNER, "succeeded", result=json.dumps(kwargs.get("a", 0) + kwargs.get("b", 0)))
            elif job.function == "boom":
                error = {"type": "KeyError", "status": 500, "message": "'x' [in step 2]"}
                if job.attempts < job.max_attempts:
                    self.jobs.retry_later(job.id, RUNNER, 0, error)
                else:
                    self.jobs.finish(job.id, RUNNER, "failed", error=error)

    def hold(self) -> None:
        """Stop the runner: what is queued stays queued."""
        self.stop.set()
        if self.runner is not None:
            self.runner.join(10)

    def loop(self) -> None:
        while not self.stop.wait(0.02):
            self.run_due()

    def wait_for(self, job_id: str, status: str) -> None:
        deadline = time.monotonic() + 10
        while (job := self.jobs.get(job_id)) is None or job.status != status:
            assert time.monotonic() < deadline, f"job {job_id} is {job.status if job else None}, not {status}"
            time.sleep(0.02)


def deploy(registry: Registry, name: str, **options: Any) -> None:
    record = registry.create_version(fn.FunctionSpec(name=name, entrypoint=f"app:{name}", **options), "0" * 64)
    registry.finish_version(name, record.number)


@dataclass(frozen=True)
class Template:
    home: Path
    admin_key: str
    invoke_key: str


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """The registry, its functions, schedules and keys, made once: each test starts from a copy of its folder."""
    root = tmp_path_factory.mktemp("jobs-template")
    # the database named: this module-scoped fixture runs before conftest's isolated_env clears FN_DATABASE_URL
    settings = PlatformSettings.from_env(home=root / "home", store=StoreConfig(kind="local", root=str(root / "store")),
                                         database_url=f"sqlite:///{root / 'home' / 'registry.db'}")
    settings.home.mkdir()
    registry = Registry(settings.database_url)
    plane = ControlPlane(settings, registry, open_store(settings.store), FakeDeployer(), InProcessHub(),  # type: ignore[arg-type]
                         FlowState(settings.database_url))
    for name in ("add", "boom", "slow", "parked"):
        deploy(registry, name, retries=2 if name == "boom" else 0)
    deploy(registry, "nightly", schedule=fn.Period(seconds=60))
    deploy(registry, "yearly", schedule=fn.Cron("0 0 1 1 *"))
    deploy(registry, "hidden", internal=True)
    plane.background.sync_schedules()
    JobStore(settings.database_url)  # its tables, too
    _, admin_key = registry.create_key("admin", "admin")
    _, invoke_key = registry.create_key("caller", "invoke")
    registry.engine.dispose()
    return Template(settings.home, admin_key, invoke_key)


@pytest.fixture
def platform(template: Template, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    from fn import _client

    monkeypatch.setattr(jobs_runner, "poke", lambda store: None)  # the runner is the thread below
    shutil.copytree(template.home, tmp_path / "home")
    settings = PlatformSettings.from_env(home=tmp_path / "home", store=StoreConfig(kind="local", root=str(tmp_path / "store")),
                                         database_url=f"sqlite:///{tmp_path / 'home' / 'registry.db'}")
    registry = Registry(settings.database_url)
    plane = ControlPlane(settings, registry, open_store(settings.store), FakeDeployer(), InProcessHub(),  # type: ignore[arg-type]
                         FlowState(settings.database_url))

    assert settings.store is not None
    gateway = JobGateway.around(JobSettings.from_env(settings.database_url), settings.store.to_dict(),
                                RegistryKeys(registry))

    async def jobs_route(request: Request) -> Response:
        return await gateway(request)

    app = Starlette(routes=[Route("/jobs", jobs_route, methods=["GET"]),
                            Route("/jobs/{rest:path}", jobs_route, methods=["GET", "POST", "DELETE"]),
                            Mount("/", app=create_app(plane))])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                                           ws="none", http="h11"))
    thread = threading.Thread(target=server.run, name="jobs-platform", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the platform server did not start"
        time.sleep(0.01)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    running = Platform(url, plane, gateway._db, template.admin_key, template.invoke_key)
    running.runner = threading.Thread(target=running.loop, name="jobs-runner", daemon=True)
    running.runner.start()
    monkeypatch.setenv("FN_API_URL", url)
    monkeypatch.setenv("FN_HTTP_URL", url)
    monkeypatch.setenv("FN_API_KEY", template.admin_key)
    yield running
    running.hold()
    server.should_exit = True
    thread.join(10)
    with _client._lock:
        for client in _client._sync_clients.values():
            client.close()
        _client._sync_clients.clear()
        _client._http_urls.clear()


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal wide enough for a table's rows to stay one line each (not a terminal: 80 columns)."""
    from fnctl._output import console

    monkeypatch.setattr(console, "width", 240)


def fnctl(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def failed(result: Result, message: str) -> None:
    """One clear error line (click's) ending stderr, nothing on stdout, exit code 1, no traceback."""
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[-1].startswith(f"Error: {message}"), result.output
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def spawned(*args: str) -> str:
    result = fnctl("jobs", "spawn", *args)
    assert result.exit_code == 0, result.output
    job_id = result.stdout.strip()
    assert job_id.startswith("job-") and "\n" not in job_id
    return job_id


# fnctl jobs spawn ----------------------------------------------------------------------------------------
def test_spawn_prints_the_job_id_and_sends_key_value_pairs_as_json(platform: Platform) -> None:
    job_id = spawned("add", "a=2", "b=3", "--retries", "4", "--version", "1")
    job = platform.jobs.get(job_id)
    assert job is not None and job.function == "add" and job.max_attempts == 5 and job.version == 1
    assert json.loads(job.arguments or "") == {"a": 2, "b": 3}


def test_spawn_merges_data_and_pairs_reading_values_as_json_or_text(platform: Platform, tmp_path: Path) -> None:
    (tmp_path / "args.json").write_text(json.dumps({"a": 1, "tags": ["x"]}))
    job_id = spawned("parked", "-d", f"@{tmp_path / 'args.json'}", "a=5", "name=ada", "flag=true", 'n="7"')
    job = platform.jobs.get(job_id)
    assert job is not None
    assert json.loads(job.arguments or "") == {"a": 5, "tags": ["x"], "name": "ada", "flag": True, "n": "7"}


def test_spawn_wait_prints_the_result_like_invoke(platform: Platform) -> None:
    result = fnctl("jobs", "spawn", "add", "-d", '{"a": 2, "b": 3}', "--wait")
    assert result.exit_code == 0, result.output
    assert result.stdout == "5\n"
    assert result.stderr.startswith("job job-") and "queued; waiting" in result.stderr
    as_json = fnctl("jobs", "spawn", "add", "a=1", "b=1", "--wait", "--json")
    assert as_json.exit_code == 0, as_json.output
    state = json.loads(as_json.stdout)
    assert state["status"] == "succeeded" and state["result"] == 2


def test_spawn_wait_for_a_job_that_fails_is_its_error_in_one_line(platform: Platform) -> None:
    result = fnctl("jobs", "spawn", "boom", "--retries", "1", "--wait")
    failed(result, "KeyError: 'x' [in step 2] (request id job-")


def test_spawn_wait_with_a_timeout_says_the_job_keeps_running(platform: Platform) -> None:
    result = fnctl("jobs", "spawn", "parked", "--wait", "--timeout", "0.3")
    failed(result, "job job-")
    assert "has not ended within 0.3 s (it is queued); it keeps running: follow it with 'fnctl jobs get job-" \
        in result.output


def test_spawn_with_a_callback_url_and_json_prints_the_state(platform: Platform) -> None:
    result = fnctl("jobs", "spawn", "parked", "--callback-url", "https://93.184.216.34/hook", "--json")
    assert result.exit_code == 0, result.output
    state = json.loads(result.stdout)
    assert state["status"] == "queued" and state["webhook"]["status"] is None
    job = platform.jobs.get(state["id"])
    assert job is not None and job.callback_url == "https://93.184.216.34/hook"


@pytest.mark.parametrize(("args", "problem"), [
    (["a"], "'a' is not KEY=VALUE"),
    (["=3"], "'=3' is not KEY=VALUE"),
    (["my-arg=3"], "'my-arg=3' is not KEY=VALUE"),
    (["-d", "[1]"], "must be a JSON object"),
    (["-d", "{nope"], "not valid JSON"),
    (["--callback-url", "ftp://example.com/x"], "must be an http:// or https:// URL with a host"),
    (["--callback-url", "https://user:pw@example.com/x"], "must not carry credentials"),
])
def test_spawn_with_bad_arguments_is_a_usage_error_and_sends_nothing(platform: Platform, args: list[str],
                                                                     problem: str) -> None:
    result = fnctl("jobs", "spawn", "add", *args)
    assert result.exit_code == 2, result.output
    assert problem in result.output and "Traceback" not in result.output
    assert platform.jobs.find() == []


def test_spawn_timeout_without_wait_is_a_usage_error(platform: Platform) -> None:
    result = fnctl("jobs", "spawn", "add", "--timeout", "5")
    assert result.exit_code == 2 and "--timeout applies to --wait" in result.output


@pytest.mark.parametrize("name", ["nothing", "hidden"])
def test_spawn_of_a_function_not_deployed_or_internal_is_its_404(platform: Platform, name: str) -> None:
    failed(fnctl("jobs", "spawn", name), f"NotFound: no function is deployed at '/{name}'")


def test_spawn_with_a_refused_callback_url_is_the_servers_400(platform: Platform) -> None:
    result = fnctl("jobs", "spawn", "add", "--callback-url", "http://127.0.0.1:9/hook")
    failed(result, "BadRequest: callback_url:")


def test_spawn_with_a_key_scoped_to_other_functions_is_forbidden(platform: Platform,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _, scoped = platform.plane.registry.create_key("scoped", "invoke", functions=["boom"])
    monkeypatch.setenv("FN_API_KEY", scoped)
    failed(fnctl("jobs", "spawn", "add"), "Forbidden: this API key may call only boom, not 'add'")


# fnctl invoke --spawn ----------------------------------------------------------------------------------------
def test_invoke_spawn_queues_a_job_and_prints_its_id(platform: Platform) -> None:
    result = fnctl("invoke", "add", "-d", '{"a": 2, "b": 3}', "--spawn", "--version", "1")
    assert result.exit_code == 0, result.output
    job_id = result.output.strip()
    platform.wait_for(job_id, "succeeded")
    job = platform.jobs.get(job_id)
    assert job is not None and job.version == 1 and job.result == "5"
    as_json = fnctl("invoke", "parked", "--spawn", "--json")
    assert as_json.exit_code == 0 and json.loads(as_json.output)["status"] == "queued", as_json.output


def test_invoke_spawn_refuses_timeout_and_bad_data(platform: Platform) -> None:
    refused = fnctl("invoke", "add", "--spawn", "--timeout", "3")
    assert refused.exit_code == 2 and "wait for a spawned job with 'fnctl jobs get ID --wait S'" in refused.output
    bad = fnctl("invoke", "add", "--spawn", "-d", "[1]")
    assert bad.exit_code == 2 and "must be a JSON object" in bad.output
    assert platform.jobs.find() == []


def test_invoke_spawn_of_a_missing_function_is_its_404(platform: Platform) -> None:
    failed(fnctl("invoke", "nothing", "--spawn"), "NotFound: no function is deployed at '/nothing'")


# fnctl jobs get ----------------------------------------------------------------------------------------
def test_get_shows_the_state_and_the_result_pretty_printed(platform: Platform) -> None:
    job_id = spawned("add", "a=2", "b=3")
    result = fnctl("jobs", "get", job_id, "--wait", "10")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"job {job_id}: succeeded"
    assert lines[1].startswith("function: add   source: api   attempts: 1/1")
    assert lines[2].startswith("created: 20") and "finished: 20" in lines[2]
    assert lines[-2:] == ["result:", "5"]
    as_json = fnctl("jobs", "get", job_id, "--json")
    assert json.loads(as_json.output)["result"] == 5


def test_get_pretty_prints_a_structured_result(platform: Platform) -> None:
    job = platform.jobs.get(spawned("parked", "a=1"))
    assert job is not None
    platform.jobs.claim(job.id, RUNNER, 60)
    platform.jobs.finish(job.id, RUNNER, "succeeded", result=json.dumps({"rows": [1, 2], "ok": True}))
    result = fnctl("jobs", "get", job.id)
    assert result.exit_code == 0, result.output
    assert result.output.split("result:\n")[1] == json.dumps({"rows": [1, 2], "ok": True}, indent=2) + "\n"


def test_get_of_a_dead_letter_shows_its_error_and_how_to_retry(platform: Platform) -> None:
    job_id = spawned("boom", "--callback-url", "https://93.184.216.34/hook")
    platform.wait_for(job_id, "failed")
    result = fnctl("jobs", "get", job_id)
    assert result.exit_code == 0, result.output
    assert "attempts: 3/3" in result.output
    assert "error (500): KeyError: 'x' [in step 2]" in result.output  # the brackets are text, not rich markup
    assert "webhook: pending after 0 attempt(s)" in result.output
    assert f"a dead letter: queue it again with 'fnctl jobs retry {job_id}'" in result.output
    assert "result:" not in result.output


def test_get_of_an_unknown_job_is_the_servers_404(platform: Platform) -> None:
    failed(fnctl("jobs", "get", "job-0000"), "NotFound: no job 'job-0000'; list yours with 'fnctl jobs ls'")


def test_get_of_another_keys_job_is_the_same_404(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = spawned("parked")
    monkeypatch.setenv("FN_API_KEY", platform.invoke_key)
    failed(fnctl("jobs", "get", job_id), f"NotFound: no job '{job_id}'")


@pytest.mark.parametrize("command", ["get", "retry", "cancel"])
def test_a_job_id_that_is_no_id_is_refused_before_any_request(platform: Platform, command: str) -> None:
    result = fnctl("jobs", command, "../v1/keys")
    assert result.exit_code == 2, result.output
    assert "'../v1/keys' is not a job id" in result.output and "'fnctl jobs ls'" in result.output


def test_get_wait_is_at_most_60_seconds(platform: Platform) -> None:
    result = fnctl("jobs", "get", "job-1", "--wait", "61")
    assert result.exit_code == 2 and "--wait" in result.output


# fnctl jobs ls -----------------------------------------------------------------------------------------
def test_ls_lists_jobs_with_attempts_and_shortened_errors(platform: Platform, wide: None) -> None:
    ok = spawned("add", "a=1", "b=1")
    dead = spawned("boom")
    platform.wait_for(ok, "succeeded")
    platform.wait_for(dead, "failed")
    result = fnctl("jobs", "ls")
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split() == ["ID", "FUNCTION", "STATUS", "ATTEMPTS", "CREATED", "FINISHED", "ERROR"]
    by_id = {row.split()[0]: row for row in rows}
    assert by_id[ok].split()[1:4] == ["add", "succeeded", "1/1"]
    assert by_id[dead].split()[1:4] == ["boom", "failed", "3/3"]
    assert by_id[dead].rstrip().endswith("KeyError: 'x' [in step 2]")


def test_ls_on_a_narrow_terminal_wraps_other_columns_but_never_an_id_or_status(platform: Platform) -> None:
    job_id = spawned("boom", "--callback-url", "https://93.184.216.34/hook")
    platform.wait_for(job_id, "failed")
    result = fnctl("jobs", "ls")
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    (row,) = [line for line in result.output.splitlines() if job_id in line]
    assert row.split()[:4] == [job_id, "boom", "failed", "3/3"]
    assert "…" not in result.output


def test_ls_failed_lists_only_the_dead_letters_of_a_function(platform: Platform) -> None:
    dead = spawned("boom")
    platform.wait_for(spawned("add"), "succeeded")
    platform.wait_for(dead, "failed")
    result = fnctl("jobs", "ls", "boom", "--failed", "--json")
    assert result.exit_code == 0, result.output
    assert [j["id"] for j in json.loads(result.output)] == [dead]
    assert [j["id"] for j in json.loads(fnctl("jobs", "ls", "--status", "failed", "--json").output)] == [dead]
    assert fnctl("jobs", "ls", "add", "--failed").output == "no failed jobs (no dead letters)\n"


def test_ls_limit_and_empty(platform: Platform) -> None:
    assert "no jobs; queue one with 'fnctl jobs spawn NAME'" in fnctl("jobs", "ls").output
    for _ in range(3):
        spawned("parked")
    assert len(json.loads(fnctl("jobs", "ls", "--limit", "2", "--json").output)) == 2


def test_ls_failed_with_another_status_is_a_usage_error(platform: Platform) -> None:
    result = fnctl("jobs", "ls", "--failed", "--status", "running")
    assert result.exit_code == 2 and "--failed lists failed jobs" in result.output
    unknown = fnctl("jobs", "ls", "--status", "lost")
    assert unknown.exit_code == 2 and "'lost' is not one of" in unknown.output


def test_ls_shows_only_the_callers_jobs_unless_admin(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = spawned("parked")
    monkeypatch.setenv("FN_API_KEY", platform.invoke_key)
    theirs = spawned("parked")
    assert [j["id"] for j in json.loads(fnctl("jobs", "ls", "--json").output)] == [theirs]
    monkeypatch.setenv("FN_API_KEY", platform.admin_key)
    assert {j["id"] for j in json.loads(fnctl("jobs", "ls", "--json").output)} == {mine, theirs}


def test_ls_without_a_platform_is_one_clear_line() -> None:
    result = fnctl("jobs", "ls")
    assert result.exit_code == 1 and "no platform configured" in result.output
    assert "Traceback" not in result.output


def test_ls_with_the_function_endpoint_down_is_one_clear_line(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import free_port

    monkeypatch.setenv("FN_RETRY_S", "0")
    monkeypatch.setenv("FN_HTTP_URL", f"http://127.0.0.1:{free_port()}")
    failed(fnctl("jobs", "ls"), "cannot reach the platform at http://127.0.0.1:")


# fnctl jobs retry / cancel -----------------------------------------------------------------------------------
def test_retry_re_drives_a_dead_letter_and_prints_its_new_state(platform: Platform) -> None:
    job_id = spawned("boom")
    platform.wait_for(job_id, "failed")
    platform.hold()  # so the new state is seen queued
    result = fnctl("jobs", "retry", job_id)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"job {job_id}: queued"
    assert "attempts: 0/3" in result.output and "error" not in result.output
    job = platform.jobs.get(job_id)
    assert job is not None and job.status == "queued"


def test_retry_of_a_running_job_is_the_servers_409(platform: Platform) -> None:
    job_id = spawned("slow")
    platform.wait_for(job_id, "running")
    failed(fnctl("jobs", "retry", job_id), f"Conflict: job {job_id} is running; only a failed (dead-letter) or "
                                           f"cancelled job can be re-driven")


def test_retry_of_an_unknown_job_is_the_servers_404(platform: Platform) -> None:
    failed(fnctl("jobs", "retry", "job-0000"), "NotFound: no job 'job-0000'")


def test_cancel_a_queued_job_then_retry_it(platform: Platform) -> None:
    job_id = spawned("parked")
    result = fnctl("jobs", "cancel", job_id)
    assert result.exit_code == 0 and result.output == f"cancelled {job_id}\n", result.output
    again = fnctl("jobs", "retry", job_id, "--json")
    assert again.exit_code == 0 and json.loads(again.output)["status"] == "queued", again.output


def test_cancel_a_running_job_says_it_stops_soon(platform: Platform) -> None:
    job_id = spawned("slow")
    platform.wait_for(job_id, "running")
    result = fnctl("jobs", "cancel", job_id)
    assert result.exit_code == 0, result.output
    assert result.output == f"cancelling {job_id}: it is running and stops within about a second\n"
    platform.wait_for(job_id, "cancelled")


def test_cancel_an_ended_job_changes_nothing(platform: Platform) -> None:
    job_id = spawned("add")
    platform.wait_for(job_id, "succeeded")
    result = fnctl("jobs", "cancel", job_id)
    assert result.exit_code == 0 and result.output == f"{job_id} had already ended: succeeded\n", result.output
    as_json = fnctl("jobs", "cancel", job_id, "--json")
    assert json.loads(as_json.output)["status"] == "succeeded"


def test_cancel_of_an_unknown_job_is_the_servers_404(platform: Platform) -> None:
    failed(fnctl("jobs", "cancel", "job-0000"), "NotFound: no job 'job-0000'")


# fnctl schedules -----------------------------------------------------------------------------------------
def fire_nightly(platform: Platform) -> str:
    fired = platform.plane.background.tick(datetime.now(UTC) + timedelta(seconds=61))
    (job_id,) = [job_id for job_id in fired if (job := platform.jobs.get(job_id)) and job.function == "nightly"]
    return job_id


def test_schedules_ls(platform: Platform, wide: None) -> None:
    job_id = fire_nightly(platform)
    platform.wait_for(job_id, "succeeded")
    result = fnctl("schedules", "ls")
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split() == ["NAME", "SCHEDULE", "STATE", "NEXT", "LAST", "LAST", "JOB", "LAST", "STATUS"]
    assert [row.split()[0] for row in rows] == ["nightly", "yearly"]
    nightly = rows[0]
    assert "active" in nightly and job_id in nightly and nightly.rstrip().endswith("succeeded")
    found = json.loads(fnctl("schedules", "ls", "--json").output)
    assert [s["name"] for s in found] == ["nightly", "yearly"] and found[0]["last_job"] == job_id


def test_schedules_ls_empty_says_how_to_declare_one(platform: Platform) -> None:
    platform.plane.background.schedules.remove_except(set())
    result = fnctl("schedules", "ls")
    assert result.exit_code == 0 and result.output.startswith("no schedules; deploy a function with"), result.output


def test_schedules_history_lists_the_runs(platform: Platform, wide: None) -> None:
    job_id = fire_nightly(platform)
    platform.wait_for(job_id, "succeeded")
    result = fnctl("schedules", "history", "nightly", "--limit", "5")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("nightly: ") and lines[0].endswith("(active)")
    assert lines[1].split() == ["JOB", "STATUS", "CREATED", "FINISHED", "ERROR"]
    assert lines[2].split()[:2] == [job_id, "succeeded"]
    found = json.loads(fnctl("schedules", "history", "nightly", "--json").output)
    assert [r["job"] for r in found["runs"]] == [job_id]
    assert "no runs yet" in fnctl("schedules", "history", "yearly").output


def test_schedules_pause_and_resume(platform: Platform) -> None:
    paused = fnctl("schedules", "pause", "nightly")
    assert paused.exit_code == 0, paused.output
    assert paused.output == "paused nightly: it runs again after 'fnctl schedules resume nightly'\n"
    fired = platform.plane.background.tick(datetime.now(UTC) + timedelta(seconds=61))
    assert [job.function for job_id in fired if (job := platform.jobs.get(job_id))] in ([], ["yearly"])
    assert "(paused)" in fnctl("schedules", "history", "nightly").output.splitlines()[0]
    assert "paused" in fnctl("schedules", "ls").output
    resumed = fnctl("schedules", "resume", "nightly", "--json")
    assert resumed.exit_code == 0 and json.loads(resumed.output)["paused"] is False, resumed.output
    assert fnctl("schedules", "resume", "nightly").output.startswith("resumed nightly: ")


@pytest.mark.parametrize("args", [["history", "add"], ["pause", "nothing"], ["resume", "add"]])
def test_schedules_of_a_function_without_one_is_the_servers_404(platform: Platform, args: list[str]) -> None:
    failed(fnctl("schedules", *args), f"NotFound: '{args[1]}' has no schedule; list schedules with 'fnctl schedules ls'")


def test_schedules_need_the_deploy_role(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FN_API_KEY", platform.invoke_key)
    failed(fnctl("schedules", "ls"), "Forbidden: this API key has the role 'invoke'; this needs 'deploy'")


# fnctl keys webhook-secret -------------------------------------------------------------------------------
def test_webhook_secret_prints_only_the_secret_on_stdout_and_it_verifies(platform: Platform) -> None:
    from fn._platform import sign_webhook

    result = fnctl("keys", "webhook-secret")
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert secret and "\n" not in secret and " " not in secret
    assert result.stdout == secret + "\n"
    assert "fn.verify_webhook(body, request.headers.get('Fn-Signature'), secret)" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    body = json.dumps({"id": "job-1", "status": "succeeded"}).encode()
    assert fn.verify_webhook(body, sign_webhook(body, secret), secret) == {"id": "job-1", "status": "succeeded"}
    admin = platform.plane.registry.verify_key(platform.admin_key)
    assert admin is not None and secret == platform.plane.background.webhook_secret(admin.id)


def test_webhook_secret_of_another_key_for_an_admin(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    caller = platform.plane.registry.verify_key(platform.invoke_key)
    assert caller is not None
    result = fnctl("keys", "webhook-secret", caller.id, "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["key"] == caller.id and found["secret"] == platform.plane.background.webhook_secret(caller.id)
    monkeypatch.setenv("FN_API_KEY", platform.invoke_key)
    own = fnctl("keys", "webhook-secret")
    assert own.exit_code == 0 and own.stdout.strip() == found["secret"]
    admin = platform.plane.registry.verify_key(platform.admin_key)
    assert admin is not None
    failed(fnctl("keys", "webhook-secret", admin.id), "Forbidden: this API key has the role 'invoke'; this needs 'admin'")


# help ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [["jobs"], ["jobs", "ls"], ["jobs", "get"], ["jobs", "retry"], ["jobs", "cancel"],
                                  ["jobs", "spawn"], ["schedules"], ["schedules", "ls"], ["schedules", "history"],
                                  ["schedules", "pause"], ["schedules", "resume"], ["keys", "webhook-secret"],
                                  ["invoke"]])
def test_every_new_command_has_help_with_an_example(path: list[str]) -> None:
    result = fnctl(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "fnctl " in result.output.split("Options:")[0].split("\n", 2)[2]  # an example in the description
