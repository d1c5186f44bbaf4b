"""The control plane's share of jobs: firing schedules and delivering webhooks (the runner runs the jobs).

Both run here because they need what only the control plane holds: webhooks are signed with a secret per API key
derived from the secrets' master key, which never enters Ray; schedules are declared by deploys. Both are driven
by the database alone, so a control plane that restarts (or a second one) neither loses nor repeats a tick or a
delivery: a tick is a job with an id of its own (``storage.schedules.tick_job_id``), a delivery's state is a row.

Missed ticks: a control plane that was down across several ticks fires the latest one once when it is back, and
none of the others; ticks missed while a schedule was paused are skipped (it resumes from the next tick).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from fn import NotFound
from fn._platform import describe_schedule, schedule_from_json
from fnplatform.jobs import runner
from fnplatform.jobs.settings import JobSettings
from fnplatform.jobs.webhooks import MAX_DELIVERY_ATTEMPTS, backoff_s, deliver, webhook_secret
from fnplatform.storage.db import utcnow
from fnplatform.storage.jobs import Job, JobStore, NewJob
from fnplatform.storage.registry import Registry
from fnplatform.storage.schedules import Schedule, ScheduleStore, tick_job_id
from fnplatform.storage.secrets import SecretCipher

log = logging.getLogger("fnplatform")
WEBHOOKS_AT_ONCE = 16
CLAIM_S = 60.0  # a claimed delivery not recorded within this (its control plane died) is due again


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC)


def _naive(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None)


class JobsControl:
    def __init__(self, registry: Registry, cipher: SecretCipher, store: dict[str, Any]) -> None:
        self.registry = registry
        self.jobs = JobStore(registry.url)
        self.schedules = ScheduleStore(registry.url)
        self.settings = JobSettings.from_env(registry.url)
        self._cipher = cipher
        self._store = store

    def ensure_runner(self) -> None:
        """Start the job runner if it is gone for good (Ray restarts it when its process dies, not when its
        constructor failed), so queued jobs always have a runner."""
        runner.runner(self._store, fresh=True)

    def webhook_secret(self, key_id: str) -> str:
        return webhook_secret(self._cipher.derive(b"fn-webhooks"), key_id)

    # schedules --------------------------------------------------------------------------------
    def sync_schedules(self) -> None:
        """Make the schedules table match the active versions' specs (a redeploy may add, change or drop one)."""
        declared: set[str] = set()
        now = datetime.now(UTC)
        for version in self.registry.actives():
            if version.spec.schedule is None:
                continue
            declared.add(version.spec.name)
            first = schedule_from_json(version.spec.schedule).next_after(now)
            owner = version.created_by.split(" ")[0] if version.created_by else None
            self.schedules.put(version.spec.name, version.spec.schedule, _naive(first), owner)
        self.schedules.remove_except(declared)

    def tick(self, now: datetime | None = None) -> list[str]:
        """Fire every due schedule once; the ids of the jobs queued."""
        now = now or datetime.now(UTC)
        fired = []
        for item in self.schedules.due(_naive(now)):
            try:
                job_id = self._fire(item, now)
            except Exception as exc:  # noqa: BLE001 - one schedule failing must not hold up the others' ticks
                log.warning("schedule %s: could not fire its tick: %s: %s", item.name, type(exc).__name__, exc)
                continue
            if job_id is not None:
                fired.append(job_id)
        if fired:
            runner.poke(self._store)
        return fired

    def _fire(self, item: Schedule, now: datetime) -> str | None:
        schedule = schedule_from_json(item.schedule)
        tick = max(_aware(item.next_at), _latest_tick(schedule, now))  # missed ones before it are not run
        walked = tick != _aware(item.next_at)
        version = self.registry.active(item.name)
        if version is None:
            return None
        spec = version.spec
        job_id = tick_job_id(item.name, tick)
        self.jobs.submit(NewJob(function=item.name, arguments="{}", owner=item.owner, max_attempts=spec.retries + 1,
                                backoff_s=spec.retry_backoff_s, timeout_s=spec.timeout_s + 30,
                                callback_url=spec.callback_url, source=f"schedule:{item.name}", id=job_id))
        if not self.schedules.advance(item.name, item.next_at, _naive(tick), job_id, _naive(schedule.next_after(tick))):
            return None  # another control plane moved it on; the job id is the same, so nothing ran twice
        if walked:
            log.warning("schedule %s: ticks from %s on were missed (the control plane was down); ran the latest once",
                        item.name, item.next_at.isoformat())
        return job_id

    def list_schedules(self) -> list[dict[str, Any]]:
        out = []
        for item in self.schedules.all():
            last = self.jobs.get(item.last_job) if item.last_job else None
            out.append({"name": item.name, "schedule": describe_schedule(schedule_from_json(item.schedule)),
                        "paused": item.paused, "next_at": _iso(item.next_at) if not item.paused else None,
                        "last_at": _iso(item.last_at), "last_job": item.last_job,
                        "last_status": last.status if last is not None else None})
        return out

    def history(self, name: str, limit: int = 50) -> dict[str, Any]:
        item = self._schedule(name)
        runs = self.jobs.find(function=name, source=f"schedule:{name}", limit=limit)
        return {"name": name, "schedule": describe_schedule(schedule_from_json(item.schedule)), "paused": item.paused,
                "runs": [{"job": job.id, "status": job.status, "created": _iso(job.created),
                          "finished": _iso(job.finished), "error": job.error} for job in runs[:limit]]}

    def pause(self, name: str) -> dict[str, Any]:
        self._schedule(name)
        self.schedules.set_paused(name, True)
        return self.history(name, limit=0)

    def resume(self, name: str) -> dict[str, Any]:
        item = self._schedule(name)
        following = schedule_from_json(item.schedule).next_after(datetime.now(UTC))
        self.schedules.set_paused(name, False, _naive(following))
        return self.history(name, limit=0)

    def _schedule(self, name: str) -> Schedule:
        item = self.schedules.get(name)
        if item is None:
            raise NotFound(f"{name!r} has no schedule; list schedules with 'fnctl schedules ls'", status=404)
        return item

    # webhooks ---------------------------------------------------------------------------------
    def deliver_webhooks(self) -> int:
        """Send every due webhook once (at most WEBHOOKS_AT_ONCE at a time); how many were attempted. Each is claimed
        first, so a second control plane does not send it too (a receiver should still de-duplicate by job id: a
        control plane that dies after sending and before recording sends it again)."""
        due = self.jobs.claim_webhooks(utcnow(), limit=200, hold_s=CLAIM_S)
        if due:
            asyncio.run(self._deliver_all(due))
        return len(due)

    async def _deliver_all(self, due: list[Job]) -> None:
        gate = asyncio.Semaphore(WEBHOOKS_AT_ONCE)

        async def one(job: Job) -> None:
            async with gate:
                await self._deliver(job)

        for job, outcome in zip(due, await asyncio.gather(*(one(job) for job in due), return_exceptions=True), strict=True):
            if isinstance(outcome, BaseException):  # one job's failure must not stop the others' deliveries
                log.warning("job %s: its webhook failed: %s: %s", job.id, type(outcome).__name__, outcome)

    async def _deliver(self, job: Job) -> None:
        assert job.callback_url is not None
        result = None
        if job.status == "succeeded":
            text = job.result if job.result is not None else "null"
            result = json.loads(text) if job.result_blob is None else None
        body = job.to_json(result)
        if job.result_blob is not None:
            body["result_omitted"] = "the result is large: read it with GET /jobs/<id>"
        delivery = await deliver(job.callback_url, json.dumps(body).encode(), self.webhook_secret(job.owner or "-"),
                                 allow_private=self.settings.allow_private, allow_loopback=self.settings.allow_loopback)
        attempts = job.webhook_attempts + 1
        retry = delivery.retry and attempts < MAX_DELIVERY_ATTEMPTS
        await asyncio.to_thread(self.jobs.webhook_attempted, job.id, delivery.outcome, delivered=delivery.delivered,
                                retry_in_s=backoff_s(attempts) if retry else None)
        if not delivery.delivered and not retry:
            log.warning("job %s: gave up delivering its webhook after %d attempt(s): %s", job.id, attempts,
                        delivery.outcome)


def _latest_tick(schedule: Any, now: datetime) -> datetime:
    """The latest tick at or before *now*: found from a window before *now* that doubles until it holds a tick, then
    walked forward, so a control plane down for days looks at a few ticks, not every one it missed."""
    window = timedelta(minutes=1)
    while schedule.next_after(now - window) > now and window < timedelta(days=800):
        window *= 2
    tick: datetime = schedule.next_after(now - window)
    while (following := schedule.next_after(tick)) <= now:
        tick = following
    return tick


def _iso(at: datetime | None) -> str | None:
    return at.isoformat(timespec="seconds") + "Z" if at is not None else None
