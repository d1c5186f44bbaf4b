"""The job store on SQLite: submit, the runner's claim/lease/retry cycle, cancel, redrive, purge and webhook state."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text, update

from fnplatform.storage.db import utcnow
from fnplatform.storage.jobs import MAX_LOST, JobStore, NewJob, _Job

ERROR = {"type": "ValueError", "status": 500, "message": "boom"}
LATER = timedelta(hours=1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    store = JobStore(f"sqlite:///{tmp_path / 'r.db'}")
    yield store
    store.engine.dispose()


def new(function: str = "f", **options: Any) -> NewJob:
    return NewJob(**{"function": function, "arguments": '{"x": 1}', "owner": "k1", **options})


def submit(store: JobStore, function: str = "f", **options: Any) -> str:
    job, created = store.submit(new(function, **options))
    assert created
    return job.id


def running(store: JobStore, runner: str = "r1", lease_s: float = 60, **options: Any) -> str:
    """A job claimed by *runner*."""
    job_id = submit(store, **options)
    assert store.claim(job_id, runner, lease_s) is not None
    return job_id


def failed(store: JobStore, **options: Any) -> str:
    job_id = running(store, **options)
    assert store.finish(job_id, "r1", "failed", error=ERROR)
    return job_id


def close_to(at: datetime, expected: datetime, slack_s: float = 5) -> bool:
    return abs((at - expected).total_seconds()) <= slack_s


# submit, get, find -----------------------------------------------------------------------------
def test_submit_queues_a_job_under_a_generated_id(store: JobStore) -> None:
    job, created = store.submit(new(max_attempts=3, backoff_s=2.5, timeout_s=60, version=4))
    assert created and job.id.startswith("job-") and len(job.id) > 10
    assert (job.status, job.attempts, job.lost, job.source) == ("queued", 0, 0, "api")
    assert (job.function, job.owner, job.arguments, job.version) == ("f", "k1", '{"x": 1}', 4)
    assert (job.max_attempts, job.backoff_s, job.timeout_s) == (3, 2.5, 60)
    assert (job.started, job.finished, job.webhook, job.error) == (None, None, None, None)
    assert close_to(job.created, utcnow()) and close_to(job.next_at, utcnow())
    assert store.submit(new())[0].id != job.id


def test_submit_takes_a_given_id_once_and_returns_the_existing_job_after(store: JobStore) -> None:
    first, created = store.submit(new(id="job-key-1"))
    again, created_again = store.submit(new(id="job-key-1", arguments='{"x": 2}', owner="k2"))
    assert (first.id, created) == ("job-key-1", True)
    assert created_again is False
    assert again == first  # the first job, untouched: the second submit wrote nothing
    assert store.counts() == {("f", "queued"): 1}


def test_get_of_an_unknown_job_is_none(store: JobStore) -> None:
    assert store.get("job-nope") is None


def test_find_filters_by_function_status_and_owner_newest_first(store: JobStore) -> None:
    a1 = submit(store, "a", owner="k1")
    b1 = submit(store, "b", owner="k2")
    a2 = running(store, function="a", owner="k2")
    a3 = submit(store, "a", owner="k1")
    assert [job.id for job in store.find()] == [a3, a2, b1, a1]
    assert [job.id for job in store.find(function="a")] == [a3, a2, a1]
    assert [job.id for job in store.find(statuses=("running",))] == [a2]
    assert [job.id for job in store.find(statuses=("queued", "running"), owner="k2")] == [a2, b1]
    assert [job.id for job in store.find(function="a", owner="k1", limit=1)] == [a3]
    assert store.find(function="c") == []


def test_counts_group_jobs_by_function_and_status(store: JobStore) -> None:
    submit(store, "a")
    submit(store, "a")
    running(store, function="a")
    failed(store, function="b")
    assert store.counts() == {("a", "queued"): 2, ("a", "running"): 1, ("b", "failed"): 1}


def test_unfinished_counts_queued_and_running_jobs_by_owner_and_function(store: JobStore) -> None:
    submit(store, "a", owner="k1")
    running(store, function="a", owner="k1")
    submit(store, "b", owner="k2")
    failed(store, function="a", owner="k1")
    assert store.unfinished() == 3
    assert store.unfinished(owner="k1") == 2
    assert store.unfinished(function="b") == 1
    assert store.unfinished(owner="k2", function="a") == 0


# due, claim, renew, cancels --------------------------------------------------------------------
def test_due_lists_only_queued_jobs_whose_time_has_come_oldest_first(store: JobStore) -> None:
    before = utcnow() - timedelta(seconds=1)
    first, second = submit(store), submit(store)
    running(store)
    later = running(store)
    assert store.retry_later(later, "r1", 3600, ERROR)
    cancelled = submit(store)
    store.cancel(cancelled)
    failed(store)
    assert [job.id for job in store.due(utcnow(), 100)] == [first, second]
    assert [job.id for job in store.due(utcnow(), 1)] == [first]
    assert store.due(before, 100) == []
    assert [job.id for job in store.due(utcnow() + 2 * LATER, 100)] == [first, second, later]


def test_claim_starts_an_attempt_under_a_lease(store: JobStore) -> None:
    job_id = submit(store)
    job = store.claim(job_id, "r1", 60)
    assert job is not None
    assert (job.status, job.attempts) == ("running", 1)
    assert job.started is not None and close_to(job.started, utcnow())
    assert store.claim(job_id, "r2", 60) is None  # running already: one runner has it
    assert store.get(job_id) == job
    assert store.due(utcnow(), 10) == []


def test_claim_of_a_cancelled_or_unknown_job_is_none(store: JobStore) -> None:
    job_id = submit(store)
    store.cancel(job_id)
    assert store.claim(job_id, "r1", 60) is None
    assert store.claim("job-nope", "r1", 60) is None
    job = store.get(job_id)
    assert job is not None and (job.status, job.attempts) == ("cancelled", 0)


def test_renew_extends_the_leases_of_its_owner_only(store: JobStore) -> None:
    mine, theirs = running(store, lease_s=1), running(store, lease_s=1)
    store.renew([mine, theirs], "r2", 3600)  # not r2's: nothing changes
    store.renew([mine], "r1", 3600)
    store.renew([], "r1", 3600)
    assert store.requeue_expired(utcnow() + timedelta(seconds=30)) == 1
    assert store.get(mine).status == "running"  # type: ignore[union-attr]
    assert store.get(theirs).status == "queued"  # type: ignore[union-attr]


def test_cancels_lists_the_runners_running_jobs_asked_to_stop(store: JobStore) -> None:
    asked, other_runner, not_asked = running(store, "r1"), running(store, "r2"), running(store, "r1")
    queued = submit(store)
    for job_id in (asked, other_runner, queued):
        store.cancel(job_id)
    assert store.cancels("r1") == [asked]
    assert store.cancels("r2") == [other_runner]
    assert store.get(not_asked).cancel_requested is False  # type: ignore[union-attr]


# finish, retry_later ---------------------------------------------------------------------------
def test_finish_is_written_only_for_the_lease_owner_and_only_once(store: JobStore) -> None:
    job_id = running(store, "r1")
    assert store.finish(job_id, "r2", "succeeded", result="1") is False
    assert store.get(job_id).status == "running"  # type: ignore[union-attr]
    assert store.finish(job_id, "r1", "succeeded", result='{"a": 1}') is True
    assert store.finish(job_id, "r1", "failed", error=ERROR) is False
    assert store.finish("job-nope", "r1", "failed", error=ERROR) is False
    job = store.get(job_id)
    assert job is not None
    assert (job.status, job.result, job.error, job.webhook) == ("succeeded", '{"a": 1}', None, None)
    assert job.ended and job.finished is not None and close_to(job.finished, utcnow())


def test_finish_without_an_owner_ends_any_unended_job(store: JobStore) -> None:
    job_id = running(store, "r1")
    assert store.finish(job_id, None, "failed", error=ERROR)
    job = store.get(job_id)
    assert job is not None and (job.status, job.error) == ("failed", ERROR)


def test_finish_of_a_job_with_a_callback_makes_its_webhook_pending(store: JobStore) -> None:
    job_id = running(store, callback_url="https://example.com/hook")
    assert store.finish(job_id, "r1", "failed", error=ERROR)
    job = store.get(job_id)
    assert job is not None and (job.webhook, job.webhook_attempts) == ("pending", 0)
    assert [due.id for due in store.due_webhooks(utcnow() + timedelta(seconds=1))] == [job_id]


def test_retry_later_queues_the_job_again_after_the_delay_keeping_the_attempt(store: JobStore) -> None:
    job_id = running(store, "r1", max_attempts=3)
    assert store.retry_later(job_id, "r2", 10, ERROR) is False  # not r2's lease
    assert store.retry_later(job_id, "r1", 10, ERROR) is True
    job = store.get(job_id)
    assert job is not None
    assert (job.status, job.attempts, job.lost, job.error) == ("queued", 1, 0, ERROR)
    assert close_to(job.next_at, utcnow() + timedelta(seconds=10), slack_s=3)
    assert store.due(utcnow(), 10) == []
    assert [due.id for due in store.due(utcnow() + timedelta(seconds=11), 10)] == [job_id]
    assert store.retry_later(job_id, "r1", 10, ERROR) is False  # queued now, no longer r1's
    assert job.to_json()["next_attempt_at"].endswith("Z")


def test_retry_later_of_a_lost_run_gives_the_attempt_back_and_counts_the_loss(store: JobStore) -> None:
    job_id = running(store, "r1")
    assert store.retry_later(job_id, "r1", 0, {"type": "ActorDiedError", "status": 500, "message": "gone"}, lost=True)
    job = store.get(job_id)
    assert job is not None and (job.status, job.attempts, job.lost) == ("queued", 0, 1)


# requeue_expired -------------------------------------------------------------------------------
def test_requeue_expired_puts_jobs_whose_lease_ran_out_back_without_using_an_attempt(store: JobStore) -> None:
    expired, live = running(store, lease_s=1), running(store, lease_s=3600)
    assert store.requeue_expired(utcnow()) == 0  # the 1 s lease has not run out yet
    assert store.requeue_expired(utcnow() + timedelta(seconds=30)) == 1
    job = store.get(expired)
    assert job is not None and (job.status, job.attempts, job.lost) == ("queued", 0, 1)
    assert store.get(live).status == "running"  # type: ignore[union-attr]
    assert store.claim(expired, "r2", 60) is not None  # another runner can take it


def test_requeue_expired_at_a_runner_start_takes_back_every_other_runners_jobs(store: JobStore) -> None:
    old, own = running(store, "r-old", lease_s=3600), running(store, "r-new", lease_s=3600)
    assert store.requeue_expired(utcnow(), owner_other_than="r-new") == 1
    assert store.get(old).status == "queued"  # type: ignore[union-attr]
    assert store.get(own).status == "running"  # type: ignore[union-attr]


def test_a_job_lost_more_than_max_lost_times_fails_as_lost(store: JobStore) -> None:
    job_id = submit(store, callback_url="https://example.com/hook")
    for _ in range(MAX_LOST):
        assert store.claim(job_id, "r1", 0) is not None
        assert store.requeue_expired(utcnow() + timedelta(seconds=1)) == 1
    job = store.get(job_id)
    assert job is not None and (job.status, job.lost, job.attempts) == ("queued", MAX_LOST, 0)
    assert store.claim(job_id, "r1", 0) is not None
    assert store.requeue_expired(utcnow() + timedelta(seconds=1)) == 1
    job = store.get(job_id)
    assert job is not None and job.error is not None
    assert (job.status, job.lost, job.error["type"], job.error["status"]) == ("failed", MAX_LOST + 1, "Lost", 503)
    assert "fnctl jobs retry" in job.error["message"] and job.finished is not None
    assert job.webhook == "pending"


def test_a_job_asked_to_cancel_whose_runner_died_ends_cancelled_not_queued(store: JobStore) -> None:
    job_id = running(store, lease_s=1)
    store.cancel(job_id)
    store.requeue_expired(utcnow() + timedelta(seconds=30))
    job = store.get(job_id)
    assert job is not None and job.status == "cancelled"
    assert store.due(utcnow(), 10) == []


def test_a_job_asked_to_cancel_whose_attempt_failed_is_not_retried(store: JobStore) -> None:
    job_id = running(store, max_attempts=3)
    store.cancel(job_id)
    store.retry_later(job_id, "r1", 0, ERROR)
    job = store.get(job_id)
    assert job is not None and job.status == "cancelled"


# cancel, redrive, purge ------------------------------------------------------------------------
def test_cancel_ends_a_queued_job_at_once(store: JobStore) -> None:
    job_id = submit(store, callback_url="https://example.com/hook")
    job = store.cancel(job_id)
    assert job is not None and job.ended
    assert (job.status, job.webhook, job.cancel_requested) == ("cancelled", "pending", False)
    assert job.finished is not None and close_to(job.finished, utcnow())
    assert store.due(utcnow(), 10) == []


def test_cancel_of_a_running_job_asks_its_runner_to_stop_it(store: JobStore) -> None:
    job_id = running(store, "r1")
    job = store.cancel(job_id)
    assert job is not None and (job.status, job.cancel_requested, job.finished) == ("running", True, None)
    assert store.cancels("r1") == [job_id]
    assert store.finish(job_id, "r1", "cancelled", error={"type": "Cancelled", "status": 409, "message": "x"})
    assert store.get(job_id).status == "cancelled"  # type: ignore[union-attr]


def test_cancel_leaves_an_ended_job_alone_and_an_unknown_one_is_none(store: JobStore) -> None:
    job_id = failed(store)
    job = store.cancel(job_id)
    assert job is not None and (job.status, job.error) == ("failed", ERROR)
    assert store.cancel("job-nope") is None


def test_redrive_queues_a_dead_letter_again_with_all_its_attempts(store: JobStore) -> None:
    job_id = submit(store, max_attempts=2, callback_url="https://example.com/hook")
    assert store.claim(job_id, "r1", 60) is not None
    assert store.retry_later(job_id, "r1", 0, ERROR)
    assert store.claim(job_id, "r1", 60) is not None
    assert store.finish(job_id, "r1", "failed", error=ERROR)  # the last attempt failed: a dead letter
    assert store.get(job_id).attempts == 2  # type: ignore[union-attr]
    store.webhook_attempted(job_id, "HTTP 200", delivered=True, retry_in_s=None)
    job = store.redrive(job_id)
    assert job is not None
    assert (job.status, job.attempts, job.lost, job.error, job.result) == ("queued", 0, 0, None, None)
    assert (job.finished, job.started, job.webhook, job.webhook_outcome) == (None, None, None, None)
    assert job.webhook_attempts == 0
    assert [due.id for due in store.due(utcnow(), 10)] == [job_id]
    assert store.claim(job_id, "r1", 60) is not None
    store.finish(job_id, "r1", "succeeded", result="1")
    assert store.get(job_id).webhook == "pending"  # type: ignore[union-attr]  # its end is delivered again


def test_redrive_queues_a_cancelled_job_again(store: JobStore) -> None:
    job_id = running(store)
    store.cancel(job_id)
    store.finish(job_id, "r1", "cancelled", error={"type": "Cancelled", "status": 409, "message": "x"})
    job = store.redrive(job_id)
    assert job is not None and (job.status, job.attempts, job.cancel_requested, job.error) == ("queued", 0, False, None)


def test_redrive_leaves_queued_running_and_succeeded_jobs_unchanged(store: JobStore) -> None:
    queued, run = submit(store), running(store)
    done = running(store)
    store.finish(done, "r1", "succeeded", result="1")
    for job_id in (queued, run, done):
        before = store.get(job_id)
        assert store.redrive(job_id) == before
    assert store.redrive("job-nope") is None


def test_purge_forgets_ended_jobs_older_than_the_cutoff_and_returns_their_store_keys(store: JobStore) -> None:
    done = running(store, arguments=None, arguments_blob="jobs/a/arguments.json")
    store.finish(done, "r1", "succeeded", result_blob="jobs/a/result.json")
    dead = failed(store)
    delivered = running(store, callback_url="https://example.com/hook")
    store.finish(delivered, "r1", "succeeded", result="1")
    store.webhook_attempted(delivered, "HTTP 200", delivered=True, retry_in_s=None)
    given_up = running(store, callback_url="https://example.com/hook")
    store.finish(given_up, "r1", "succeeded", result="1")
    store.webhook_attempted(given_up, "HTTP 404", delivered=False, retry_in_s=None)
    pending = running(store, callback_url="https://example.com/hook")
    store.finish(pending, "r1", "succeeded", result="1")
    queued, run = submit(store), running(store)

    assert store.purge(utcnow() - LATER) == []  # none ended before an hour ago
    assert sorted(store.purge(utcnow() + timedelta(seconds=1))) == ["jobs/a/arguments.json", "jobs/a/result.json"]
    for gone in (done, dead, delivered, given_up):
        assert store.get(gone) is None
    for kept in (pending, queued, run):
        assert store.get(kept) is not None


def test_purge_takes_at_most_limit_jobs_a_call(store: JobStore) -> None:
    for _ in range(3):
        failed(store)
    store.purge(utcnow() + timedelta(seconds=1), limit=2)
    assert store.counts() == {("f", "failed"): 1}


# webhooks --------------------------------------------------------------------------------------
def ended_with_callback(store: JobStore) -> str:
    job_id = running(store, callback_url="https://example.com/hook")
    store.finish(job_id, "r1", "succeeded", result="1")
    return job_id


def test_webhook_attempted_records_a_delivery(store: JobStore) -> None:
    job_id = ended_with_callback(store)
    store.webhook_attempted(job_id, "HTTP 204", delivered=True, retry_in_s=None)
    job = store.get(job_id)
    assert job is not None and (job.webhook, job.webhook_attempts, job.webhook_outcome) == ("delivered", 1, "HTTP 204")
    assert store.due_webhooks(utcnow() + LATER) == []
    assert job.to_json()["webhook"] == {"status": "delivered", "attempts": 1, "outcome": "HTTP 204"}


def test_webhook_attempted_with_a_retry_keeps_it_pending_until_then(store: JobStore) -> None:
    job_id = ended_with_callback(store)
    store.webhook_attempted(job_id, "HTTP 500", delivered=False, retry_in_s=60)
    job = store.get(job_id)
    assert job is not None and (job.webhook, job.webhook_attempts, job.webhook_outcome) == ("pending", 1, "HTTP 500")
    assert store.due_webhooks(utcnow()) == []
    assert [due.id for due in store.due_webhooks(utcnow() + timedelta(seconds=61))] == [job_id]


def test_webhook_attempted_without_a_retry_gives_it_up(store: JobStore) -> None:
    job_id = ended_with_callback(store)
    store.webhook_attempted(job_id, "refused: loopback", delivered=False, retry_in_s=None)
    job = store.get(job_id)
    assert job is not None and (job.webhook, job.webhook_attempts) == ("failed", 1)
    assert store.due_webhooks(utcnow() + LATER) == []
    store.webhook_attempted("job-nope", "HTTP 200", delivered=True, retry_in_s=None)  # nothing to record: no error


def test_due_webhooks_lists_pending_deliveries_whose_time_has_come_oldest_first(store: JobStore) -> None:
    first, second, third = ended_with_callback(store), ended_with_callback(store), ended_with_callback(store)
    store.webhook_attempted(first, "HTTP 500", delivered=False, retry_in_s=30)
    ended_without = running(store)
    store.finish(ended_without, "r1", "succeeded", result="1")
    assert [job.id for job in store.due_webhooks(utcnow() + timedelta(seconds=1))] == [second, third]
    assert [job.id for job in store.due_webhooks(utcnow() + timedelta(seconds=31))] == [second, third, first]
    assert [job.id for job in store.due_webhooks(utcnow() + timedelta(seconds=31), limit=1)] == [second]


# 10,000 jobs -----------------------------------------------------------------------------------
def test_10000_queued_jobs_are_listed_as_due_in_pages_oldest_first(store: JobStore) -> None:
    base = utcnow() - timedelta(minutes=5)
    # Setup in one transaction (submit() row by row costs ~20 s here); the rows are what submit() writes.
    with store._session() as session:
        session.add_all(_Job(id=f"job-{i:05d}", function=f"f{i % 7}", owner="k1", source="api", status="queued",
                             arguments="{}", next_at=base + timedelta(milliseconds=i), created=base)
                        for i in range(10_000))
    assert store.unfinished() == 10_000

    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    now = utcnow()
    for _ in range(20):  # the runner looks twice a second; ten seconds of looking, all answered
        page = store.due(now, 100)
        assert [job.id for job in page] == [f"job-{i:05d}" for i in range(100)]
    event.remove(store.engine, "before_cursor_execute", record)
    # Fast enough on 10,000 rows because it walks the (status, next_at) index rather than scanning the table.
    statement, parameters = next((s, p) for s, p in statements if s.lstrip().upper().startswith("SELECT"))
    with store.engine.connect() as connection:
        plan = " ".join(str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}",
                                                                            parameters))
    assert "ix_jobs_due" in plan, plan
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM jobs")).scalar() == 10_000

    seen: list[str] = []
    while page := store.due(now, 100):  # page after page, as the runner takes them
        assert len(page) <= 100
        seen += [job.id for job in page]
        if len(seen) == 100:
            assert all(store.claim(job.id, "r1", 60) is not None for job in page)
        else:  # claim() one by one is tested above; here a page is taken in one statement (~25 s less)
            with store._session() as session:
                session.execute(update(_Job).where(_Job.id.in_([job.id for job in page])).values(status="running"))
    assert seen == [f"job-{i:05d}" for i in range(10_000)]
    assert store.unfinished() == 10_000 and store.due(now, 100) == []


def test_due_skips_the_functions_at_their_cap_so_their_backlog_hides_no_other_job(tmp_path: Path) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'r.db'}")
    for i in range(50):
        store.submit(NewJob(function="busy", arguments=f'{{"i": {i}}}', owner="k"))
    other, _ = store.submit(NewJob(function="other", arguments="{}", owner="k"))
    later = utcnow() + timedelta(seconds=1)
    assert other.id not in [job.id for job in store.due(later, 10)]  # 50 older jobs of busy come first
    assert [job.id for job in store.due(later, 10, skip={"busy"})] == [other.id]
