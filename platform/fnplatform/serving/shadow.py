"""Shadow copies of live calls: sent after the caller is answered, compared, and recorded as a log line.

The active version's replica copies a share of its calls (the table's shadow, serving.versions) to the shadow
version with the same arguments and the flag ``fn.is_shadow()``; the caller never waits for it. Both outputs
(each kept up to ``MAX_OUTPUT_BYTES`` of JSON, else its sha256), both latencies and both errors, and the
project's comparator's verdict (``@fn.comparator``, run here, in the user's process) become one stored log
line of level ``SHADOW`` that ``fnctl shadow report`` summarises. At most ``MAX_IN_FLIGHT`` copies run at
once per replica; beyond that a copy is skipped rather than queued, so shadowing never slows the live path.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pydantic_core

from fn import FunctionSpec
from fn._platform import comparator_for

from .handles import HandleTransport
from .logs import LogShipper
from .versions import SHADOW_ARGUMENT, app_name

LEVEL = "SHADOW"
MARK = "fn-shadow "
MAX_OUTPUT_BYTES = 16 * 1024
MAX_IN_FLIGHT = 32


def _encoded(value: Any) -> bytes:
    """What an output is compared by: its JSON, or for bytes (and anything JSON cannot hold) a stand-in."""
    if isinstance(value, bytes | bytearray):
        return b"bytes:" + hashlib.sha256(value).hexdigest().encode()
    try:
        return pydantic_core.to_json(value, fallback=str)
    except Exception:  # noqa: BLE001 - e.g. a value whose str() fails: compared by its type only
        return f"unencodable:{type(value).__name__}".encode()


def _kept(value: Any) -> tuple[bool, Any, bytes]:
    """(whether the value is kept, the JSON value, what it is compared by): kept when it is JSON and at most
    MAX_OUTPUT_BYTES; a value not kept is compared by the sha256 of its encoding."""
    encoded = _encoded(value)
    if isinstance(value, bytes | bytearray) or len(encoded) > MAX_OUTPUT_BYTES:
        return False, None, encoded
    try:
        return True, json.loads(encoded), encoded
    except ValueError:
        return False, None, encoded


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(getattr(exc, 'message', exc))[:500]}"


class ShadowCopies:
    def __init__(self, spec: FunctionSpec, version: int, handles: HandleTransport, shipper: LogShipper,
                 pool: Executor) -> None:
        self.spec = spec
        self.version = version
        self._handles = handles
        self._shipper = shipper
        self._pool = pool
        self._tasks: set[asyncio.Task[None]] = set()
        self.skipped = 0  # copies not sent because MAX_IN_FLIGHT were running
        self._compare_pool: ThreadPoolExecutor | None = None

    def _comparing(self) -> ThreadPoolExecutor:
        """The comparator's own thread: a slow comparator delays comparisons, never a live call's worker."""
        if self._compare_pool is None:
            self._compare_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fn-shadow-compare")
        return self._compare_pool

    def send(self, shadow: int, arguments: dict[str, Any], result: Any, error: BaseException | None,
             primary_ms: float, request_id: str) -> None:
        if len(self._tasks) >= MAX_IN_FLIGHT:
            self.skipped += 1
            return
        task = asyncio.get_running_loop().create_task(
            self._copy(shadow, dict(arguments), result, error, primary_ms, request_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _copy(self, shadow: int, arguments: dict[str, Any], result: Any, error: BaseException | None,
                    primary_ms: float, request_id: str) -> None:
        started = time.perf_counter()
        candidate: Any = None
        candidate_error: str | None = None
        try:
            pending = self._handles.submit_to(app_name(self.spec.name, shadow), request_id,
                                              {**arguments, SHADOW_ARGUMENT: True})
            candidate = await self._handles.aresult(pending, self.spec.timeout_s + 30)
        except Exception as exc:  # noqa: BLE001 - the candidate's failure is what is recorded
            candidate_error = _error_text(exc)
        shadow_ms = (time.perf_counter() - started) * 1000
        record: dict[str, Any] = {
            "at": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "request_id": request_id,
            "primary_version": self.version, "shadow_version": shadow, "primary_ms": round(primary_ms, 3),
            "shadow_ms": round(shadow_ms, 3), "primary_error": _error_text(error) if error is not None else None,
            "shadow_error": candidate_error, "same": None, "truncated": False}
        encoded: dict[str, bytes] = {}  # each answered side's encoding
        for side, value, failed in (("primary", result, error is not None), ("shadow", candidate, candidate_error)):
            record[side] = None
            if not failed:
                kept, record[side], encoded[side] = _kept(value)
                record["truncated"] = record["truncated"] or not kept
        if record["truncated"]:  # both sides by digest, so a kept one compares with a cut one
            for side, data in encoded.items():
                record[f"{side}_sha256"] = hashlib.sha256(data).hexdigest()
        compare = comparator_for(self.spec.name)
        if compare is not None and error is None and candidate_error is None:
            try:
                verdict = await asyncio.get_running_loop().run_in_executor(self._comparing(), compare, result, candidate)
                record["same"] = bool(verdict)
            except Exception as exc:  # noqa: BLE001 - a broken comparator is reported, never raised into serving
                record["comparator_error"] = _error_text(exc)
        self._shipper.line(LEVEL, MARK + json.dumps(record, separators=(",", ":")), request_id)


def parse(text: str) -> dict[str, Any] | None:
    """A stored SHADOW line's record (control plane), None for any other text."""
    if not text.startswith(MARK):
        return None
    try:
        record = json.loads(text[len(MARK):])
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
