"""The job runner's decisions, without Ray: what a failed attempt means, and how an attempt's end is written."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

import fn
from fn import ClientError
from fnplatform.jobs.runner import INLINE_RESULT_BYTES, LOST_TYPES, JobRunner, error_of, outcome, result_key
from fnplatform.jobs.settings import JobSettings
from fnplatform.serving.handles import BUSY_TYPE
from fnplatform.storage.blobs import StoreConfig, open_store
from fnplatform.storage.db import utcnow
from fnplatform.storage.jobs import MAX_LOST, Job, JobStore, NewJob, _Job

USER_ERROR = {"type": "KeyError", "status": 500, "message": "'x'"}
LOST_ERROR = {"type": "ActorDiedError", "status": 500, "message": "the replica died"}
BUSY_ERROR = {"type": BUSY_TYPE, "status": 503, "message": "f is at capacity"}
INVALID = {"type": "ValidationFailed", "status": 422, "message": "invalid arguments: x: Field required"}


# outcome, error_of -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(LOST_TYPES))
@pytest.mark.parametrize("status", [500, 503, 400, None])
def test_outcome_of_the_platform_losing_the_run_is_lost_whatever_its_status(kind: str, status: int | None) -> None:
    assert outcome({"type": kind, "status": status, "message": "gone"}) == "lost"


def test_outcome_of_a_full_queue_is_busy() -> None:
    assert outcome({"type": BUSY_TYPE, "status": 503, "message": "at capacity"}) == "busy"


@pytest.mark.parametrize("status", [502, 503])
def test_a_function_raising_a_503_is_the_function_failing_not_the_platform_busy(status: int) -> None:
    assert outcome({"type": "Unavailable", "status": status, "message": "cannot reach the bank"}) == "retry"


@pytest.mark.parametrize("status", [500, 504, 408, 429, 501, 599])
def test_outcome_of_the_function_failing_or_running_out_of_time_is_retry(status: int) -> None:
    assert outcome({"type": "RemoteError", "status": status, "message": "boom"}) == "retry"


def test_outcome_of_an_error_without_a_status_or_type_is_retry() -> None:
    assert outcome({}) == "retry"
    assert outcome({"type": None, "status": None}) == "retry"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
def test_outcome_of_a_wrong_call_is_final(status: int) -> None:
    assert outcome({"type": "ClientError", "status": status, "message": "no"}) == "final"


def test_error_of_an_fn_error_keeps_its_type_status_and_message() -> None:
    assert error_of(fn.ValidationFailed("invalid arguments", error_type="ValidationFailed")) == {
        "type": "ValidationFailed", "status": 422, "message": "invalid arguments"}
    assert error_of(fn.NotFound("no function named 'f'")) == {"type": "NotFound", "status": 404,
                                                               "message": "no function named 'f'"}
    assert error_of(fn.Timeout("ran past its timeout_s (1 s)", error_type="Timeout"))["status"] == 504
    assert error_of(fn.RemoteError("replica gone", error_type="ActorDiedError")) == {
        "type": "ActorDiedError", "status": 500, "message": "replica gone"}


def test_error_of_an_fn_error_without_a_status_is_a_500() -> None:
    assert error_of(ClientError("odd")) == {"type": "ClientError", "status": 500, "message": "odd"}


def test_error_of_a_plain_exception_is_a_500_named_after_its_class() -> None:
    assert error_of(ValueError("bad value")) == {"type": "ValueError", "status": 500, "message": "bad value"}
    assert error_of(KeyError("x")) == {"type": "KeyError", "status": 500, "message": "'x'"}
    assert error_of(RuntimeError()) == {"type": "RuntimeError", "status": 500, "message": "RuntimeError"}
    assert outcome(error_of(TimeoutError())) == "retry"


def test_errors_of_the_call_map_to_the_outcome_the_runner_acts_on() -> None:
    assert outcome(error_of(fn.ValidationFailed("x"))) == "final"
    assert outcome(error_of(fn.NotFound("x"))) == "final"
    assert outcome(error_of(fn.Unavailable("x"))) == "retry"
    assert outcome(error_of(fn.Unavailable("x", error_type=BUSY_TYPE))) == "busy"
    assert outcome(error_of(fn.Timeout("x"))) == "retry"
    assert outcome(error_of(fn.RemoteError("x", error_type="WorkerCrashedError"))) == "lost"


# _failed, _succeeded ---------------------------------------------------------------------------
@pytest.fixture
def runner(tmp_path: Path) -> Iterator[JobRunner]:
    """A runner without its constructor: no Ray, no loop thread; its database and store are real."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    runner = JobRunner.__new__(JobRunner)
    runner._db = JobStore(url)
    runner.owner = "r1"
    runner.settings = JobSettings.from_env(url)
    runner._blobs = open_store(StoreConfig(kind="local", root=str(tmp_path / "store")))
    yield runner
    runner._db.engine.dispose()


def claimed(runner: JobRunner, **options: Any) -> Job:
    job, _ = runner._db.submit(NewJob(**{"function": "f", "arguments": "{}", "owner": "k1", **options}))
    started = runner._db.claim(job.id, runner.owner, 60)
    assert started is not None
    return started


def again(runner: JobRunner, job: Job) -> Job:
    """The job's next attempt, claimed as the runner would once it is due."""
    started = runner._db.claim(job.id, runner.owner, 60)
    assert started is not None
    return started


def state(runner: JobRunner, job: Job) -> Job:
    found = runner._db.get(job.id)
    assert found is not None
    return found


def close_to(at: datetime, expected: datetime, slack_s: float = 3) -> bool:
    return abs((at - expected).total_seconds()) <= slack_s


def test_a_failed_attempt_with_retries_left_is_queued_again_after_a_doubling_backoff(runner: JobRunner) -> None:
    job = claimed(runner, max_attempts=4, backoff_s=10)
    for attempt in (1, 2, 3):
        assert job.attempts == attempt
        runner._failed(job, USER_ERROR)
        after = state(runner, job)
        assert (after.status, after.attempts, after.error) == ("queued", attempt, USER_ERROR)
        assert close_to(after.next_at, utcnow() + timedelta(seconds=10 * 2 ** (attempt - 1)))
        job = again(runner, job)


def test_the_backoff_is_capped_at_an_hour(runner: JobRunner) -> None:
    job = claimed(runner, max_attempts=3, backoff_s=3600)
    runner._db.retry_later(job.id, "r1", 0, USER_ERROR)
    job = again(runner, job)
    runner._failed(job, USER_ERROR)  # 3600 * 2 would be two hours
    assert close_to(state(runner, job).next_at, utcnow() + timedelta(hours=1))


def test_the_last_failed_attempt_makes_a_dead_letter_that_says_how_to_redrive_it(runner: JobRunner) -> None:
    job = claimed(runner, max_attempts=2, backoff_s=0)
    runner._failed(job, USER_ERROR)
    job = again(runner, job)
    runner._failed(job, USER_ERROR)
    after = state(runner, job)
    assert (after.status, after.attempts) == ("failed", 2)
    assert after.error is not None and (after.error["type"], after.error["status"]) == ("KeyError", 500)
    assert after.error["message"].startswith("'x' (attempt 2 of 2")
    assert f"'fnctl jobs retry {job.id}'" in after.error["message"]


def test_a_job_without_retries_fails_with_its_error_as_it_was(runner: JobRunner) -> None:
    job = claimed(runner)
    runner._failed(job, USER_ERROR)
    after = state(runner, job)
    assert (after.status, after.error) == ("failed", USER_ERROR)


def test_a_wrong_call_fails_at_once_even_with_retries_left(runner: JobRunner) -> None:
    job = claimed(runner, max_attempts=5)
    runner._failed(job, INVALID)
    after = state(runner, job)
    assert (after.status, after.attempts, after.error) == ("failed", 1, INVALID)


def test_a_lost_run_is_queued_again_with_the_attempt_given_back(runner: JobRunner) -> None:
    job = claimed(runner)  # no retries: a lost run does not use them
    runner._failed(job, LOST_ERROR)
    after = state(runner, job)
    assert (after.status, after.attempts, after.lost, after.error) == ("queued", 0, 1, LOST_ERROR)
    assert close_to(after.next_at, utcnow() + timedelta(seconds=1))


def test_lost_runs_back_off_and_past_max_lost_use_the_jobs_retries(runner: JobRunner) -> None:
    job = claimed(runner)
    for lost in range(MAX_LOST):
        assert job.lost == lost
        runner._failed(job, LOST_ERROR)
        after = state(runner, job)
        assert (after.status, after.attempts) == ("queued", 0)
        assert close_to(after.next_at, utcnow() + timedelta(seconds=min(30, 2 ** lost)))
        job = again(runner, job)
    runner._failed(job, LOST_ERROR)  # lost MAX_LOST times already, and no retries
    assert state(runner, job).status == "failed"


def test_a_busy_function_is_waited_for_without_using_the_jobs_attempts(runner: JobRunner) -> None:
    job = claimed(runner)
    for _ in range(MAX_LOST + 3):  # a full queue is waited out however long it lasts
        runner._failed(job, BUSY_ERROR)
        after = state(runner, job)
        assert (after.status, after.attempts) == ("queued", 0)
        assert close_to(after.next_at, utcnow() + timedelta(seconds=2))
        job = again(runner, job)


def test_a_job_busy_for_over_an_hour_uses_its_attempts_from_then_on(runner: JobRunner) -> None:
    old, _ = runner._db.submit(NewJob(function="f", arguments="{}", owner="k1"))
    with runner._db._session() as session:  # accepted long ago
        session.execute(update(_Job).where(_Job.id == old.id).values(created=utcnow() - timedelta(hours=2)))
    job = again(runner, old)
    runner._failed(job, BUSY_ERROR)
    after = state(runner, job)
    assert after.status == "failed" and after.attempts == 1


def test_busy_answers_do_not_use_up_the_losses_a_job_survives(runner: JobRunner) -> None:
    job = claimed(runner)
    for _ in range(MAX_LOST):
        runner._failed(job, BUSY_ERROR)
        job = again(runner, job)
    runner._failed(job, LOST_ERROR)  # the first time the platform lost its run
    assert state(runner, job).status == "queued"


def test_a_failure_after_the_lease_was_lost_writes_nothing(runner: JobRunner) -> None:
    job = claimed(runner, max_attempts=3)
    runner._db.requeue_expired(utcnow(), owner_other_than="r-other")  # another runner took the jobs back
    again_by_other = runner._db.claim(job.id, "r-other", 60)
    assert again_by_other is not None
    runner._failed(job, USER_ERROR)
    runner._succeeded(job, {"late": True})
    after = state(runner, job)
    assert (after.status, after.error, after.result) == ("running", None, None)


def test_a_result_is_stored_as_json_with_the_job(runner: JobRunner) -> None:
    job = claimed(runner)
    runner._succeeded(job, {"answer": 42, "items": [1, 2.5, None, "x"]})
    after = state(runner, job)
    assert (after.status, after.result_blob, after.error) == ("succeeded", None, None)
    assert json.loads(after.result or "") == {"answer": 42, "items": [1, 2.5, None, "x"]}


def test_a_none_result_is_json_null(runner: JobRunner) -> None:
    job = claimed(runner)
    runner._succeeded(job, None)
    assert state(runner, job).result == "null"


def test_a_bytes_result_is_base64_in_the_json(runner: JobRunner) -> None:
    data = bytes(range(256))
    job = claimed(runner)
    runner._succeeded(job, {"png": data})
    encoded = json.loads(state(runner, job).result or "")["png"]
    assert isinstance(encoded, str)
    assert base64.urlsafe_b64decode(encoded) == data  # the URL-safe alphabet (- and _), padded


def test_a_result_over_256_kib_goes_to_the_store(runner: JobRunner) -> None:
    big = "x" * INLINE_RESULT_BYTES
    job = claimed(runner)
    runner._succeeded(job, big)
    after = state(runner, job)
    assert (after.status, after.result, after.result_blob) == ("succeeded", None, result_key(job.id))
    assert json.loads(runner._blobs.read(result_key(job.id))) == big


def test_a_result_of_256_kib_or_less_stays_with_the_job(runner: JobRunner) -> None:
    just_fits = "x" * (INLINE_RESULT_BYTES - 2)  # the JSON adds two quotes
    job = claimed(runner)
    runner._succeeded(job, just_fits)
    after = state(runner, job)
    assert (after.result_blob, json.loads(after.result or "")) == (None, just_fits)
    assert not runner._blobs.exists(result_key(job.id))


def test_a_non_ascii_result_over_256_kib_of_utf8_goes_to_the_store(runner: JobRunner) -> None:
    euros = "\u20ac" * (INLINE_RESULT_BYTES // 2)  # 3 bytes each in UTF-8: 384 KiB
    job = claimed(runner)
    runner._succeeded(job, euros)
    assert state(runner, job).result_blob == result_key(job.id)


def test_a_result_that_cannot_be_json_encoded_fails_the_job(runner: JobRunner) -> None:
    job = claimed(runner, max_attempts=3)
    runner._succeeded(job, {"handle": object()})
    after = state(runner, job)
    assert after.status == "failed" and after.error is not None
    assert (after.error["type"], after.error["status"]) == ("ResultNotSerializable", 500)
    assert after.error["message"].startswith("f returned a dict that cannot be JSON-encoded")


def test_a_registered_function_not_yet_in_serve_is_waited_for_an_unknown_one_fails(runner: JobRunner) -> None:
    runner._caps = {"f": 32}  # the registry's active functions (a restarted control plane is still deploying them)
    not_deployed = {"type": "NotDeployed", "status": 404, "message": "no function named 'f' is deployed"}
    job = claimed(runner, max_attempts=1)
    runner._failed(job, not_deployed)
    assert (state(runner, job).status, state(runner, job).attempts) == ("queued", 0)
    runner._caps = {}
    runner._failed(again(runner, job), not_deployed)
    assert state(runner, job).status == "failed"
