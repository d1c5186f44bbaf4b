"""The registry: functions, their versions, the active version of each, and API keys (hashed).

It is the desired state of the platform: the deployer can always rebuild Serve from it. SQLite
(a file under FN_HOME) by default, PostgreSQL by URL, through SQLAlchemy.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from fn import Conflict, FunctionSpec
from fnplatform.keys import Grant, hash_key

from .db import Base, Database, utcnow


class _Function(Base):
    __tablename__ = "functions"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    active_version: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class _Version(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("function", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    function: Mapped[str] = mapped_column(ForeignKey("functions.name", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    spec: Mapped[str] = mapped_column(Text)
    bundle_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="deploying")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(120))  # the deploying key: "<id> (<name>)"


class _ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="invoke")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    functions: Mapped[str | None] = mapped_column(Text)  # JSON list; NULL: every function
    flows: Mapped[str | None] = mapped_column(Text)  # JSON list; NULL: every flow
    rate_limit: Mapped[float | None]  # requests per second; NULL: unlimited
    last_used_at: Mapped[datetime | None]


@dataclass(frozen=True)
class VersionRecord:
    function: str
    number: int
    spec: FunctionSpec
    bundle_sha256: str
    status: str
    error: str | None
    created_at: datetime
    created_by: str | None = None

    @property
    def callable(self) -> bool:
        """Deployed once and not garbage-collected: it can be made active, pinned or split to again."""
        return self.status == "ready"

    def to_json(self) -> dict[str, Any]:
        return {"function": self.function, "version": self.number, "bundle_sha256": self.bundle_sha256,
                "status": self.status, "error": self.error, "created_at": self.created_at.isoformat() + "Z",
                "created_by": self.created_by, "spec": self.spec.model_dump(mode="json")}


@dataclass(frozen=True)
class KeyRecord:
    id: str
    name: str
    role: str
    created_at: datetime
    revoked: bool
    functions: tuple[str, ...] | None = None
    flows: tuple[str, ...] | None = None
    rate_limit: float | None = None
    last_used_at: datetime | None = None

    @property
    def grant(self) -> Grant:
        return Grant(key_id=self.id, role=self.role,
                     functions=frozenset(self.functions) if self.functions is not None else None,
                     flows=frozenset(self.flows) if self.flows is not None else None, rate_limit=self.rate_limit)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "role": self.role,
                "functions": list(self.functions) if self.functions is not None else None,
                "flows": list(self.flows) if self.flows is not None else None, "rate_limit": self.rate_limit,
                "created_at": self.created_at.isoformat() + "Z",
                "last_used_at": self.last_used_at.isoformat() + "Z" if self.last_used_at else None,
                "revoked": self.revoked}


def _version(row: _Version) -> VersionRecord:
    return VersionRecord(function=row.function, number=row.number, spec=FunctionSpec.model_validate_json(row.spec),
                         bundle_sha256=row.bundle_sha256, status=row.status, error=row.error, created_at=row.created_at,
                         created_by=row.created_by)


def _key(row: _ApiKey) -> KeyRecord:
    return KeyRecord(id=row.id, name=row.name, role=row.role, created_at=row.created_at, revoked=row.revoked_at is not None,
                     functions=tuple(json.loads(row.functions)) if row.functions is not None else None,
                     flows=tuple(json.loads(row.flows)) if row.flows is not None else None,
                     rate_limit=row.rate_limit, last_used_at=row.last_used_at)


class Registry(Database):

    # versions -------------------------------------------------------------------------------
    def create_version(self, spec: FunctionSpec, bundle_sha256: str, by: str | None = None) -> VersionRecord:
        with self._session() as session:
            if session.get(_Function, spec.name) is None:
                session.add(_Function(name=spec.name, active_version=None))
                session.flush()
            last = session.scalar(select(func.max(_Version.number)).where(_Version.function == spec.name)) or 0
            row = _Version(function=spec.name, number=last + 1, spec=spec.model_dump_json(),
                           bundle_sha256=bundle_sha256, status="deploying", created_by=by)
            session.add(row)
            session.flush()
            return _version(row)

    def fail_unfinished(self, reason: str) -> int:
        """Mark versions left 'deploying' (their deploy job died with the control plane) as failed."""
        with self._session() as session:
            rows = list(session.scalars(select(_Version).where(_Version.status == "deploying")))
            for row in rows:
                row.status, row.error = "failed", reason
            return len(rows)

    def finish_version(self, name: str, number: int, *, error: str | None = None, activate: bool = True) -> None:
        """Mark a version ready (and active, unless *activate* is False: a canary) or failed; a failed one
        leaves the active version alone."""
        with self._session() as session:
            row = session.scalar(select(_Version).where(_Version.function == name, _Version.number == number))
            if row is None:
                return
            row.status, row.error = ("failed", error) if error else ("ready", None)
            function = session.get(_Function, name)
            if function is not None and not error and activate:
                function.active_version = number

    def set_active(self, name: str, number: int) -> None:
        with self._session() as session:
            function = session.get(_Function, name)
            if function is not None:
                function.active_version = number

    def collect(self, name: str, numbers: list[int]) -> None:
        """Retire versions for good (the retention policy): they can no longer be activated, pinned or split to."""
        if not numbers:
            return
        with self._session() as session:
            for row in session.scalars(select(_Version).where(_Version.function == name, _Version.number.in_(numbers))):
                row.status = "collected"

    def bundles_in_use(self) -> set[str]:
        """The bundles of every version that may still run: deploying or ready, collected and failed ones not."""
        with self._session() as session:
            return set(session.scalars(select(_Version.bundle_sha256).where(
                _Version.status.in_(("deploying", "ready"))).distinct()))

    def version(self, name: str, number: int) -> VersionRecord | None:
        with self._session() as session:
            row = session.scalar(select(_Version).where(_Version.function == name, _Version.number == number))
            return _version(row) if row is not None else None

    def active(self, name: str) -> VersionRecord | None:
        with self._session() as session:
            function = session.get(_Function, name)
            if function is None or function.active_version is None:
                return None
            row = session.scalar(select(_Version).where(_Version.function == name,
                                                        _Version.number == function.active_version))
            return _version(row) if row else None

    def actives(self) -> list[VersionRecord]:
        with self._session() as session:
            rows = session.scalars(
                select(_Version).join(_Function, (_Function.name == _Version.function)
                                      & (_Function.active_version == _Version.number)).order_by(_Version.function)
            )
            return [_version(row) for row in rows]

    def function_names(self) -> list[str]:
        with self._session() as session:
            return list(session.scalars(select(_Function.name).order_by(_Function.name)))

    def versions(self, name: str) -> list[VersionRecord]:
        with self._session() as session:
            rows = session.scalars(select(_Version).where(_Version.function == name).order_by(_Version.number))
            return [_version(row) for row in rows]

    def delete_function(self, name: str) -> bool:
        with self._session() as session:
            function = session.get(_Function, name)
            if function is None:
                return False
            # one bulk DELETE first: deleting row by row races the FK's ON DELETE CASCADE (SAWarning, 0 rows matched)
            session.execute(delete(_Version).where(_Version.function == name))
            session.delete(function)
            return True

    # API keys -------------------------------------------------------------------------------
    def create_key(self, name: str, role: str = "invoke", *, functions: list[str] | None = None,
                   flows: list[str] | None = None, rate_limit: float | None = None) -> tuple[KeyRecord, str]:
        """A new key, least privilege by default; its plaintext is returned once and never stored."""
        key_id = secrets.token_hex(4)
        plaintext = f"fn_{key_id}_{secrets.token_urlsafe(32)}"
        with self._session() as session:
            row = _ApiKey(id=key_id, name=name, hash=hash_key(plaintext), role=role,
                          functions=json.dumps(sorted(set(functions))) if functions is not None else None,
                          flows=json.dumps(sorted(set(flows))) if flows is not None else None, rate_limit=rate_limit)
            session.add(row)
            session.flush()
            return _key(row), plaintext

    def ensure_key(self, plaintext: str, name: str, role: str = "admin") -> tuple[KeyRecord, bool]:
        """The key with this exact plaintext, stored only as its hash: (its record, revoked or not, False) when
        it exists, else (a new record, True)."""
        digest = hash_key(plaintext)
        for _ in range(2):
            with self._session() as session:
                row = session.scalar(select(_ApiKey).where(_ApiKey.hash == digest))
                if row is not None:
                    return _key(row), False
            try:
                with self._session() as session:
                    row = _ApiKey(id=secrets.token_hex(4), name=name, hash=digest, role=role)
                    session.add(row)
                    session.flush()
                    return _key(row), True
            except IntegrityError:
                continue  # another process stored the same key (or drew the same id) meanwhile: read it again
        raise RuntimeError(f"could not store API key {name!r}: its hash or id kept colliding")

    def verify_key(self, plaintext: str) -> KeyRecord | None:
        with self._session() as session:
            row = session.scalar(select(_ApiKey).where(_ApiKey.hash == hash_key(plaintext)))
            return _key(row) if row is not None and row.revoked_at is None else None

    def key_hashes(self) -> list[str]:
        with self._session() as session:
            return list(session.scalars(select(_ApiKey.hash).where(_ApiKey.revoked_at.is_(None))))

    def grants(self) -> dict[str, Grant]:
        """Key hash -> grant, for every key not revoked: what the data plane checks."""
        with self._session() as session:
            return {row.hash: _key(row).grant for row in session.scalars(select(_ApiKey).where(_ApiKey.revoked_at.is_(None)))}

    def keys(self) -> list[KeyRecord]:
        with self._session() as session:
            return [_key(row) for row in session.scalars(select(_ApiKey).order_by(_ApiKey.created_at))]

    def key(self, key_id: str) -> KeyRecord | None:
        with self._session() as session:
            row = session.get(_ApiKey, key_id)
            return _key(row) if row is not None else None

    def touch_keys(self, used: dict[str, datetime]) -> None:
        """Record when keys were last used (batched by the caller: not a write per request)."""
        with self._session() as session:
            for key_id, at in used.items():
                row = session.get(_ApiKey, key_id)
                if row is not None and (row.last_used_at is None or at > row.last_used_at):
                    row.last_used_at = at

    def revoke_key(self, key_id: str) -> bool:
        """False if there is no such active key; 409 if it is the last admin key."""
        with self._session() as session:
            row = session.get(_ApiKey, key_id)
            if row is None or row.revoked_at is not None:
                return False
            if row.role == "admin":
                admins = session.scalar(select(func.count()).select_from(_ApiKey).where(
                    _ApiKey.role == "admin", _ApiKey.revoked_at.is_(None))) or 0
                if admins <= 1:
                    raise Conflict(f"key {key_id} is the last admin key: revoking it would lock every admin out; "
                                   f"create another with 'fnctl keys create NAME --role admin' first", status=409)
            row.revoked_at = utcnow()
            return True

