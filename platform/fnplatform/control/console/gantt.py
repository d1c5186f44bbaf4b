"""A flow run's steps on a timeline, from what its checkpoint records: when the run was created, when each
input arrived and when each step's result (or failure) was recorded.

A step's start is not recorded: the run starts a step as soon as its last input or upstream result exists
(``flows.run``), so that moment stands for its start. "waiting" runs from the run's creation to it, "work"
from it to the recorded result, which therefore includes any queueing for a replica, a cold start and
retries (the attempts are shown beside it). Cold starts per step are not measured. An optional input
never given, once the run's inputs were closed, counts as arriving at the close: the run started its
steps with None for it then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fnplatform.flows.state import RunRecord

WIDTH = 640.0  # the bars' area in the SVG, in user units (the SVG scales to the page)


@dataclass(frozen=True)
class Bar:
    step: str
    function: str
    status: str  # succeeded | failed | running | waiting
    attempts: int
    waiting_s: float | None  # from the run's creation to the step's start; None: not started
    work_s: float | None  # from its start to its recorded end (or to now while it runs)
    # The SVG geometry, in user units of WIDTH
    wait_x: float = 0.0
    wait_w: float = 0.0
    work_x: float = 0.0
    work_w: float = 0.0


@dataclass(frozen=True)
class Timeline:
    bars: list[Bar]
    span_s: float  # from the run's creation to the last end drawn
    ticks: list[tuple[float, str]]  # (x, label)


def _seconds(at: datetime | None, origin: datetime) -> float | None:
    return None if at is None else max(0.0, (at - origin).total_seconds())


def timeline(record: RunRecord, now: datetime) -> Timeline:
    """The run's bars; *now* ends the bar of a step still running (the timestamps are naive UTC, as stored)."""
    origin = record.created_at or now
    arrived = {v.name: _seconds(v.recorded_at, origin) for v in record.values.values() if v.kind == "input"}
    if record.inputs_closed_at is not None:
        closed = _seconds(record.inputs_closed_at, origin)
        arrived.update({name: closed for name in record.spec.optional if name not in arrived})
    ended = {v.name: _seconds(v.recorded_at, origin) for v in record.values.values() if v.kind == "step"}
    live = record.status in {"pending", "running"}
    rows: list[tuple[str, str, str, int, float | None, float | None]] = []
    steps = {s.name: s for s in record.spec.steps}
    for step in (steps[name] for name in record.spec.order()):  # upstream steps first
        sources = [arrived.get(ref) if kind == "input" else ended.get(ref)
                   for kind, _, ref in (src.partition(":") for src in step.inputs.values())]
        start = max((s for s in sources if s is not None), default=0.0) if all(s is not None for s in sources) else None
        value = record.values.get(step.name)
        end = ended.get(step.name) if value is not None and value.kind == "step" else None
        if end is not None:
            status = "succeeded" if value is not None and value.status == "done" else "failed"
        elif start is not None and live:
            status, end = "running", _seconds(now, origin)
        else:
            status, start = "waiting", None
        attempts = value.attempts if value is not None and value.kind == "step" else 0
        rows.append((step.name, step.function, status, attempts, start,
                     None if start is None or end is None else max(0.0, end - start)))
    span = max([s + w for *_, s, w in rows if s is not None and w is not None] + [1e-3])
    scale = WIDTH / span
    bars = [Bar(name, function, status, attempts, start, work,
                wait_x=0.0, wait_w=(start or 0.0) * scale,
                work_x=(start or 0.0) * scale, work_w=(work or 0.0) * scale)
            for name, function, status, attempts, start, work in rows]
    return Timeline(bars, span, _ticks(span, scale))


def _ticks(span: float, scale: float) -> list[tuple[float, str]]:
    """About five round marks along the axis."""
    step = next(s for s in (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200, 86400, 1e12)
                if span / s <= 6)
    marks, at = [], 0.0
    while at <= span + 1e-9:
        marks.append((at * scale, f"{at * 1000:.0f} ms" if step < 1 else f"{at:g} s"))
        at += step
    return marks
