"""Scenario 6, composition: what a flow adds to the functions it calls. A warm 3-step run end to end
against its own critical path (the steps' durations, which the run reports): the flow's overhead, and
the part of it that is starting the run (its actor); and a cold run, every step at zero replicas,
with prewarm against the same flow without it (the baseline, measured in the same run)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from _procs import LocalPlatform
from _report import Ctx, Row, Scenario, med, ratio

NAME = "composition"
PROJECT = Path(__file__).resolve().parent / "projects" / "chain"
STEPS = ["p1", "p2", "p3", "q1", "q2", "q3"]


def flow_run(p: LocalPlatform, client: httpx.Client, flow: str) -> tuple[float, float, dict[str, Any]]:
    """One run given its input at once and waited for: (seconds end to end, seconds to create it, its state)."""
    start = time.perf_counter()
    created = client.post(f"{p.http_url}/flows/{flow}/runs")
    started = time.perf_counter() - start
    if created.status_code != 201:
        raise SystemExit(f"starting a {flow} run failed: {created.status_code} {created.text}")
    run_id = created.json()["id"]
    client.put(f"{p.http_url}/flows/{flow}/runs/{run_id}/inputs/x", json=1).raise_for_status()
    state: dict[str, Any] = {}
    while state.get("status") not in {"succeeded", "failed"}:
        state = client.get(f"{p.http_url}/flows/{flow}/runs/{run_id}", params={"wait": 30}).json()
    if state["status"] != "succeeded":
        raise SystemExit(f"{flow} run failed: {state}")
    return time.perf_counter() - start, started, state


def composition_platform(p: LocalPlatform, ctx: Ctx) -> dict[str, Any]:
    p.fnctl("deploy", str(PROJECT))
    out: dict[str, Any] = {"warm_s": [], "overhead_ms": [], "start_ms": [], "cold_prewarm_s": [], "cold_plain_s": []}
    with httpx.Client(headers={"Authorization": f"Bearer {p.key}"}, timeout=120) as client:
        flow_run(p, client, "prewarmed")  # scales p1..p3 up
        for _ in range(3 if ctx.quick else 5):
            elapsed, started, state = flow_run(p, client, "prewarmed")
            critical = sum(float(s["duration_ms"]) for s in state["steps"].values()) / 1000
            out["warm_s"].append(elapsed)
            out["overhead_ms"].append((elapsed - critical) * 1000)
            out["start_ms"].append(started * 1000)
        for _ in range(1 if ctx.quick else 2):
            p.wait_for_zero(STEPS)
            out["cold_prewarm_s"].append(flow_run(p, client, "prewarmed")[0])
            p.wait_for_zero(STEPS)
            out["cold_plain_s"].append(flow_run(p, client, "plain")[0])
    return {key: statistics.median(values) for key, values in out.items()} | {"runs": out}


def composition_baseline(ctx: Ctx) -> dict[str, Any]:
    return {}  # the baselines are inside the platform's own runs: the critical path, and the flow without prewarm


def composition_rows(plat: list[dict[str, Any]], base: list[dict[str, Any]]) -> list[Row]:
    prewarm, plain = med(plat, "cold_prewarm_s"), med(plat, "cold_plain_s")
    return [
        Row(NAME, "platform: warm 3-step flow run", "end to end", med(plat, "warm_s"), "s",
            note="3 x 0.2 s of step work"),
        Row(NAME, "platform: warm 3-step flow run", "overhead over the critical path", med(plat, "overhead_ms"), "ms",
            note="end to end minus the steps' own durations"),
        Row(NAME, "platform: warm 3-step flow run", "of which: creating the run", med(plat, "start_ms"), "ms"),
        Row(NAME, "platform: cold run, prewarm", "end to end", prewarm, "s", ratio=ratio(prewarm, plain),
            note="every step at zero replicas; vs the same flow without prewarm"),
        Row(NAME, "platform: cold run, no prewarm (baseline)", "end to end", plain, "s"),
    ]


COMPOSITION = Scenario(NAME, composition_platform, composition_baseline, composition_rows)
