"""Flow checkpoints: declared flows, runs, and every accepted input and step result.

A run's host can die at any time; everything it needs to resume is here (values) or in the
store (blobs), written before the input or result is acknowledged.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from fn import Conflict, FlowSpec
from fnplatform.serving.tracing import trace_of
from fnplatform.storage.db import Base, Database, utcnow


class _Flow(Base):
    __tablename__ = "flows"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    spec: Mapped[str] = mapped_column(Text)
    bundle_sha256: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class _Run(Base):
    __tablename__ = "flow_runs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    flow: Mapped[str] = mapped_column(String(63), index=True)
    spec: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    owner: Mapped[str | None] = mapped_column(String(16), index=True)  # the id of the API key that started it
    output: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When a caller said no more inputs will come: from then on an absent optional input is None. NULL: still open.
    inputs_closed_at: Mapped[datetime | None]
    # The flow's bundle when the run started (a run's evidence); NULL for runs from before it was kept.
    bundle_sha256: Mapped[str | None] = mapped_column(String(64))
    pins: Mapped[str | None] = mapped_column(Text)  # JSON {function: version} the run's steps are pinned to


class _Value(Base):
    __tablename__ = "flow_values"
    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # input | step
    status: Mapped[str] = mapped_column(String(16), default="done")  # done | failed
    blob_key: Mapped[str | None] = mapped_column(String(300))
    value: Mapped[str | None] = mapped_column(Text)  # JSON
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A run's evidence (NULL for values from before it was kept): an input's digest and size (its bytes
    # or JSON text), the registry version of the function a step called and when its last attempt began.
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None]
    version: Mapped[int | None]
    started_at: Mapped[datetime | None]


@dataclass(frozen=True)
class StoredValue:
    name: str
    kind: str
    status: str
    blob_key: str | None
    value: Any
    attempts: int
    error: dict[str, Any] | None
    recorded_at: datetime | None = None  # when the input arrived, or the step's result (or failure) was recorded
    sha256: str | None = None
    size: int | None = None
    version: int | None = None
    started_at: datetime | None = None


@dataclass(frozen=True)
class RunRecord:
    id: str
    flow: str
    spec: FlowSpec
    status: str
    output: Any
    error: dict[str, Any] | None
    values: dict[str, StoredValue] = field(default_factory=dict)
    created_at: datetime | None = None
    owner: str | None = None
    inputs_closed_at: datetime | None = None
    bundle_sha256: str | None = None
    updated_at: datetime | None = None  # for a finished run: when it finished
    pins: dict[str, int] = field(default_factory=dict)  # function -> the version its steps call (fnctl flow run --version)

    @property
    def inputs_closed(self) -> bool:
        return self.inputs_closed_at is not None

    def visible_to(self, key_id: str, admin: bool) -> bool:
        """A run belongs to the key that started it (and to admins); runs from before owners were kept, to admins."""
        return admin or (self.owner is not None and self.owner == key_id)


def _loads(text: str | None) -> Any:
    return json.loads(text) if text is not None else None


def _lock_run(session: Session, run_id: str) -> _Run | None:
    """The run's row, locked until *session* ends. A write comes first: PostgreSQL locks the row at it, and SQLite
    takes its one write lock (pysqlite begins SQLite's transaction only at the first write, and SQLite has no
    FOR UPDATE: a SELECT alone would let a racing close commit between it and the insert that follows)."""
    session.execute(update(_Run).where(_Run.id == run_id).values(updated_at=_Run.updated_at)
                    .execution_options(synchronize_session=False))
    return session.get(_Run, run_id, with_for_update=True)


class FlowState(Database):
    # flows ---------------------------------------------------------------------------------
    def put_flow(self, spec: FlowSpec, bundle_sha256: str) -> None:
        with self._session() as session:
            row = session.get(_Flow, spec.name)
            if row is None:
                session.add(_Flow(name=spec.name, spec=spec.model_dump_json(), bundle_sha256=bundle_sha256))
            else:
                row.spec, row.bundle_sha256, row.updated_at = spec.model_dump_json(), bundle_sha256, utcnow()

    def flow(self, name: str) -> FlowSpec | None:
        with self._session() as session:
            row = session.get(_Flow, name)
            return FlowSpec.model_validate_json(row.spec) if row else None

    def flows(self) -> list[FlowSpec]:
        with self._session() as session:
            return [FlowSpec.model_validate_json(r.spec) for r in session.scalars(select(_Flow).order_by(_Flow.name))]

    def delete_flow(self, name: str) -> bool:
        return self._delete(_Flow, name)

    # runs ----------------------------------------------------------------------------------
    def create_run(self, spec: FlowSpec, owner: str | None = None, pins: dict[str, int] | None = None) -> str:
        run_id = uuid.uuid4().hex[:16]
        with self._session() as session:
            flow = session.get(_Flow, spec.name)
            session.add(_Run(id=run_id, flow=spec.name, spec=spec.model_dump_json(), owner=owner,
                             bundle_sha256=flow.bundle_sha256 if flow is not None else None,
                             pins=json.dumps(pins) if pins else None))
        return run_id

    def active_runs(self, *, flow: str | None = None, owner: str | None = None) -> int:
        """Runs not finished yet, of one flow or one key."""
        query = select(func.count()).select_from(_Run).where(_Run.status.in_(("pending", "running")))
        if flow is not None:
            query = query.where(_Run.flow == flow)
        if owner is not None:
            query = query.where(_Run.owner == owner)
        with self._session() as session:
            return int(session.scalar(query) or 0)

    def run(self, run_id: str) -> RunRecord | None:
        with self._session() as session:
            row = session.get(_Run, run_id)
            if row is None:
                return None
            values = {
                v.name: StoredValue(name=v.name, kind=v.kind, status=v.status, blob_key=v.blob_key, value=_loads(v.value),
                                    attempts=v.attempts, error=_loads(v.error), recorded_at=v.created_at,
                                    sha256=v.sha256, size=v.size, version=v.version, started_at=v.started_at)
                for v in session.scalars(select(_Value).where(_Value.run_id == run_id))
            }
            return RunRecord(id=row.id, flow=row.flow, spec=FlowSpec.model_validate_json(row.spec), status=row.status,
                             output=_loads(row.output), error=_loads(row.error), values=values, created_at=row.created_at,
                             owner=row.owner, inputs_closed_at=row.inputs_closed_at, bundle_sha256=row.bundle_sha256,
                             updated_at=row.updated_at, pins=json.loads(row.pins) if row.pins else {})

    def add_input(self, run_id: str, name: str, *, blob_key: str | None = None, value_json: str | None = None,
                  sha256: str | None = None, size: int | None = None) -> bool:
        """Record an accepted input; False if that input was already given (the first is kept). Conflict once the
        run's inputs are closed: the run's row is locked first, as close_inputs locks it, so a put racing the close
        is either recorded before it or refused."""
        try:
            with self._session() as session:
                row = _lock_run(session, run_id)
                if row is not None and row.inputs_closed_at is not None:
                    raise Conflict(f"inputs of run {run_id} are closed: input {name!r} is refused", status=409)
                session.add(_Value(run_id=run_id, name=name, kind="input", blob_key=blob_key, value=value_json,
                                   sha256=sha256, size=size))
                if row is not None and row.status == "pending":
                    row.status, row.updated_at = "running", utcnow()
        except IntegrityError:
            return False
        return True

    def close_inputs(self, run_id: str) -> bool:
        """Record that no more inputs will come; False if there is no such run. Closing again, or closing a
        finished run, changes nothing. Conflict, naming them, while a required (not optional) input is missing."""
        with self._session() as session:
            row = _lock_run(session, run_id)
            if row is None:
                return False
            if row.inputs_closed_at is not None or row.status in {"succeeded", "failed"}:
                return True
            spec = FlowSpec.model_validate_json(row.spec)
            given = set(session.scalars(select(_Value.name).where(_Value.run_id == run_id, _Value.kind == "input")))
            missing = [name for name in spec.inputs if name not in given and name not in spec.optional]
            if missing:
                optional = (f"only its optional inputs {list(spec.optional)} may be missing" if spec.optional
                            else f"flow {spec.name!r} has no optional inputs")
                raise Conflict(f"cannot close the inputs of run {run_id}: required input(s) "
                               f"{', '.join(repr(n) for n in missing)} not given yet ({optional}); give them first",
                               status=409)
            row.inputs_closed_at = row.updated_at = utcnow()
            if row.status == "pending":
                row.status = "running"
            return True

    def record_step(self, run_id: str, name: str, *, attempts: int, value_json: str | None = None,
                    blob_key: str | None = None, error: dict[str, Any] | None = None, version: int | None = None,
                    started_at: datetime | None = None) -> None:
        with self._session() as session:
            row = session.get(_Value, (run_id, name))
            if row is None:
                row = _Value(run_id=run_id, name=name, kind="step")
                session.add(row)
            row.status = "failed" if error else "done"
            row.value, row.blob_key, row.attempts = value_json, blob_key, attempts
            row.version, row.started_at = version, started_at
            row.error = json.dumps(error) if error else None

    def finish_run(self, run_id: str, *, output_json: str | None = None, error: dict[str, Any] | None = None) -> None:
        with self._session() as session:
            row = session.get(_Run, run_id)
            if row is None:
                return
            row.status = "failed" if error else "succeeded"
            row.output, row.error, row.updated_at = output_json, json.dumps(error) if error else None, utcnow()

    def bundles_in_use(self) -> set[str]:
        """The bundles of the deployed flows and of every run still kept (a run's evidence names its bundle)."""
        with self._session() as session:
            flows = set(session.scalars(select(_Flow.bundle_sha256).distinct()))
            runs = session.scalars(select(_Run.bundle_sha256).where(_Run.bundle_sha256.is_not(None)).distinct())
            return flows | {sha for sha in runs if sha is not None}

    def expire_runs(self, finished_before: datetime, limit: int = 500) -> list[str]:
        """Delete up to *limit* runs that finished before *finished_before*, with their values; the store keys
        of their blobs are returned for the caller to delete."""
        with self._session() as session:
            ids = list(session.scalars(select(_Run.id).where(_Run.status.in_(("succeeded", "failed")),
                                                             _Run.updated_at < finished_before).limit(limit)))
            if not ids:
                return []
            blobs = [k for k in session.scalars(select(_Value.blob_key).where(_Value.run_id.in_(ids))) if k]
            session.execute(delete(_Value).where(_Value.run_id.in_(ids)))
            session.execute(delete(_Run).where(_Run.id.in_(ids)))
        return blobs

    def unfinished_runs(self) -> list[str]:
        with self._session() as session:
            return list(session.scalars(select(_Run.id).where(_Run.status.in_(("pending", "running")))))

    def runs(self, flow: str, limit: int = 20, owner: str | None = None) -> list[dict[str, Any]]:
        """The latest runs of *flow*; only those of the key *owner* when given."""
        query = select(_Run).where(_Run.flow == flow)
        if owner is not None:
            query = query.where(_Run.owner == owner)
        with self._session() as session:
            rows = session.scalars(query.order_by(_Run.created_at.desc()).limit(limit))
            return [{"id": r.id, "status": r.status, "created_at": r.created_at.isoformat() + "Z"} for r in rows]


# the run's state as the API shows it ----------------------------------------------------------
def run_state(run_id: str, spec: FlowSpec, status: str, given: set[str], steps: dict[str, Any], output: Any,
              error: dict[str, Any] | None, *, inputs_closed: bool) -> dict[str, Any]:
    """The run's state as the API shows it, from the live actor or from the checkpoint."""
    body: dict[str, Any] = {"id": run_id, "flow": spec.name, "status": status, "trace_id": trace_of(run_id),
                            "inputs": {name: name in given for name in spec.inputs}, "optional": list(spec.optional),
                            "inputs_closed": inputs_closed, "steps": steps}
    if status == "succeeded":
        body["output"] = output
    if status == "failed":
        body["error"] = error
    return body


def snapshot_from_record(record: RunRecord) -> dict[str, Any]:
    """The state of a run whose actor is gone (finished, or not resumed yet)."""
    steps = {s.name: {"status": "waiting", "attempts": 0} for s in record.spec.steps}
    for value in record.values.values():
        if value.kind == "step" and value.name in steps:
            steps[value.name] = {"status": "succeeded" if value.status == "done" else "failed",
                                 "attempts": value.attempts, **({"error": value.error} if value.error else {})}
    given = {v.name for v in record.values.values() if v.kind == "input"}
    return run_state(record.id, record.spec, record.status, given, steps, record.output, record.error,
                     inputs_closed=record.inputs_closed)
