"""Schedules and webhooks in the control plane (JobsControl) on SQLite: one job per tick across restarts, crashes and
two control planes; missed ticks; pause and resume; redeploys; signed webhook delivery to a real loopback server."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import fn
import fnplatform.control.jobs as control_jobs
from fnplatform.control.jobs import JobsControl
from fnplatform.storage.db import utcnow
from fnplatform.storage.jobs import Job, NewJob
from fnplatform.storage.registry import Registry
from fnplatform.storage.schedules import tick_job_id
from fnplatform.storage.secrets import LocalKeyCipher

KEY_ID = "k1d2e3f4"
DEPLOYER = f"{KEY_ID} (ci)"
START = datetime(2030, 1, 1, 12, 0, 5, tzinfo=UTC)  # the first tick of a 30 s period after it: 12:00:30
FIRST = datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC)
SECOND = timedelta(seconds=1)


class _Clock(datetime):
    """``datetime`` with ``now()`` set by the test: what sync_schedules and resume read as the time."""

    at = START

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return cls.at.astimezone(tz) if tz is not None else cls.at.replace(tzinfo=None)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> type[_Clock]:
    monkeypatch.setattr(_Clock, "at", START)
    monkeypatch.setattr(control_jobs, "datetime", _Clock)
    return _Clock


@pytest.fixture
def pokes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The runner wakes recorded instead of sent (they need Ray)."""
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr("fnplatform.control.jobs.runner.poke", seen.append)
    return seen


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    registry = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    yield registry
    registry.engine.dispose()


@dataclass
class Plane:
    """Builds control planes on one database and one master key, as restarts and replicas of it are."""

    registry: Registry
    store: dict[str, Any]
    cipher: LocalKeyCipher = field(default_factory=lambda: LocalKeyCipher(os.urandom(32)))
    made: list[JobsControl] = field(default_factory=list)

    def __call__(self) -> JobsControl:
        control = JobsControl(self.registry, self.cipher, self.store)
        self.made.append(control)
        return control


@pytest.fixture
def plane(registry: Registry, tmp_path: Path, clock: type[_Clock], pokes: list[dict[str, Any]]) -> Iterator[Plane]:
    made = Plane(registry, {"kind": "local", "root": str(tmp_path / "store")})
    yield made
    for control in made.made:
        control.jobs.engine.dispose()
        control.schedules.engine.dispose()


def deploy(registry: Registry, name: str = "tick", by: str = DEPLOYER, **options: Any) -> fn.FunctionSpec:
    if "schedule" not in options:
        options["schedule"] = fn.Period(seconds=30)
    spec = fn.FunctionSpec(name=name, entrypoint="m:f", **options)
    version = registry.create_version(spec, "a" * 64, by=by)
    registry.finish_version(name, version.number)
    return spec


def tick_jobs(control: JobsControl, name: str = "tick") -> list[Job]:
    return sorted((job for job in control.jobs.find(function=name, limit=10_000) if job.source == f"schedule:{name}"),
                  key=lambda job: job.id)


def ids_of(name: str, ticks: list[datetime]) -> list[str]:
    return sorted(tick_job_id(name, at) for at in ticks)


def run_clock(control: JobsControl, start: datetime, seconds: int) -> list[str]:
    """tick() every simulated second from *start*, *seconds* times; every job id fired."""
    fired: list[str] = []
    for step in range(seconds):
        fired += control.tick(start + step * SECOND)
    return fired


def next_at(control: JobsControl, name: str = "tick") -> datetime:
    item = control.schedules.get(name)
    assert item is not None
    return item.next_at.replace(tzinfo=UTC)


# declaring schedules -------------------------------------------------------------------------
def test_sync_schedules_declares_the_active_versions_schedules(plane: Plane) -> None:
    deploy(plane.registry, "tick")
    deploy(plane.registry, "every5", schedule=fn.Cron("*/5 * * * *"))
    deploy(plane.registry, "plain", schedule=None)
    control = plane()
    control.sync_schedules()
    rows = control.list_schedules()
    assert [row["name"] for row in rows] == ["every5", "tick"]
    every5, tick = rows
    assert tick == {"name": "tick", "schedule": "every 30 s", "paused": False, "next_at": "2030-01-01T12:00:30Z",
                    "last_at": None, "last_job": None, "last_status": None}
    assert (every5["schedule"], every5["next_at"]) == ("cron */5 * * * * (UTC)", "2030-01-01T12:05:00Z")
    assert control.schedules.get("tick").owner == KEY_ID  # type: ignore[union-attr]


def test_a_tick_fires_exactly_once_however_often_tick_runs_within_it(plane: Plane, pokes: list[dict[str, Any]]) -> None:
    deploy(plane.registry)
    control = plane()
    control.sync_schedules()
    assert control.tick(START) == []
    fired = [job_id for step in range(300) for job_id in control.tick(FIRST + step * timedelta(milliseconds=99))]
    assert fired == [tick_job_id("tick", FIRST)]
    assert [job.id for job in tick_jobs(control)] == fired
    assert pokes == [plane.store]  # the runner is woken once, for the one job


def test_the_job_of_a_tick_is_a_no_argument_job_of_the_deployer_with_the_specs_retries(plane: Plane) -> None:
    spec = deploy(plane.registry, retries=2, retry_backoff_s=5, timeout_s=60, callback_url="https://example.com/hook")
    control = plane()
    control.sync_schedules()
    [job_id] = control.tick(FIRST)
    job = control.jobs.get(job_id)
    assert job is not None
    assert (job.function, job.source, job.arguments, job.owner, job.status) == (
        "tick", "schedule:tick", "{}", KEY_ID, "queued")
    assert (job.max_attempts, job.backoff_s, job.timeout_s) == (spec.retries + 1, 5, 90)
    assert job.callback_url == "https://example.com/hook"
    assert job.version is None  # the active version when it runs
    assert [due.id for due in control.jobs.due(utcnow(), 10)] == [job_id]


def test_a_period_of_30_s_fires_10_times_in_5_simulated_minutes(plane: Plane) -> None:
    deploy(plane.registry)
    control = plane()
    control.sync_schedules()
    fired = run_clock(control, START, 300)  # 12:00:05 to 12:05:04
    expected = [FIRST + k * 30 * SECOND for k in range(10)]  # 12:00:30 to 12:05:00
    assert fired == [tick_job_id("tick", at) for at in expected]
    assert [job.id for job in tick_jobs(control)] == ids_of("tick", expected)
    assert next_at(control) == FIRST + 300 * SECOND


def test_a_cron_schedule_fires_on_its_minutes(plane: Plane) -> None:
    deploy(plane.registry, schedule=fn.Cron("*/5 * * * *"))
    control = plane()
    control.sync_schedules()
    fired = run_clock(control, START, 30 * 60)  # 12:00:05 to 12:30:04
    expected = [datetime(2030, 1, 1, 12, minute, tzinfo=UTC) for minute in (5, 10, 15, 20, 25, 30)]
    assert fired == [tick_job_id("tick", at) for at in expected]


def test_a_restart_in_the_middle_neither_repeats_nor_loses_a_tick(plane: Plane, clock: type[_Clock]) -> None:
    deploy(plane.registry)
    first = plane()
    first.sync_schedules()
    fired = run_clock(first, START, 150)  # up to 12:02:34; 12:02:30 fired
    clock.at = START + 150 * SECOND
    second = plane()  # the control plane restarted: it syncs the (unchanged) schedules first
    second.sync_schedules()
    fired += run_clock(second, START + 150 * SECOND, 150)
    expected = [FIRST + k * 30 * SECOND for k in range(10)]
    assert fired == [tick_job_id("tick", at) for at in expected]
    assert len(tick_jobs(second)) == 10


def test_a_restart_between_a_ticks_submit_and_advance_makes_one_job(plane: Plane) -> None:
    deploy(plane.registry)
    control = plane()
    control.sync_schedules()
    # The crashed control plane's last act: the tick's job written, next_at not yet moved on.
    job, created = control.jobs.submit(NewJob(function="tick", arguments="{}", owner=KEY_ID, source="schedule:tick",
                                              id=tick_job_id("tick", FIRST)))
    assert created
    restarted = plane()
    restarted.sync_schedules()
    assert restarted.tick(FIRST + SECOND) == [job.id]
    assert [found.id for found in tick_jobs(restarted)] == [job.id]
    assert next_at(restarted) == FIRST + 30 * SECOND
    assert restarted.tick(FIRST + 2 * SECOND) == []


def test_two_control_planes_ticking_the_same_moment_make_one_job(plane: Plane) -> None:
    deploy(plane.registry)
    one, two = plane(), plane()
    one.sync_schedules()
    two.sync_schedules()
    fired = one.tick(FIRST) + two.tick(FIRST)
    assert fired == [tick_job_id("tick", FIRST)]
    # Both read the schedule as due before either fired it (the race): the second finds the job and loses the advance.
    [item] = one.schedules.due((FIRST + 30 * SECOND).replace(tzinfo=None))
    assert one._fire(item, FIRST + 30 * SECOND) == tick_job_id("tick", FIRST + 30 * SECOND)
    assert two._fire(item, FIRST + 30 * SECOND) is None
    assert [job.id for job in tick_jobs(one)] == ids_of("tick", [FIRST, FIRST + 30 * SECOND])


def test_two_control_planes_ticking_at_once_on_threads_make_one_job_per_tick(plane: Plane) -> None:
    deploy(plane.registry)
    planes = [plane() for _ in range(4)]
    planes[0].sync_schedules()
    start = threading.Barrier(len(planes))
    fired: list[str] = []
    errors: list[BaseException] = []

    def run(control: JobsControl) -> None:
        start.wait()
        try:
            fired.extend(run_clock(control, FIRST, 61))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(control,)) for control in planes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    expected = [FIRST, FIRST + 30 * SECOND, FIRST + 60 * SECOND]
    assert sorted(fired) == ids_of("tick", expected)
    assert [job.id for job in tick_jobs(planes[0])] == ids_of("tick", expected)


def test_a_control_plane_down_for_10_minutes_fires_the_latest_missed_tick_once(plane: Plane) -> None:
    deploy(plane.registry)
    control = plane()
    control.sync_schedules()
    assert control.tick(FIRST) == [tick_job_id("tick", FIRST)]
    back = FIRST + 600 * SECOND + 5 * SECOND  # down from 12:00:31 to 12:10:35: twenty ticks missed
    assert control.tick(back) == [tick_job_id("tick", FIRST + 600 * SECOND)]
    assert control.tick(back + SECOND) == []
    assert [job.id for job in tick_jobs(control)] == ids_of("tick", [FIRST, FIRST + 600 * SECOND])
    assert next_at(control) == FIRST + 630 * SECOND
    item = control.schedules.get("tick")
    assert item is not None and item.last_at is not None and item.last_at.replace(tzinfo=UTC) == FIRST + 600 * SECOND


def test_pause_stops_firing_and_resume_skips_the_ticks_missed_while_paused(plane: Plane, clock: type[_Clock]) -> None:
    deploy(plane.registry)
    control = plane()
    control.sync_schedules()
    assert control.tick(FIRST) == [tick_job_id("tick", FIRST)]
    paused = control.pause("tick")
    assert (paused["paused"], paused["runs"]) == (True, [])
    assert control.list_schedules()[0]["next_at"] is None
    assert run_clock(control, FIRST + SECOND, 180) == []  # three minutes paused
    clock.at = FIRST + 185 * SECOND
    assert control.resume("tick")["paused"] is False
    assert next_at(control) == FIRST + 210 * SECOND  # 12:00:30 + 3:30: the first tick after the resume
    assert run_clock(control, FIRST + 185 * SECOND, 30) == [tick_job_id("tick", FIRST + 210 * SECOND)]
    assert [job.id for job in tick_jobs(control)] == ids_of("tick", [FIRST, FIRST + 210 * SECOND])


def test_a_paused_schedule_stays_paused_across_an_unchanged_redeploy(plane: Plane) -> None:
    deploy(plane.registry)
    control = plane()
    control.sync_schedules()
    control.pause("tick")
    deploy(plane.registry)
    control.sync_schedules()
    assert control.list_schedules()[0]["paused"] is True
    assert run_clock(control, FIRST, 60) == []


def test_a_redeploy_with_an_unchanged_schedule_keeps_the_next_tick(plane: Plane, clock: type[_Clock]) -> None:
    deploy(plane.registry)
    control = plane()
    control.sync_schedules()
    assert control.tick(FIRST) == [tick_job_id("tick", FIRST)]
    clock.at = FIRST + 45 * SECOND  # the 12:01:00 tick is due, not yet fired, when v2 is deployed
    deploy(plane.registry, timeout_s=120)  # v2: another option, the same schedule
    control.sync_schedules()
    assert next_at(control) == FIRST + 30 * SECOND
    assert control.tick(clock.at) == [tick_job_id("tick", FIRST + 30 * SECOND)]  # not lost by the redeploy


def test_a_redeploy_with_a_changed_schedule_starts_it_anew(plane: Plane, clock: type[_Clock]) -> None:
    deploy(plane.registry)
    control = plane()
    control.sync_schedules()
    control.tick(FIRST)
    clock.at = FIRST + 45 * SECOND
    deploy(plane.registry, schedule=fn.Period(minutes=5))
    control.sync_schedules()
    assert next_at(control) == datetime(2030, 1, 1, 12, 5, tzinfo=UTC)
    assert control.list_schedules()[0]["schedule"] == "every 5 min"
    assert run_clock(control, clock.at, 60) == []  # the old 30 s ticks no longer fire


def test_a_new_version_without_a_schedule_drops_the_schedule(plane: Plane) -> None:
    deploy(plane.registry)
    deploy(plane.registry, "other")
    control = plane()
    control.sync_schedules()
    deploy(plane.registry, schedule=None)
    control.sync_schedules()
    assert [row["name"] for row in control.list_schedules()] == ["other"]
    assert control.tick(FIRST) == [tick_job_id("other", FIRST)]
    with pytest.raises(fn.NotFound, match="'tick' has no schedule"):
        control.history("tick")


def test_a_deleted_function_fires_nothing(plane: Plane, pokes: list[dict[str, Any]]) -> None:
    deploy(plane.registry)
    control = plane()
    control.sync_schedules()
    plane.registry.delete_function("tick")
    assert control.tick(FIRST) == []
    assert pokes == []
    control.sync_schedules()
    assert control.list_schedules() == []


def test_history_lists_the_tick_jobs_with_their_status_newest_first(plane: Plane) -> None:
    deploy(plane.registry)
    control = plane()
    control.sync_schedules()
    first, second, third = (control.tick(FIRST + k * 30 * SECOND)[0] for k in range(3))
    control.jobs.submit(NewJob(function="tick", arguments="{}", owner=KEY_ID))  # called by hand: not a tick
    assert control.jobs.claim(first, "r1", 60) is not None
    control.jobs.finish(first, "r1", "succeeded", result="1")
    assert control.jobs.claim(second, "r1", 60) is not None
    error = {"type": "ValueError", "status": 500, "message": "boom"}
    control.jobs.finish(second, "r1", "failed", error=error)
    history = control.history("tick")
    assert (history["name"], history["schedule"], history["paused"]) == ("tick", "every 30 s", False)
    runs = history["runs"]
    assert [(run["job"], run["status"]) for run in runs] == [(third, "queued"), (second, "failed"), (first, "succeeded")]
    assert [run["error"] for run in runs if run["job"] == second] == [error]
    assert all(run["created"].endswith("Z") for run in runs)
    assert [run["job"] for run in control.history("tick", limit=2)["runs"]] == [run["job"] for run in runs[:2]]
    listed = control.list_schedules()[0]
    assert (listed["last_job"], listed["last_status"], listed["last_at"]) == (third, "queued", "2030-01-01T12:01:30Z")


def test_pause_and_resume_of_an_unknown_schedule_say_how_to_list_them(plane: Plane) -> None:
    control = plane()
    for action in (control.pause, control.resume, control.history):
        with pytest.raises(fn.NotFound, match="fnctl schedules ls"):
            action("nope")


def test_history_lists_ticks_behind_many_jobs_called_by_hand(plane: Plane) -> None:
    deploy(plane.registry)
    control = plane()
    control.sync_schedules()
    ticks = [control.tick(FIRST + k * 30 * SECOND)[0] for k in range(3)]
    for _ in range(250):
        control.jobs.submit(NewJob(function="tick", arguments="{}", owner=KEY_ID))
    assert sorted(run["job"] for run in control.history("tick", limit=50)["runs"]) == sorted(ticks)


def test_a_redeploy_by_another_key_makes_the_ticks_its_jobs(plane: Plane) -> None:
    deploy(plane.registry, by="aaaa1111 (alice)")
    control = plane()
    control.sync_schedules()
    deploy(plane.registry, by="bbbb2222 (bob)", timeout_s=120)
    control.sync_schedules()
    [job_id] = control.tick(FIRST)
    assert control.jobs.get(job_id).owner == "bbbb2222"  # type: ignore[union-attr]


# webhooks --------------------------------------------------------------------------------------
@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that checks Fn-Signature with fn.verify_webhook, as a user's receiver does."""

    url: str
    secret: str = ""
    status: int = 200
    payloads: list[dict[str, Any]] = field(default_factory=list)
    raw: list[tuple[bytes, str | None]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            header = self.headers.get("Fn-Signature")
            with lock:
                got.raw.append((body, header))
                try:
                    got.payloads.append(fn.verify_webhook(body, header, got.secret))
                    status = got.status
                except fn.WebhookError as exc:
                    got.rejected.append(str(exc))
                    status = 400
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"no" if status >= 300 else b"ok")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server API
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hooks/fn")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="webhook-receiver", daemon=True)
    thread.start()
    yield got
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture
def loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FN_WEBHOOK_ALLOW_LOOPBACK", "1")


def finished_job(control: JobsControl, url: str, *, owner: str = KEY_ID, result: str = '{"answer": 42}') -> str:
    job, _ = control.jobs.submit(NewJob(function="tick", arguments="{}", owner=owner, callback_url=url))
    assert control.jobs.claim(job.id, "r1", 60) is not None
    assert control.jobs.finish(job.id, "r1", "succeeded", result=result)
    return job.id


def test_a_webhook_delivers_the_jobs_end_signed_with_its_owners_secret(plane: Plane, receiver: Receiver,
                                                                        loopback: None) -> None:
    control = plane()
    receiver.secret = control.webhook_secret(KEY_ID)
    job_id = finished_job(control, receiver.url)
    assert control.deliver_webhooks() == 1
    assert receiver.rejected == []
    [payload] = receiver.payloads
    assert (payload["id"], payload["status"], payload["result"], payload["function"]) == (
        job_id, "succeeded", {"answer": 42}, "tick")
    assert payload["webhook"]["status"] == "pending"  # its state as it was sent
    job = control.jobs.get(job_id)
    assert job is not None and (job.webhook, job.webhook_attempts, job.webhook_outcome) == ("delivered", 1, "HTTP 200")
    assert control.deliver_webhooks() == 0  # delivered once, never again


def test_a_failed_jobs_webhook_carries_its_error(plane: Plane, receiver: Receiver, loopback: None) -> None:
    control = plane()
    receiver.secret = control.webhook_secret(KEY_ID)
    job, _ = control.jobs.submit(NewJob(function="tick", arguments="{}", owner=KEY_ID, callback_url=receiver.url))
    control.jobs.cancel(job.id)
    control.deliver_webhooks()
    [payload] = receiver.payloads
    assert (payload["id"], payload["status"]) == (job.id, "cancelled")
    assert "result" not in payload


def test_a_webhook_of_a_large_result_says_where_to_read_it(plane: Plane, receiver: Receiver, loopback: None) -> None:
    control = plane()
    receiver.secret = control.webhook_secret(KEY_ID)
    job, _ = control.jobs.submit(NewJob(function="tick", arguments="{}", owner=KEY_ID, callback_url=receiver.url))
    control.jobs.claim(job.id, "r1", 60)
    control.jobs.finish(job.id, "r1", "succeeded", result_blob=f"jobs/{job.id}/result.json")
    control.deliver_webhooks()
    [payload] = receiver.payloads
    assert payload["result"] is None and "GET /jobs/<id>" in payload["result_omitted"]


def test_a_receiver_answering_500_gets_the_webhook_again_later(plane: Plane, receiver: Receiver, loopback: None) -> None:
    control = plane()
    receiver.secret, receiver.status = control.webhook_secret(KEY_ID), 500
    job_id = finished_job(control, receiver.url)
    assert control.deliver_webhooks() == 1
    job = control.jobs.get(job_id)
    assert job is not None and (job.webhook, job.webhook_attempts) == ("pending", 1)
    assert job.webhook_outcome is not None and job.webhook_outcome.startswith("HTTP 500")
    assert control.jobs.due_webhooks(utcnow()) == []  # not at once: after its backoff
    assert [due.id for due in control.jobs.due_webhooks(utcnow() + timedelta(seconds=5))] == [job_id]
    assert control.deliver_webhooks() == 0
    assert len(receiver.payloads) == 1


def test_a_receiver_answering_404_makes_the_platform_give_up(plane: Plane, receiver: Receiver, loopback: None) -> None:
    control = plane()
    receiver.secret, receiver.status = control.webhook_secret(KEY_ID), 404
    job_id = finished_job(control, receiver.url)
    control.deliver_webhooks()
    job = control.jobs.get(job_id)
    assert job is not None and (job.webhook, job.webhook_attempts) == ("failed", 1)
    assert job.webhook_outcome is not None and job.webhook_outcome.startswith("HTTP 404")
    assert control.jobs.due_webhooks(utcnow() + timedelta(hours=1)) == []


def test_a_loopback_target_is_refused_unless_allowed(plane: Plane, receiver: Receiver,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FN_WEBHOOK_ALLOW_LOOPBACK", raising=False)
    monkeypatch.delenv("FN_WEBHOOK_ALLOW_PRIVATE", raising=False)
    control = plane()
    job_id = finished_job(control, receiver.url)
    assert control.deliver_webhooks() == 1
    job = control.jobs.get(job_id)
    assert job is not None and (job.webhook, job.webhook_attempts) == ("failed", 1)
    assert job.webhook_outcome is not None and job.webhook_outcome.startswith("refused:")
    assert "loopback" in job.webhook_outcome
    assert receiver.raw == []  # no request reached the server


def test_a_tampered_or_foreign_webhook_fails_verification(plane: Plane, receiver: Receiver, loopback: None) -> None:
    control = plane()
    secret = receiver.secret = control.webhook_secret(KEY_ID)
    finished_job(control, receiver.url)
    control.deliver_webhooks()
    [(body, header)] = receiver.raw
    assert fn.verify_webhook(body, header, secret)["status"] == "succeeded"
    tampered = body.replace(b'"succeeded"', b'"failed"')
    assert tampered != body
    with pytest.raises(fn.WebhookError, match="no signature"):
        fn.verify_webhook(tampered, header, secret)
    with pytest.raises(fn.WebhookError, match="no signature"):  # another key's secret
        fn.verify_webhook(body, header, control.webhook_secret("other-key"))
    with pytest.raises(fn.WebhookError, match="missing"):
        fn.verify_webhook(body, None, secret)


def test_webhook_secrets_are_per_key_and_the_same_in_every_control_plane(plane: Plane) -> None:
    one, two = plane(), plane()
    assert one.webhook_secret(KEY_ID) == two.webhook_secret(KEY_ID)
    assert one.webhook_secret(KEY_ID).startswith("whsec_")
    assert one.webhook_secret(KEY_ID) != one.webhook_secret("other-key")
    other_master_key = Plane(plane.registry, plane.store)
    assert other_master_key().webhook_secret(KEY_ID) != one.webhook_secret(KEY_ID)
    plane.made += other_master_key.made


def test_a_ticks_webhook_goes_to_the_specs_callback_signed_for_the_deployer(plane: Plane, receiver: Receiver,
                                                                             loopback: None) -> None:
    deploy(plane.registry, callback_url=receiver.url)
    control = plane()
    receiver.secret = control.webhook_secret(KEY_ID)
    control.sync_schedules()
    [job_id] = control.tick(FIRST)
    job = control.jobs.get(job_id)
    assert job is not None and json.loads(job.arguments or "null") == {}
    assert control.jobs.claim(job_id, "r1", 60) is not None
    control.jobs.finish(job_id, "r1", "succeeded", result='"done"')
    assert control.deliver_webhooks() == 1
    assert receiver.rejected == []
    assert [(p["id"], p["status"], p["source"], p["result"]) for p in receiver.payloads] == [
        (job_id, "succeeded", "schedule:tick", "done")]


def test_a_1_s_schedule_down_for_two_days_fires_the_latest_tick_once(plane: Plane) -> None:
    deploy(plane.registry, schedule=fn.Period(seconds=1))
    control = plane()
    control.sync_schedules()
    back = START + timedelta(days=2)
    fired = control.tick(back) + control.tick(back) + control.tick(back + timedelta(milliseconds=500))
    assert fired == [tick_job_id("tick", back)]
