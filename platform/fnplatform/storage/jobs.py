"""Jobs: function calls accepted with 202 and kept here until they end, then for the retention time.

A job is a row from the moment it is accepted, so nothing accepted is lost: the runner claims due rows
(``claim``), holds a lease on each while it runs it and renews it, and writes the end (``finish``) or a
retry (``retry_later``). A runner that died leaves leases that run out; ``requeue_expired`` puts those jobs
back without counting the attempt against the job's retries (the platform failed, not the function). A job
that fails every attempt stays ``failed``: a dead letter, listed and re-driven with ``redrive``. Jobs with a
``callback_url`` carry their webhook's delivery state too, driven by the control plane.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Index, String, Text, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, Database, utcnow

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
ENDED = frozenset({"succeeded", "failed", "cancelled"})
# Platform failures (a runner or replica gone mid-call) a job survives before it is failed: they do not use its retries.
MAX_LOST = 5


class _Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    function: Mapped[str] = mapped_column(String(63))
    version: Mapped[int | None]  # pinned by the caller; None: the active version (or the traffic split)
    owner: Mapped[str | None] = mapped_column(String(64))  # the API key id that spawned it
    source: Mapped[str] = mapped_column(String(100), default="api")  # api, schedule:<name>
    status: Mapped[str] = mapped_column(String(16), default="queued")
    arguments: Mapped[str | None] = mapped_column(Text)  # JSON object; NULL when kept in the store
    arguments_blob: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=1)
    backoff_s: Mapped[float] = mapped_column(default=1.0)
    timeout_s: Mapped[float] = mapped_column(default=330.0)
    lost: Mapped[int] = mapped_column(default=0)  # runs cut short by the platform (not counted in attempts)
    result: Mapped[str | None] = mapped_column(Text)  # JSON; NULL when kept in the store
    result_blob: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)  # JSON {"type", "message", "status"}
    created: Mapped[datetime] = mapped_column(default=utcnow)
    started: Mapped[datetime | None]
    finished: Mapped[datetime | None]
    next_at: Mapped[datetime] = mapped_column(default=utcnow)  # when a queued job may run
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    callback_url: Mapped[str | None] = mapped_column(Text)
    webhook: Mapped[str | None] = mapped_column(String(16))  # pending, delivered, failed; NULL: no callback
    webhook_attempts: Mapped[int] = mapped_column(default=0)
    webhook_next_at: Mapped[datetime | None]
    webhook_outcome: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_jobs_due", "status", "next_at"), Index("ix_jobs_function", "function", "status"),
                      Index("ix_jobs_owner", "owner", "status"), Index("ix_jobs_webhook", "webhook", "webhook_next_at"),
                      Index("ix_jobs_finished", "finished"))


@dataclass(frozen=True)
class NewJob:
    function: str
    arguments: str | None  # JSON text of the keyword arguments; None when in *arguments_blob*
    owner: str | None
    max_attempts: int = 1
    backoff_s: float = 1.0
    timeout_s: float = 330.0
    version: int | None = None
    callback_url: str | None = None
    source: str = "api"
    arguments_blob: str | None = None
    id: str | None = None  # given: a deterministic id (an idempotency key, a schedule's tick); taken once


@dataclass(frozen=True)
class Ending:
    job_id: str
    owner: str | None  # the runner holding its lease; None: whoever holds it
    status: str
    result: str | None = None
    result_blob: str | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class Job:
    id: str
    function: str
    version: int | None
    owner: str | None
    source: str
    status: str
    attempts: int
    max_attempts: int
    backoff_s: float
    timeout_s: float
    lost: int
    arguments: str | None
    arguments_blob: str | None
    result: str | None
    result_blob: str | None
    error: dict[str, Any] | None
    created: datetime
    started: datetime | None
    finished: datetime | None
    next_at: datetime
    cancel_requested: bool
    callback_url: str | None
    webhook: str | None
    webhook_attempts: int
    webhook_outcome: str | None
    webhook_next_at: datetime | None = None

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def to_json(self, result: Any = None) -> dict[str, Any]:
        """The job's public state; *result* is the decoded result (read from the store by the caller if need be)."""
        body: dict[str, Any] = {"id": self.id, "function": self.function, "status": self.status,
                                "attempts": self.attempts, "max_attempts": self.max_attempts,
                                "created": _iso(self.created), "started": _iso(self.started),
                                "finished": _iso(self.finished), "source": self.source}
        if self.version is not None:
            body["version"] = self.version
        if self.status == "succeeded":
            body["result"] = result
        if self.error is not None:
            body["error"] = self.error
        if self.status == "queued" and self.attempts:
            body["next_attempt_at"] = _iso(self.next_at)
        if self.callback_url is not None:
            body["webhook"] = {"status": self.webhook, "attempts": self.webhook_attempts, "outcome": self.webhook_outcome}
        return body


def _iso(at: datetime | None) -> str | None:
    return at.isoformat(timespec="milliseconds") + "Z" if at is not None else None


def _job(row: _Job) -> Job:
    return Job(id=row.id, function=row.function, version=row.version, owner=row.owner, source=row.source,
               status=row.status, attempts=row.attempts, max_attempts=row.max_attempts, backoff_s=row.backoff_s,
               timeout_s=row.timeout_s, lost=row.lost, arguments=row.arguments, arguments_blob=row.arguments_blob,
               result=row.result, result_blob=row.result_blob, error=json.loads(row.error) if row.error else None,
               created=row.created, started=row.started, finished=row.finished, next_at=row.next_at,
               cancel_requested=bool(row.cancel_requested), callback_url=row.callback_url, webhook=row.webhook,
               webhook_attempts=row.webhook_attempts, webhook_outcome=row.webhook_outcome,
               webhook_next_at=row.webhook_next_at)


def _cancelled(row: _Job, now: datetime) -> None:
    row.status, row.finished = "cancelled", now
    row.error = json.dumps({"type": "Cancelled", "status": 409, "message": "cancelled on request"})
    if row.callback_url:
        row.webhook, row.webhook_next_at, row.webhook_attempts = "pending", now, 0


def _row(new: NewJob) -> _Job:
    now = utcnow()
    return _Job(id=new.id or new_job_id(), function=new.function, version=new.version, owner=new.owner, source=new.source,
                status="queued", arguments=new.arguments, arguments_blob=new.arguments_blob,
                max_attempts=new.max_attempts, backoff_s=new.backoff_s, timeout_s=new.timeout_s,
                callback_url=new.callback_url, next_at=now, created=now)


def new_job_id() -> str:
    return f"job-{uuid.uuid4().hex[:20]}"


class JobStore(Database):
    def submit(self, new: NewJob) -> tuple[Job, bool]:
        """Record a queued job; (the job, True). A given id already taken: (that job, False), nothing written."""
        row = _row(new)
        try:
            with self._session() as session:
                session.add(row)
        except IntegrityError:
            existing = self.get(row.id)
            if existing is None:
                raise
            return existing, False
        return _job(row), True

    def submit_many(self, jobs: list[NewJob]) -> list[tuple[Job, bool]]:
        """``submit`` for each, in one transaction (group commit); one id already taken sends each on its own."""
        rows = [_row(new) for new in jobs]
        try:
            with self._session() as session:
                session.add_all(rows)
        except IntegrityError:
            return [self.submit(new) for new in jobs]
        return [(_job(row), True) for row in rows]

    def get(self, job_id: str) -> Job | None:
        with self._session() as session:
            row = session.get(_Job, job_id)
            return _job(row) if row is not None else None

    def find(self, *, function: str | None = None, statuses: tuple[str, ...] = (), owner: str | None = None,
             source: str | None = None, limit: int = 100) -> list[Job]:
        """Newest first."""
        query = select(_Job).order_by(_Job.created.desc(), _Job.id).limit(limit)
        if source is not None:
            query = query.where(_Job.source == source)
        if function is not None:
            query = query.where(_Job.function == function)
        if statuses:
            query = query.where(_Job.status.in_(statuses))
        if owner is not None:
            query = query.where(_Job.owner == owner)
        with self._session() as session:
            return [_job(row) for row in session.scalars(query)]

    def counts(self) -> dict[tuple[str, str], int]:
        """(function, status) -> number of jobs."""
        with self._session() as session:
            rows = session.execute(select(_Job.function, _Job.status, func.count()).group_by(_Job.function, _Job.status))
            return {(f, s): int(n) for f, s, n in rows}

    def unfinished(self, *, owner: str | None = None, function: str | None = None) -> int:
        query = select(func.count()).select_from(_Job).where(_Job.status.in_(("queued", "running")))
        if owner is not None:
            query = query.where(_Job.owner == owner)
        if function is not None:
            query = query.where(_Job.function == function)
        with self._session() as session:
            return int(session.scalar(query) or 0)

    # the runner -------------------------------------------------------------------------------
    def due(self, now: datetime, limit: int, *, skip: Collection[str] = ()) -> list[Job]:
        """Queued jobs whose time has come, oldest first, but none of the functions in *skip* (those at their cap:
        their queue must not hide other functions' jobs behind it). Not claimed: the runner claims what it starts."""
        query = select(_Job).where(_Job.status == "queued", _Job.next_at <= now)
        if skip:
            query = query.where(_Job.function.not_in(list(skip)))
        with self._session() as session:
            return [_job(row) for row in session.scalars(query.order_by(_Job.next_at, _Job.id).limit(limit))]

    def next_due(self) -> datetime | None:
        """When the earliest queued job may run (the runner sleeps until then, or until it is woken)."""
        with self._session() as session:
            return session.scalar(select(func.min(_Job.next_at)).where(_Job.status == "queued"))

    def claim(self, job_id: str, owner: str, lease_s: float) -> Job | None:
        """Start an attempt of a queued job: None if it is no longer queued (cancelled meanwhile)."""
        claimed = self.claim_many([job_id], owner, lease_s)
        return claimed[0] if claimed else None

    def claim_many(self, job_ids: list[str], owner: str, lease_s: float) -> list[Job]:
        """Start an attempt of each of these jobs that is still queued, in one transaction; those started."""
        now = utcnow()
        with self._session() as session:
            session.execute(update(_Job).where(_Job.id.in_(job_ids), _Job.status == "queued").values(
                status="running", attempts=_Job.attempts + 1, started=now, lease_owner=owner,
                lease_until=now + timedelta(seconds=lease_s)))
            rows = session.scalars(select(_Job).where(_Job.id.in_(job_ids), _Job.status == "running",
                                                      _Job.lease_owner == owner, _Job.started == now))
            return [_job(row) for row in rows]

    def renew(self, job_ids: list[str], owner: str, lease_s: float) -> None:
        if not job_ids:
            return
        with self._session() as session:
            session.execute(update(_Job).where(_Job.id.in_(job_ids), _Job.lease_owner == owner, _Job.status == "running")
                            .values(lease_until=utcnow() + timedelta(seconds=lease_s)))

    def cancels(self, owner: str) -> list[str]:
        """Running jobs of this runner whose cancellation was asked for."""
        with self._session() as session:
            return list(session.scalars(select(_Job.id).where(_Job.status == "running", _Job.lease_owner == owner,
                                                              _Job.cancel_requested.is_(True))))

    def finish(self, job_id: str, owner: str | None, status: str, *, result: str | None = None,
               result_blob: str | None = None, error: dict[str, Any] | None = None) -> bool:
        """End a job (of this runner's lease when *owner* is given); whether it was written."""
        return self.finish_many([Ending(job_id, owner, status, result, result_blob, error)])[0]

    def finish_many(self, endings: list[Ending]) -> list[bool]:
        """``finish`` for each, in one transaction (group commit)."""
        now = utcnow()
        written = []
        with self._session() as session:
            for end in endings:
                assert end.status in ENDED
                row = session.get(_Job, end.job_id, with_for_update=True)
                if row is None or row.status in ENDED or (end.owner is not None and row.lease_owner != end.owner):
                    written.append(False)
                    continue
                row.status, row.finished, row.result, row.result_blob = end.status, now, end.result, end.result_blob
                row.error = json.dumps(end.error) if end.error is not None else None
                row.lease_owner = row.lease_until = None
                if row.callback_url:
                    row.webhook, row.webhook_next_at, row.webhook_attempts = "pending", now, 0
                written.append(True)
        return written

    def retry_later(self, job_id: str, owner: str, delay_s: float, error: dict[str, Any], *, lost: bool = False,
                    busy: bool = False) -> bool:
        """Back to the queue after a failed attempt. *lost*: the platform failed it (counted in ``lost``), *busy*: the
        function had no room; either way the attempt is given back. A job whose cancellation was asked ends instead."""
        with self._session() as session:
            row = session.get(_Job, job_id, with_for_update=True)  # PostgreSQL: no write lost to a race
            if row is None or row.status != "running" or row.lease_owner != owner:
                return False
            row.lease_owner = row.lease_until = None
            if row.cancel_requested:
                _cancelled(row, utcnow())
                return True
            row.status, row.next_at, row.error = "queued", utcnow() + timedelta(seconds=delay_s), json.dumps(error)
            if lost or busy:
                row.attempts = max(0, row.attempts - 1)
            if lost:
                row.lost += 1
            return True

    def requeue_expired(self, now: datetime, *, owner_other_than: str | None = None) -> int:
        """Running jobs whose runner is gone (its lease ran out, or, at a runner's start, any other runner's) go back
        to the queue, the attempt given back; past MAX_LOST such losses a job fails instead of looping."""
        query = select(_Job).where(_Job.status == "running").with_for_update()
        query = query.where(_Job.lease_owner != owner_other_than) if owner_other_than else query.where(
            _Job.lease_until < now)
        count = 0
        with self._session() as session:
            for row in session.scalars(query):
                count += 1
                row.lost += 1
                row.attempts = max(0, row.attempts - 1)
                row.lease_owner = row.lease_until = None
                if row.cancel_requested:  # its runner died before it could stop it: it ends as asked
                    _cancelled(row, now)
                elif row.lost > MAX_LOST:
                    row.status, row.finished = "failed", now
                    row.error = json.dumps({"type": "Lost", "status": 503, "message": f"the platform lost this job's run "
                                            f"{row.lost} times (replica or runner gone); re-drive it with 'fnctl jobs retry'"})
                    if row.callback_url:
                        row.webhook, row.webhook_next_at, row.webhook_attempts = "pending", now, 0
                else:
                    row.status, row.next_at = "queued", now
        return count

    # callers ----------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> Job | None:
        """A queued job ends cancelled now; a running one is marked, and its runner stops it within a second."""
        now = utcnow()
        with self._session() as session:
            row = session.get(_Job, job_id, with_for_update=True)  # PostgreSQL: no write lost to a race
            if row is None:
                return None
            if row.status == "queued":
                _cancelled(row, now)
            elif row.status == "running":
                row.cancel_requested = True
        return self.get(job_id)

    def redrive(self, job_id: str) -> Job | None:
        """A failed (dead-letter) or cancelled job queued again with all its attempts; None if no such job."""
        with self._session() as session:
            row = session.get(_Job, job_id, with_for_update=True)  # PostgreSQL: no write lost to a race
            if row is None:
                return None
            if row.status in {"failed", "cancelled"}:
                row.status, row.attempts, row.lost, row.next_at = "queued", 0, 0, utcnow()
                row.finished = row.started = None
                row.error = row.result = row.result_blob = None
                row.cancel_requested = False
                row.webhook = row.webhook_next_at = row.webhook_outcome = None
                row.webhook_attempts = 0
        return self.get(job_id)

    def purge(self, before: datetime, limit: int = 1000) -> list[str]:
        """Forget ended jobs that ended before *before* (their webhook settled); the store keys they held."""
        with self._session() as session:
            rows = list(session.scalars(select(_Job).where(_Job.status.in_(ENDED), _Job.finished < before,
                                                           (_Job.webhook.is_(None)) | (_Job.webhook != "pending"))
                                        .limit(limit)))
            keys = [key for row in rows for key in (row.arguments_blob, row.result_blob) if key]
            if rows:  # the conditions again: a job re-driven since it was read is kept
                session.execute(delete(_Job).where(_Job.id.in_([row.id for row in rows]), _Job.status.in_(ENDED),
                                                   _Job.finished < before))
        return keys

    # webhooks ---------------------------------------------------------------------------------
    def due_webhooks(self, now: datetime, limit: int = 100) -> list[Job]:
        with self._session() as session:
            rows = session.scalars(select(_Job).where(_Job.webhook == "pending", _Job.webhook_next_at <= now)
                                   .order_by(_Job.webhook_next_at).limit(limit))
            return [_job(row) for row in rows]

    def claim_webhooks(self, now: datetime, limit: int, hold_s: float) -> list[Job]:
        """Due deliveries, each moved *hold_s* into the future from the time read (compare and set): another control
        plane reading the same rows claims none of them, and one that dies mid-delivery leaves them due again."""
        claimed = []
        for job in self.due_webhooks(now, limit):
            with self._session() as session:
                changed = session.execute(update(_Job).where(
                    _Job.id == job.id, _Job.webhook == "pending", _Job.webhook_next_at == job.webhook_next_at)
                    .values(webhook_next_at=now + timedelta(seconds=hold_s)))
                if changed.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(job)
        return claimed

    def webhook_attempted(self, job_id: str, outcome: str, *, delivered: bool, retry_in_s: float | None) -> None:
        """Record one delivery attempt: delivered, to be tried again in *retry_in_s*, or (None) given up."""
        with self._session() as session:
            row = session.get(_Job, job_id, with_for_update=True)  # PostgreSQL: no write lost to a race
            if row is None:
                return
            row.webhook_attempts += 1
            row.webhook_outcome = outcome
            if delivered:
                row.webhook, row.webhook_next_at = "delivered", None
            elif retry_in_s is None:
                row.webhook, row.webhook_next_at = "failed", None
            else:
                row.webhook_next_at = utcnow() + timedelta(seconds=retry_in_s)
