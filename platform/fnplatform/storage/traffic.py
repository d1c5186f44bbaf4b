"""Where each function's calls go: its traffic split, shadow, progressive rollout, and the history of changes.

A function with no row here sends every call to its active version (the common case, and every function
before this table existed). A row names weights by version number (``{"3": 90, "4": 10}``), a shadow
version and the share of calls copied to it, and a rollout in progress; every change is an event with its
reason and who made it, which ``fnctl traffic NAME`` shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, Database, utcnow

HISTORY_SHOWN = 50


class _Traffic(Base):
    __tablename__ = "traffic"
    function: Mapped[str] = mapped_column(ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True)
    weights: Mapped[str | None] = mapped_column(Text)  # JSON {version: weight}; NULL: all to the active version
    shadow_version: Mapped[int | None]
    shadow_percent: Mapped[float | None]
    rollout: Mapped[str | None] = mapped_column(Text)  # JSON (control.traffic.Rollout); NULL: none in progress
    pinned: Mapped[str | None] = mapped_column(Text)  # JSON list of versions started for pinned calls
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class _Event(Base):
    __tablename__ = "traffic_events"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    function: Mapped[str] = mapped_column(String(63), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(32))
    weights: Mapped[str | None] = mapped_column(Text)  # the weights after the change (JSON)
    version: Mapped[int | None]  # the version the change is about (activated, rolled back, shadowed...)
    reason: Mapped[str] = mapped_column(Text, default="")
    by: Mapped[str | None] = mapped_column(String(100))


@dataclass
class Traffic:
    function: str
    weights: dict[int, float] = field(default_factory=dict)  # empty: everything to the active version
    shadow_version: int | None = None
    shadow_percent: float = 0.0
    rollout: dict[str, Any] | None = None
    pinned: list[int] = field(default_factory=list)

    @property
    def plain(self) -> bool:
        return not self.weights and self.shadow_version is None and self.rollout is None and not self.pinned

    def versions(self) -> set[int]:
        """Versions besides the active one that must run in Serve: in the split, shadowed or pinned."""
        found = {v for v, w in self.weights.items() if w > 0} | set(self.pinned)
        if self.shadow_version is not None:
            found.add(self.shadow_version)
        return found


@dataclass(frozen=True)
class Event:
    at: datetime
    action: str
    weights: dict[int, float] | None
    version: int | None
    reason: str
    by: str | None

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat() + "Z", "action": self.action, "version": self.version,
                "weights": {str(v): w for v, w in self.weights.items()} if self.weights is not None else None,
                "reason": self.reason, "by": self.by}


def _weights(text: str | None) -> dict[int, float]:
    return {int(k): float(v) for k, v in json.loads(text).items()} if text else {}


def _dump_weights(weights: dict[int, float]) -> str | None:
    return json.dumps({str(k): v for k, v in sorted(weights.items())}) if weights else None


class TrafficStore(Database):
    def get(self, function: str) -> Traffic:
        with self._session() as session:
            row = session.get(_Traffic, function)
            return _traffic(row) if row is not None else Traffic(function)

    def all(self) -> list[Traffic]:
        with self._session() as session:
            return [_traffic(row) for row in session.scalars(select(_Traffic).order_by(_Traffic.function))]

    def put(self, traffic: Traffic) -> None:
        with self._session() as session:
            row = session.get(_Traffic, traffic.function)
            if traffic.plain:
                if row is not None:
                    session.delete(row)
                return
            if row is None:
                row = _Traffic(function=traffic.function)
                session.add(row)
            row.weights = _dump_weights(traffic.weights)
            row.shadow_version = traffic.shadow_version
            row.shadow_percent = traffic.shadow_percent if traffic.shadow_version is not None else None
            row.rollout = json.dumps(traffic.rollout) if traffic.rollout is not None else None
            row.pinned = json.dumps(sorted(set(traffic.pinned))) if traffic.pinned else None
            row.updated_at = utcnow()

    def record(self, function: str, action: str, reason: str, *, weights: dict[int, float] | None = None,
               version: int | None = None, by: str | None = None) -> None:
        with self._session() as session:
            session.add(_Event(function=function, action=action, weights=json.dumps({str(k): v for k, v in weights.items()})
                               if weights is not None else None, version=version, reason=reason, by=by))

    def history(self, function: str, last: int = HISTORY_SHOWN) -> list[Event]:
        """The newest *last* events, oldest first."""
        with self._session() as session:
            rows = list(session.scalars(select(_Event).where(_Event.function == function)
                                        .order_by(_Event.id.desc()).limit(last)))
        return [Event(at=r.at, action=r.action, weights=_weights(r.weights) if r.weights else None, version=r.version,
                      reason=r.reason, by=r.by) for r in reversed(rows)]

    def activations(self, function: str) -> list[int]:
        """The versions made active, in order (deploys, promotions, rollbacks)."""
        with self._session() as session:
            return [v for v in session.scalars(select(_Event.version).where(
                _Event.function == function, _Event.action == "activate").order_by(_Event.id)) if v is not None]

    def forget(self, function: str) -> None:
        with self._session() as session:
            session.execute(delete(_Event).where(_Event.function == function))
            row = session.get(_Traffic, function)
            if row is not None:
                session.delete(row)


def _traffic(row: _Traffic) -> Traffic:
    return Traffic(function=row.function, weights=_weights(row.weights), shadow_version=row.shadow_version,
                   shadow_percent=row.shadow_percent or 0.0,
                   rollout=json.loads(row.rollout) if row.rollout else None,
                   pinned=[int(v) for v in json.loads(row.pinned)] if row.pinned else [])
