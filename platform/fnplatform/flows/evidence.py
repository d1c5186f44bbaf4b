"""A run's evidence: everything that decided it, for an audit (``GET /flows/<flow>/runs/<id>/evidence``).

A flow that decides about people (the identity flow approves or rejects them) must be able to show,
for each decision, what it was made from: the digest and size of each input (not the input itself:
the digest is enough to prove which upload was judged), the result of every step with the registry
version of the function that produced it and when it ran, the flow's bundle, and the output. Step
results can hold personal data derived from the inputs (text read off a document, a portrait): only
admins may read it. It lives as long as the run does: the control plane
deletes finished runs, with their inputs, steps and evidence, after ``FN_RUN_RETENTION_DAYS``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .state import RunRecord, StoredValue


def _at(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds") + "Z" if moment else None


def _input(value: StoredValue | None, closed: bool) -> dict[str, Any]:
    if value is None:
        return {"given": False, **({"note": "not given before the inputs were closed"} if closed else {})}
    return {"given": True, "sha256": value.sha256, "bytes": value.size, "received_at": _at(value.recorded_at),
            "kind": "bytes" if value.blob_key else "json"}


def _step(function: str, value: StoredValue | None) -> dict[str, Any]:
    if value is None:
        return {"function": function, "status": "no result recorded"}
    out: dict[str, Any] = {"function": function, "version": value.version, "status": value.status,
                           "attempts": value.attempts, "started_at": _at(value.started_at),
                           "recorded_at": _at(value.recorded_at)}
    if value.error is not None:
        out["error"] = value.error
    elif value.blob_key:
        out["result"] = {"stored_as_bytes": True}  # in the run's store, deleted with it; where is not the caller's
    else:
        out["result"] = value.value
    return out


def evidence(record: RunRecord) -> dict[str, Any]:
    """The evidence of *record* as JSON-ready data."""
    spec = record.spec
    finished = record.status in {"succeeded", "failed"}
    return {
        "run": record.id, "flow": record.flow, "status": record.status, "bundle_sha256": record.bundle_sha256,
        "created_at": _at(record.created_at), "finished_at": _at(record.updated_at) if finished else None,
        "inputs_closed_at": _at(record.inputs_closed_at),
        "inputs": {name: _input(record.values.get(name), record.inputs_closed)
                   for name in spec.inputs},
        "steps": {step.name: _step(step.function, record.values.get(step.name)) for step in spec.steps},
        "output": record.output, "error": record.error,
    }
