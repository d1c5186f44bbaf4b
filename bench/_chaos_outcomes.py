"""The chaos suite's bookkeeping, with no platform in it: how one request's outcome is classified, what
a flow run or a job ended as, the time to full recovery after a fault, each fault's row and the table."""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

import fn

OK, CLEAN, REFUSED, CUT, OTHER, HUNG = "ok", "clean", "refused", "cut", "other", "hung"
KINDS = (OK, CLEAN, REFUSED, CUT, OTHER, HUNG)
# Faults that kill the process holding callers' connections (locally the control plane owns Ray, so its
# kill takes the ingress with it): a connection cut mid-request cannot be answered there. Elsewhere a cut
# connection is a failure like any other (a dying replica must give fn's JSON 502).
INGRESS_KILLED = frozenset({"control-plane"})
# An fn error a caller can act on (wait, retry, give up): no capacity, a full queue, a dependency down,
# past the deadline. Anything else (500, 401, 404, ...) from a function that never raises is a platform bug.
CLEAN_STATUSES = frozenset({429, 502, 503, 504})
EXAMPLES_PER_KIND = 5
VERDICTS = ("right", "wrong", "failed", "lost")


@dataclass(frozen=True)
class Outcome:
    caller: str  # e.g. "http echo", "sdk slow-add", "flow put"
    start: float  # time.monotonic() when it was sent
    end: float
    kind: str  # one of KINDS
    detail: str = ""  # for anything but OK: the status and the start of the body, or the exception


@dataclass
class RunRecord:
    """One flow run the load gave every input to (each put accepted: 2xx)."""

    run_id: str
    start: float
    expected: int
    status: str | None = None  # "succeeded" | "failed"; None: not finished (yet)
    output: Any = None
    error: Any = None
    victim: bool = False  # the run whose host the flow-run fault killed

    @property
    def verdict(self) -> str:
        return verdict(self.status, self.output, self.expected)


@dataclass
class JobRecord:
    """One job the platform accepted: 202, or 200 when a POST retried with the same Idempotency-Key found it."""

    job_id: str
    start: float  # when its first POST was sent
    expected: int
    status: str | None = None  # "succeeded" | "failed" | "cancelled"; None: not ended (yet)
    result: Any = None
    error: Any = None  # a failed job's {"type", "status", "message"}
    attempts: int = 0  # the platform's runs of it: one whose run was lost (a replica, the runner) is run again

    @property
    def verdict(self) -> str:
        return verdict(self.status, self.result, self.expected)


def verdict(status: str | None, value: Any, expected: Any) -> str:
    """One of VERDICTS: succeeded with the expected value (or another), ended otherwise, or never ended."""
    if status == "succeeded":
        return "right" if value == expected else "wrong"
    return "lost" if status is None else "failed"


def fn_error_body(response: httpx.Response) -> bool:
    """fn's JSON error: ``{"error": {"type", "message", "request_id", ...}}`` (never an HTML page)."""
    try:
        body = response.json()
    except ValueError:
        return False
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and all(isinstance(error.get(k), str) and error[k] for k in ("type", "message", "request_id"))


def classify_response(response: httpx.Response, right: bool) -> tuple[str, str]:
    """An HTTP answer: (kind, detail). *right*: a 2xx carried the expected answer."""
    if response.is_success:
        return (OK, "") if right else (OTHER, f"{response.status_code} wrong answer: {response.text[:200]}")
    detail = f"{response.status_code} {response.text[:200]}"
    if response.status_code in CLEAN_STATUSES and fn_error_body(response):
        return CLEAN, detail
    return OTHER, detail


def classify_transport(exc: Exception) -> tuple[str, str]:
    """An HTTP request that got no answer: refused before it was sent, no answer in time, or cut off."""
    detail = f"{type(exc).__name__}: {exc}"[:300]
    if isinstance(exc, httpx.ConnectError):
        return REFUSED, detail  # nothing listening: nothing ran, the caller knows at once
    if isinstance(exc, httpx.TimeoutException):
        return HUNG, detail
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return CUT, detail  # closed mid-request: the caller cannot tell whether it ran
    return OTHER, detail


def classify_sdk_error(exc: BaseException) -> tuple[str, str]:
    """What ``fn.call`` raised. The SDK retries refused connections and 503s itself (FN_RETRY_S)."""
    detail = f"{type(exc).__name__}: {exc}"[:300]
    if not isinstance(exc, fn.ClientError):
        return OTHER, detail  # not an fn error at all
    if exc.error_type is None:
        # Raised by the SDK itself, not read from fn's JSON error body: its own timeout, a connection it
        # could not make (the cause is kept as __context__: it raises "from None"), or a page that is not fn's.
        cause = exc.__context__
        if isinstance(cause, httpx.TimeoutException):
            return HUNG, detail
        if isinstance(cause, httpx.ConnectError):
            return REFUSED, detail
        if isinstance(cause, (httpx.RemoteProtocolError, httpx.ReadError)):
            return CUT, detail
        return OTHER, detail
    if exc.status in CLEAN_STATUSES and exc.request_id:
        return CLEAN, detail
    return OTHER, detail


def recovery_s(outcomes: list[Outcome], fault_end: float, now: float, in_flight: list[float],
               window_s: float = 5.0, min_ok: int = 3) -> float | None:
    """Seconds from *fault_end* to the first request that starts *window_s* seconds in which every request
    sent (by any caller) succeeded, with at least *min_ok* of them; None while that is not known yet.

    *in_flight*: start times of requests with no outcome yet (a stretch holding one is undecided)."""
    after = sorted((o for o in outcomes if o.start >= fault_end), key=lambda o: o.start)
    starts = [o.start for o in after]
    pending = sorted(in_flight)
    for i, first in enumerate(after):
        if first.kind != OK:
            continue
        t = first.start
        if t + window_s > now:
            return None  # not enough time seen since this candidate
        j = bisect.bisect_right(starts, t + window_s)
        stretch = after[i:j]
        lo = bisect.bisect_left(pending, t)
        if lo < len(pending) and pending[lo] <= t + window_s:
            return None  # a request in the stretch is still out: wait for it
        if all(o.kind == OK for o in stretch) and len(stretch) >= min_ok:
            return t - fault_end
    return None


@dataclass
class FaultRow:
    fault: str
    note: str = ""
    error: str = ""  # the fault could not be injected as planned
    start: float = 0.0  # the phase: steady load, the fault, recovery
    fault_at: float = 0.0
    fault_end: float = 0.0
    end: float = 0.0
    recovery_s: float | None = None
    requests: dict[str, int] = field(default_factory=dict)
    by_caller: dict[str, dict[str, int]] = field(default_factory=dict)
    flows: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def fill(row: FaultRow, outcomes: list[Outcome], runs: list[RunRecord], jobs: list[JobRecord]) -> None:
    """Count what started in the row's phase [start, end): requests by kind (and by caller), runs and jobs by verdict."""
    mine = [o for o in outcomes if row.start <= o.start < row.end]
    row.requests = {"sent": len(mine), **{kind: sum(o.kind == kind for o in mine) for kind in KINDS}}
    for caller in sorted({o.caller for o in mine}):
        theirs = [o for o in mine if o.caller == caller]
        row.by_caller[caller] = {"sent": len(theirs), **{k: sum(o.kind == k for o in theirs) for k in KINDS}}
    row.examples = {kind: [f"{o.caller}: {o.detail}" for o in mine if o.kind == kind][:EXAMPLES_PER_KIND]
                    for kind in KINDS if kind != OK and any(o.kind == kind for o in mine)}
    verdicts = [r.verdict for r in runs if row.start <= r.start < row.end]
    row.flows = {"runs": len(verdicts), **{v: verdicts.count(v) for v in VERDICTS}}
    verdicts = [j.verdict for j in jobs if row.start <= j.start < row.end]
    row.jobs = {"accepted": len(verdicts), **{v: verdicts.count(v) for v in VERDICTS}}


ENDINGS = ("right", "failed", "wrong", "lost")  # the table's order of VERDICTS
COLUMNS = ("fault", "sent", "ok", "clean err", "refused", "cut", "other", "hung", "flow runs", *ENDINGS, "jobs", *ENDINGS,
           "recovery", "note")


def table(rows: list[FaultRow]) -> str:
    cells: list[tuple[str, ...]] = [COLUMNS]
    for r in rows:
        q, f, j = r.requests, r.flows, r.jobs
        recovery = f"{r.recovery_s:.1f} s" if r.recovery_s is not None else "not recovered"
        note = "; ".join(x for x in (r.error and f"error: {r.error}", r.note) if x)
        cells.append((r.fault, *(str(q.get(k, 0)) for k in ("sent", *KINDS)), *(str(f.get(k, 0)) for k in ("runs", *ENDINGS)),
                      *(str(j.get(k, 0)) for k in ("accepted", *ENDINGS)), recovery, note))
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS) - 1)]
    lines = ["  ".join(c[i].ljust(widths[i]) if i == 0 else c[i].rjust(widths[i]) for i in range(len(widths))) + "  " + c[-1]
             for c in cells]
    return "\n".join(line.rstrip() for line in lines)
