"""Schedules: which functions run on a clock, whether they are paused, and when each fires next.

Each tick fires as a job whose id names the schedule and the tick (``tick_job_id``), so a tick is one job however
often it is tried: a control plane that fired it and died before it moved ``next_at`` on, or two control planes
at once, find the job already there (``JobStore.submit`` takes a given id once). ``advance`` moves ``next_at``
only from the value it read (compare and set). The ticks' history is those jobs (``source`` schedule:<name>).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, select, update
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, Database, utcnow


class _Schedule(Base):
    __tablename__ = "schedules"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)  # the function's name
    schedule: Mapped[str] = mapped_column(Text)  # JSON: {"cron": ..., "tz": ...} or {"every_s": ...}
    paused: Mapped[bool] = mapped_column(default=False)
    next_at: Mapped[datetime]  # UTC, naive
    last_at: Mapped[datetime | None]  # the last tick fired
    last_job: Mapped[str | None] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(String(64))  # the key that deployed it: its ticks' jobs are its jobs
    updated: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class Schedule:
    name: str
    schedule: dict[str, Any]
    paused: bool
    next_at: datetime
    last_at: datetime | None
    last_job: str | None
    owner: str | None


def tick_job_id(name: str, tick: datetime) -> str:
    digest = hashlib.sha256(f"{name}\0{tick.isoformat()}".encode()).hexdigest()[:20]
    return f"job-s{digest}"


def _schedule(row: _Schedule) -> Schedule:
    return Schedule(name=row.name, schedule=json.loads(row.schedule), paused=bool(row.paused), next_at=row.next_at,
                    last_at=row.last_at, last_job=row.last_job, owner=row.owner)


class ScheduleStore(Database):
    def all(self) -> list[Schedule]:
        with self._session() as session:
            return [_schedule(row) for row in session.scalars(select(_Schedule).order_by(_Schedule.name))]

    def get(self, name: str) -> Schedule | None:
        with self._session() as session:
            row = session.get(_Schedule, name)
            return _schedule(row) if row is not None else None

    def put(self, name: str, schedule: dict[str, Any], next_at: datetime, owner: str | None) -> None:
        """Declare or change a schedule; an unchanged one keeps its next tick (and its pause)."""
        text = json.dumps(schedule, sort_keys=True)
        with self._session() as session:
            row = session.get(_Schedule, name)
            if row is None:
                session.add(_Schedule(name=name, schedule=text, next_at=next_at, owner=owner))
            else:
                if row.schedule != text:
                    row.schedule, row.next_at, row.updated = text, next_at, utcnow()
                row.owner = owner  # the latest deploy's key: the ticks are its jobs, signed with its webhook secret

    def remove_except(self, names: set[str]) -> list[str]:
        """Forget the schedules of functions no longer declaring one."""
        with self._session() as session:
            gone = [row for row in session.scalars(select(_Schedule)) if row.name not in names]
            for row in gone:
                session.delete(row)
            return [row.name for row in gone]

    def due(self, now: datetime) -> list[Schedule]:
        with self._session() as session:
            rows = session.scalars(select(_Schedule).where(_Schedule.paused.is_(False), _Schedule.next_at <= now))
            return [_schedule(row) for row in rows]

    def advance(self, name: str, expected: datetime, fired: datetime, job_id: str, next_at: datetime) -> bool:
        """Move the next tick on from *expected* (what the caller read): False if another process moved it first."""
        with self._session() as session:
            changed = session.execute(update(_Schedule).where(_Schedule.name == name, _Schedule.next_at == expected)
                                      .values(next_at=next_at, last_at=fired, last_job=job_id, updated=utcnow()))
            return bool(changed.rowcount == 1)  # type: ignore[attr-defined]

    def set_paused(self, name: str, paused: bool, next_at: datetime | None = None) -> Schedule | None:
        """Pause, or resume from *next_at* (the ticks missed while paused are skipped)."""
        with self._session() as session:
            row = session.get(_Schedule, name)
            if row is None:
                return None
            row.paused, row.updated = paused, utcnow()
            if next_at is not None:
                row.next_at = next_at
        return self.get(name)
