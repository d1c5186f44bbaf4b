"""Composition figures: per-hop cost of a function calling a function, flow overhead, and the
end-to-end time of a cold flow run with and without prewarm.

Run: ``python bench/composition.py`` (starts its own platform, stops it at the end). Prints a
table and writes bench/results/composition.json.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import httpx
from _platform import LocalPlatform, local_platform, percentile, print_table, save

HERE = Path(__file__).resolve().parent
CALLS = 100
STARTS: list[float] = []  # time to create a run (its actor), per run
COLD_REPEATS = 3


def latencies(client: httpx.Client, url: str) -> list[float]:
    for _ in range(10):
        client.post(url, json={"x": 1}).raise_for_status()
    out = []
    for _ in range(CALLS):
        start = time.perf_counter()
        client.post(url, json={"x": 1}).raise_for_status()
        out.append((time.perf_counter() - start) * 1000)
    return out


def flow_run(platform: LocalPlatform, client: httpx.Client, flow: str) -> tuple[float, dict[str, object]]:
    start = time.perf_counter()
    created = client.post(f"{platform.http_url}/flows/{flow}/runs")
    STARTS.append(time.perf_counter() - start)
    if created.status_code != 201:
        raise SystemExit(f"starting a {flow} run failed: {created.status_code} {created.text}")
    run_id = created.json()["id"]
    client.put(f"{platform.http_url}/flows/{flow}/runs/{run_id}/inputs/x", json=1).raise_for_status()
    state: dict[str, object] = {}
    while state.get("status") not in {"succeeded", "failed"}:
        state = client.get(f"{platform.http_url}/flows/{flow}/runs/{run_id}", params={"wait": 30}).json()
    elapsed = time.perf_counter() - start
    if state["status"] != "succeeded":
        raise SystemExit(f"{flow} run failed: {state}")
    return elapsed, state


def main() -> None:
    results: dict[str, object] = {}
    with local_platform() as platform:
        platform.fnctl("deploy", str(HERE / "projects" / "chain"))
        with httpx.Client(headers={"Authorization": f"Bearer {platform.key}"}, timeout=120) as client:
            direct, chained = [], []
            for _ in range(3):  # interleaved
                direct += latencies(client, f"{platform.http_url}/hop0")
                chained += latencies(client, f"{platform.http_url}/hop1")
            results["direct_p50_ms"] = statistics.median(direct)
            results["chained_p50_ms"] = statistics.median(chained)
            results["hop_ms"] = results["chained_p50_ms"] - results["direct_p50_ms"]  # type: ignore[operator]
            results["chained_p99_ms"] = percentile(chained, 0.99)

            overheads, warm_runs = [], []
            flow_run(platform, client, "prewarmed")  # warms p1..p3
            for _ in range(5):
                elapsed, state = flow_run(platform, client, "prewarmed")
                steps = state["steps"]
                critical = sum(float(s["duration_ms"]) for s in steps.values()) / 1000  # type: ignore[attr-defined]
                warm_runs.append(elapsed)
                overheads.append(elapsed - critical)
            results["warm_run_s"] = statistics.median(warm_runs)
            results["flow_overhead_ms"] = statistics.median(overheads) * 1000
            results["run_start_ms"] = statistics.median(STARTS[-5:]) * 1000

            cold_prewarm, cold_plain = [], []
            for _ in range(COLD_REPEATS):
                platform.wait_for_zero(["p1", "p2", "p3", "q1", "q2", "q3"])
                cold_prewarm.append(flow_run(platform, client, "prewarmed")[0])
                platform.wait_for_zero(["p1", "p2", "p3", "q1", "q2", "q3"])
                cold_plain.append(flow_run(platform, client, "plain")[0])
            results["cold_run_prewarm_s"] = statistics.median(cold_prewarm)
            results["cold_run_plain_s"] = statistics.median(cold_plain)
            results["cold_runs"] = {"prewarm": cold_prewarm, "plain": cold_plain}
    save("composition", results)
    rows = [
        ("direct call p50 (HTTP, warm)", f"{results['direct_p50_ms']:.2f} ms", "baseline, same run"),
        ("call that makes one handle hop p50", f"{results['chained_p50_ms']:.2f} ms",
         f"p99 {results['chained_p99_ms']:.2f} ms"),
        ("per-hop cost (difference of medians)", f"{results['hop_ms']:.2f} ms", ""),
        ("warm 3-step flow run, end to end", f"{results['warm_run_s']:.3f} s", "3 x 0.2 s of step work"),
        ("flow overhead (end to end - critical path)", f"{results['flow_overhead_ms']:.0f} ms", "median of 5"),
        ("  of which: starting the run (its actor)", f"{results['run_start_ms']:.0f} ms", "median of 5"),
        ("cold 3-step run, with prewarm", f"{results['cold_run_prewarm_s']:.2f} s",
         ", ".join(f"{v:.2f}" for v in cold_prewarm)),
        ("cold 3-step run, without prewarm", f"{results['cold_run_plain_s']:.2f} s",
         ", ".join(f"{v:.2f}" for v in cold_plain)),
    ]
    print_table(rows)

if __name__ == "__main__":
    main()
