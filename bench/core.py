"""Core-path figures: deploy time, cold start from zero, warm HTTP latency, against a same-run baseline.

Run: ``python bench/core.py`` (starts its own platform on a fresh FN_HOME and free ports, stops it
at the end). Prints a table and writes bench/results/core.json.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from _platform import free_port, local_platform, percentile, print_table, save

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "projects" / "noop"
WARM_CALLS = 100
REPEATS = 5


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


def main() -> None:
    results: dict[str, object] = {}
    floor_port = free_port()
    floor = subprocess.Popen([sys.executable, str(HERE / "baseline_app.py"), str(floor_port)])
    try:
        with local_platform() as platform:
            start = time.perf_counter()
            platform.fnctl("deploy", str(PROJECT))
            results["deploy_first_s"] = time.perf_counter() - start
            redeploys = []
            for _ in range(REPEATS):
                start = time.perf_counter()
                platform.fnctl("deploy", str(PROJECT))
                redeploys.append(time.perf_counter() - start)
            results["deploy_unchanged_s"] = statistics.median(redeploys)

            platform_ms, floor_ms = [], []
            for _ in range(3):  # interleaved, so both see the same machine load
                platform_ms += sequential_latency_ms(f"{platform.http_url}/add", platform.key)
                floor_ms += sequential_latency_ms(f"http://127.0.0.1:{floor_port}/add", "bench-key")
            results["warm_p50_ms"] = statistics.median(platform_ms)
            results["warm_p99_ms"] = percentile(platform_ms, 0.99)
            results["floor_p50_ms"] = statistics.median(floor_ms)
            results["floor_p99_ms"] = percentile(floor_ms, 0.99)

            colds = []
            with httpx.Client(headers={"Authorization": f"Bearer {platform.key}"}, timeout=120) as client:
                for _ in range(REPEATS):
                    platform.wait_for_zero(["cold"])
                    start = time.perf_counter()
                    client.post(f"{platform.http_url}/cold", json={"a": 1, "b": 2}).raise_for_status()
                    colds.append(time.perf_counter() - start)
            results["cold_start_s"] = statistics.median(colds)
            results["cold_start_all_s"] = colds
    finally:
        floor.terminate()
    save("core", results)
    print_table([
        ("deploy, first (2 functions)", f"{results['deploy_first_s']:.2f} s", ""),
        ("deploy, unchanged (median of 5)", f"{results['deploy_unchanged_s']:.2f} s", ""),
        ("cold start from zero (median of 5)", f"{results['cold_start_s']:.2f} s",
         "all: " + ", ".join(f"{c:.2f}" for c in colds)),
        ("warm HTTP p50 / p99, 300 sequential", f"{results['warm_p50_ms']:.2f} / {results['warm_p99_ms']:.2f} ms",
         f"{results['warm_p50_ms'] / results['floor_p50_ms']:.1f}x the floor"),  # type: ignore[operator]
        ("floor: plain uvicorn p50 / p99", f"{results['floor_p50_ms']:.2f} / {results['floor_p99_ms']:.2f} ms", ""),
    ])


if __name__ == "__main__":
    main()
