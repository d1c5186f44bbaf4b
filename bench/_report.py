"""The suite's shared pieces: its settings, one row of the final table, medians, and the table itself."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _procs import LocalPlatform


@dataclass(frozen=True)
class Ctx:
    quick: bool
    reps: int
    wrk_s: float  # seconds per wrk run
    calls: int  # sequential calls per Python-client measurement
    idle_window_s: float


@dataclass
class Scenario:
    name: str
    platform: Callable[[LocalPlatform, Ctx], dict[str, Any]]  # one repetition against the platform
    baseline: Callable[[Ctx], dict[str, Any]]  # one repetition of the same-run baseline
    rows: Callable[[list[dict[str, Any]], list[dict[str, Any]]], list[Row]]  # from all repetitions
    own_platform: bool = False  # needs a platform of its own (else shares one with the others)


@dataclass
class Row:
    scenario: str
    setup: str
    metric: str
    median: float | None  # None: not measured (see note)
    unit: str
    p99: float | None = None
    ratio: float | None = None  # median / the scenario's baseline
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def save(name: str, results: dict[str, Any]) -> None:
    """Everything measured, as JSON under bench/results/."""
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=2))


def latency_stats(values: list[float]) -> dict[str, float]:
    return {"p50_ms": statistics.median(values), "p99_ms": percentile(values, 0.99), "n": float(len(values))}


def med(reps: Iterable[dict[str, Any] | None], *path: str) -> float | None:
    """The median over repetitions of reps[...][path...], skipping repetitions that lack it."""
    values = []
    for rep in reps:
        value: Any = rep
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, int | float):
            values.append(float(value))
    return statistics.median(values) if values else None


def ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if not unit and value == int(value):
        return f"{value:.0f}"
    digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
    return f"{value:,.{digits}f} {unit}".rstrip()


def print_table(rows: list[Row]) -> None:
    cells = [("scenario", "setup", "metric", "median", "p99", "vs baseline", "note")]
    for r in rows:
        cells.append((r.scenario, r.setup, r.metric, _fmt(r.median, r.unit),
                      _fmt(r.p99, r.unit) if r.p99 is not None else "",
                      f"{r.ratio:.2f}x" if r.ratio is not None else "", r.note))
    widths = [max(len(c[i]) for c in cells) for i in range(6)]
    previous = ""
    for i, c in enumerate(cells):
        if i > 1 and c[0] != previous:
            print()
        previous = c[0]
        print("  ".join(c[j].ljust(widths[j]) if j < 3 else c[j].rjust(widths[j]) for j in range(6)) + "  " + c[6])
