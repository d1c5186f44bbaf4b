"""Scenarios 2 and 3: a cold start from zero replicas (light and heavy function, with a breakdown), and a
burst of 50 concurrent requests at zero; each against plain Ray Serve with default autoscaling."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from _procs import LocalPlatform
from _raw import FLOOR_KEY, raw_serve
from _report import Ctx, Row, Scenario, med, ratio

HERE = Path(__file__).resolve().parent
BURST = 50
KINDS = (("light", "no-op"), ("heavy", "onnxruntime session in setup()"))
READY_LINE = re.compile(r"^(\S+) .*replica ready: .* loaded in (\d+) ms")
# The breakdown of one cold request, each an interval between two instants (epoch seconds) on this machine.
# "actor_created" is Serve's replica start_time_s (the controller starts the replica); "process" is when
# the replica's worker process was created, or that start when Ray handed the replica a worker process it
# had started earlier (a pooled worker; then the phase is 0).
PHASES = [
    ("to_actor_s", "request -> replica started (scale-up)", "sent", "actor_created"),
    ("to_process_s", "replica started -> worker process", "actor_created", "process"),
    ("to_user_code_s", "process -> user code (Ray, Serve, bundle)", "process", "user_start"),
    ("user_setup_s", "user import + setup()", "user_start", "ready"),
    ("ready_to_answer_s", "ready -> response (health, routing)", "ready", "answered"),
]


def _cold_request(url: str, key: str, replicas: Callable[[], list[dict[str, Any]]]) -> dict[str, Any]:
    sent = time.time()
    response = httpx.post(url, json={"x": 1}, headers={"Authorization": f"Bearer {key}"}, timeout=300)
    answered = time.time()
    response.raise_for_status()
    times = response.json()["times"]
    starts = [float(r["start_time_s"]) for r in replicas() if r.get("start_time_s")]
    actor = max(starts) if starts else None
    marks = {"sent": sent, "answered": answered, "user_start": times["user_start"], "ready": times["ready"],
             "actor_created": actor, "process": max(actor, times["proc_created"]) if actor else None}
    out: dict[str, Any] = {"sent": sent, "total_s": answered - sent, "pooled_worker": bool(
        actor and times["proc_created"] < actor), "process_created_after_s": times["proc_created"] - sent}
    for key_, _label, start, end in PHASES:
        if marks[start] is not None and marks[end] is not None:
            out[key_] = marks[end] - marks[start]
    return out


def cold_platform(p: LocalPlatform, ctx: Ctx) -> dict[str, Any]:
    p.deploy(HERE / "projects" / "cold")
    out: dict[str, Any] = {}
    for kind, _ in KINDS:
        name = f"cold-{kind}"
        p.wait_for_zero([f"cold-{k}" for k, _ in KINDS])
        out[kind] = _cold_request(f"{p.http_url}/{name}", p.key, lambda name=name: p.replicas(name))
        time.sleep(1)  # the log shipper flushes every 0.5 s
        ready = [m for m in map(READY_LINE.match, p.log_lines(name)) if m]
        if ready:
            out[kind]["loaded_ms_log"] = float(ready[-1].group(2))
            stamp = datetime.fromisoformat(ready[-1].group(1).replace("Z", "+00:00")).timestamp()
            out[kind]["log_ready_after_s"] = stamp - out[kind]["sent"]
    return out


def cold_baseline(ctx: Ctx) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with raw_serve("cold") as worker:
        for kind, _ in KINDS:
            out[kind] = _cold_request(f"{worker.info['base']}/{kind}", FLOOR_KEY, lambda k=kind: worker.replicas(k))
    return out


def _pooled_row(setup: str, reps: list[dict[str, Any]], kind: str) -> Row:
    flags = [bool(r[kind]["pooled_worker"]) for r in reps if isinstance(r.get(kind), dict) and "pooled_worker" in r[kind]]
    return Row("cold", setup, "runs on a pooled (pre-started) worker", float(sum(flags)), "", note=f"of {len(flags)} runs")


def cold_rows(plat: list[dict[str, Any]], base: list[dict[str, Any]]) -> list[Row]:
    out = []
    for kind, what in KINDS:
        total, raw = med(plat, kind, "total_s"), med(base, kind, "total_s")
        loaded = med(plat, kind, "loaded_ms_log")
        out.append(Row("cold", f"platform, {kind} ({what})", "request -> response", total, "s", None, ratio(total, raw),
                       f"replica log: loaded in {loaded:.0f} ms (fetch+import+setup)" if loaded is not None else ""))
        for key, label, _start, _end in PHASES:
            value, raw_value = med(plat, kind, key), med(base, kind, key)
            out.append(Row("cold", f"  platform {kind}", label, value, "s", None, ratio(value, raw_value)))
        out.append(_pooled_row(f"  platform {kind}", plat, kind))
        out.append(Row("cold", f"plain Serve, {kind}", "request -> response", raw, "s", None, None,
                       "baseline: min_replicas=0, Serve's default autoscaling"))
        for key, label, _start, _end in PHASES:
            out.append(Row("cold", f"  plain Serve {kind}", label, med(base, kind, key), "s"))
        out.append(_pooled_row(f"  plain Serve {kind}", base, kind))
    out.append(Row("cold", "note", "", None, "", note="phases from Serve's replica start_time_s, the replica process's "
                   "create time and the replica's own clock; Ray worker start, Ray and Serve imports and the bundle fetch "
                   "are not separable from outside (the platform's 'loaded in' covers fetch + import + setup)"))
    return out


async def _burst(url: str, key: str) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=300, limits=limits) as client:
        start = time.perf_counter()

        async def one(i: int) -> tuple[int, float]:
            try:
                response = await client.post(url, json={"x": i})
                return response.status_code, time.perf_counter() - start
            except httpx.HTTPError:
                return 0, time.perf_counter() - start

        answers = await asyncio.gather(*(one(i) for i in range(BURST)))
    return {"ok": sum(1 for status, _ in answers if status == 200), "first_s": min(t for _, t in answers),
            "last_s": max(t for _, t in answers)}


def _started(replicas: list[dict[str, Any]]) -> int:
    return sum(1 for r in replicas if r.get("state") in {"RUNNING", "STARTING", "PENDING_MIGRATION", "RECOVERING"})


def burst_platform(p: LocalPlatform, ctx: Ctx) -> dict[str, Any]:
    p.deploy(HERE / "projects" / "burst")
    p.wait_for_zero(["burst"])
    out = asyncio.run(_burst(f"{p.http_url}/burst", p.key))
    out["replicas"] = _started(p.replicas("burst"))
    return out


def burst_baseline(ctx: Ctx) -> dict[str, Any]:
    with raw_serve("burst") as worker:
        out = asyncio.run(_burst(f"{worker.info['base']}/burst", FLOOR_KEY))
        out["replicas"] = _started(worker.replicas("burst"))
    return out


def burst_rows(plat: list[dict[str, Any]], base: list[dict[str, Any]]) -> list[Row]:
    rows = []
    for setup, reps, others in (("platform", plat, base), ("plain Serve", base, None)):
        note = "baseline: min_replicas=0, max_replicas=4, Serve defaults" if others is None else ""
        last, ok, replicas = med(reps, "last_s"), med(reps, "ok"), med(reps, "replicas")
        rows += [
            Row("burst", setup, f"HTTP 200s of {BURST}", ok, "", None, None, note),
            Row("burst", setup, "time to last answer", last, "s", None, ratio(last, med(others, "last_s")) if others else None),
            Row("burst", setup, "time to first answer", med(reps, "first_s"), "s"),
            Row("burst", setup, "replicas started (max 4)", replicas, ""),
        ]
    return rows


COLD = Scenario("cold", cold_platform, cold_baseline, cold_rows)
BURST_SCENARIO = Scenario("burst", burst_platform, burst_baseline, burst_rows)
