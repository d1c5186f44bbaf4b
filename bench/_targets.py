"""The performance targets (docs/benchmarks.md, "Targets"), each checked against the rows of the same run: met,
not met, or not measured (the scenario was not run or failed)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from _report import Row

Check: TypeAlias = Callable[[list[Row]], tuple[bool, str] | None]  # (met, the figures compared); None: not measured


@dataclass(frozen=True)
class Target:
    label: str
    check: Check


def _row(rows: list[Row], scenario: str, setup: str, metric: str) -> Row | None:
    return next((r for r in rows if r.scenario == scenario and r.setup.startswith(setup) and r.metric.startswith(metric)
                 and r.median is not None), None)


def _at_most(scenario: str, setup: str, metric: str, limit: float, unit: str, of_baseline: bool = False) -> Check:
    """The row's median (or, *of_baseline*, its ratio to the scenario's baseline, *unit* naming that) <= *limit*."""
    def check(rows: list[Row]) -> tuple[bool, str] | None:
        row = _row(rows, scenario, setup, metric)
        value = None if row is None else row.ratio if of_baseline else row.median
        if value is None:
            return None
        if of_baseline:
            return value <= limit, f"{value:.2f}x {unit} (target <= {limit:g}x)"
        return value <= limit, f"{value:.3g} {unit} (target <= {limit:g} {unit})"
    return check


def _heavy_cold(rows: list[Row]) -> tuple[bool, str] | None:
    row = _row(rows, "cold", "platform, heavy", "request -> response")
    loaded = re.search(r"loaded in (\d+) ms", row.note) if row else None
    if row is None or row.median is None or loaded is None:
        return None
    over = row.median - int(loaded.group(1)) / 1000
    return over <= 0.2, f"{row.median:.2f} s, import + setup {int(loaded.group(1)) / 1000:.2f} s: +{over:.2f} s (target +0.2 s)"


def _warm_throughput(rows: list[Row]) -> tuple[bool, str] | None:
    ours = _row(rows, "warm", "(a) platform HTTP", "req/s, 32 conn")
    raws = [r for r in rows if r.scenario == "warm" and r.setup[:3] in {"(d)", "(e)", "(f)", "(g)", "(h)"}
            and r.metric == "req/s, 32 conn" and r.median is not None]
    if ours is None or ours.median is None or not raws:
        return None
    best = max(raws, key=lambda r: r.median or 0.0)
    assert best.median is not None
    return ours.median >= best.median, (f"{ours.median:,.0f} req/s vs the best raw Serve {best.median:,.0f} "
                                        f"({best.setup}): {ours.median / best.median:.2f}x (target >= 1.0x)")


TARGETS = [
    Target("cold start, light function, p50 over HTTP", _at_most("cold", "platform, light", "request -> response", 0.3, "s")),
    Target("cold start, heavy function", _heavy_cold),
    Target("50-request burst at zero: last answer", _at_most("burst", "platform", "time to last answer", 2.0, "s")),
    Target("warm HTTP, 32 connections: throughput", _warm_throughput),
    Target("SDK call inside a function vs a plain Serve handle call",
           _at_most("warm", "(c) SDK fn.call inside", "per call", 1.3, "a Serve handle call", of_baseline=True)),
    Target("deploying 50 functions", _at_most("deploy", "platform", "50 functions at once", 10.0, "s")),
    Target("fnctl ls", _at_most("deploy", "platform: fnctl ls", "CLI start", 1.0, "s")),
    Target("100 functions at zero: Serve controller CPU (1,000 at <= 10 % is the goal)",
           _at_most("idle", "100 functions at zero", "Serve controller CPU", 10.0, "% core")),
    Target("warm 3-step flow: overhead over the critical path",
           _at_most("composition", "platform: warm 3-step flow run", "overhead over the critical path", 100.0, "ms")),
]


# Targets other tools measure: named so the table says where, instead of leaving them out.
ELSEWHERE = [
    ("a killed node's functions back on a surviving node of their pool", "python bench/multinode.py"),
    ("vectorize ingest >= 85 % of the model-only rate", "python functions/vectorize/bench/vectors.py (not changed here)"),
    ("PyTorch example: cold start and batched throughput", "not built yet"),
    ("50 concurrent identity-flow runs vs aiohttp + Redis", "not built yet"),
]


def check_targets(rows: list[Row]) -> list[dict[str, str]]:
    """Each target as met / NOT MET / not measured against *rows*, then the ones other tools measure."""
    out = []
    for target in TARGETS:
        result = target.check(rows)
        verdict, detail = ("not measured", "") if result is None else ("met" if result[0] else "NOT MET", result[1])
        out.append({"target": target.label, "verdict": verdict, "detail": detail})
    return out + [{"target": label, "verdict": "elsewhere", "detail": where} for label, where in ELSEWHERE]


def print_targets(targets: list[dict[str, str]]) -> None:
    print("\ntargets (docs/benchmarks.md), against this run:")
    for t in targets:
        print(f"  {t['verdict']:12} {t['target']}: {t['detail']}")
