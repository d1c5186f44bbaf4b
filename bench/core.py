"""Core-path figures: deploy time, cold start from zero, warm HTTP latency, against a same-run baseline.

Run: ``python bench/core.py`` (starts its own platform on a fresh FN_HOME and free ports, stops it
at the end). Prints a table and writes bench/results/core.json.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "projects" / "noop"
WARM_CALLS = 100
REPEATS = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fnctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "fnctl.main", *args], env=env, capture_output=True, text=True,
                          check=False, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"fnctl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def sequential_latency_ms(url: str, key: str) -> list[float]:
    timings = []
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        for _ in range(10):
            client.post(url, json={"a": 1, "b": 2}).raise_for_status()
        for _ in range(WARM_CALLS):
            start = time.perf_counter()
            response = client.post(url, json={"a": 1, "b": 2})
            timings.append((time.perf_counter() - start) * 1000)
            assert response.json() == 3
    return timings


def running_replicas(api: httpx.Client, name: str) -> int:
    rows = api.get("/v1/functions").json()
    return next(int(r["running"]) for r in rows if r["name"] == name)


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="fnb", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FN_", "RAY_"))} | {"FN_HOME": str(home)}
    api_port, http_port, floor_port = free_port(), free_port(), free_port()
    results: dict[str, Any] = {}
    floor = subprocess.Popen([sys.executable, str(HERE / "baseline_app.py"), str(floor_port)])
    fnctl(env, "up", "--api-port", str(api_port), "--http-port", str(http_port))
    try:
        creds = json.loads((home / "credentials.json").read_text())
        key = creds["api_key"]
        api = httpx.Client(base_url=creds["api_url"], headers={"Authorization": f"Bearer {key}"}, timeout=60)

        start = time.perf_counter()
        fnctl(env, "deploy", str(PROJECT))
        results["deploy_first_s"] = time.perf_counter() - start
        redeploys = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            fnctl(env, "deploy", str(PROJECT))
            redeploys.append(time.perf_counter() - start)
        results["deploy_unchanged_s"] = statistics.median(redeploys)

        platform_ms, floor_ms = [], []
        for _ in range(3):  # interleaved, so both see the same machine load
            platform_ms += sequential_latency_ms(f"http://127.0.0.1:{http_port}/add", key)
            floor_ms += sequential_latency_ms(f"http://127.0.0.1:{floor_port}/add", "bench-key")
        results["warm_p50_ms"] = statistics.median(platform_ms)
        results["warm_p99_ms"] = percentile(platform_ms, 0.99)
        results["floor_p50_ms"] = statistics.median(floor_ms)
        results["floor_p99_ms"] = percentile(floor_ms, 0.99)

        colds = []
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
            for _ in range(REPEATS):
                deadline = time.monotonic() + 120
                while running_replicas(api, "cold") > 0 and time.monotonic() < deadline:
                    time.sleep(0.5)
                time.sleep(1)
                start = time.perf_counter()
                client.post(f"http://127.0.0.1:{http_port}/cold", json={"a": 1, "b": 2}).raise_for_status()
                colds.append(time.perf_counter() - start)
        results["cold_start_s"] = statistics.median(colds)
        results["cold_start_all_s"] = colds
    finally:
        fnctl(env, "down")
        floor.terminate()
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "core.json").write_text(json.dumps(results, indent=2))
    rows = [
        ("deploy, first (2 functions)", f"{results['deploy_first_s']:.2f} s", ""),
        ("deploy, unchanged (median of 5)", f"{results['deploy_unchanged_s']:.2f} s", ""),
        ("cold start from zero (median of 5)", f"{results['cold_start_s']:.2f} s",
         "all: " + ", ".join(f"{c:.2f}" for c in colds)),
        ("warm HTTP p50 / p99, 300 sequential", f"{results['warm_p50_ms']:.2f} / {results['warm_p99_ms']:.2f} ms",
         f"{results['warm_p50_ms'] / results['floor_p50_ms']:.1f}x the floor"),
        ("floor: plain uvicorn p50 / p99", f"{results['floor_p50_ms']:.2f} / {results['floor_p99_ms']:.2f} ms", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'value':<18}  note")
    for name, value, note in rows:
        print(f"{name.ljust(width)}  {value:<18}  {note}")


if __name__ == "__main__":
    main()
