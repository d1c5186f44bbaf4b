"""Web apps and shared state on one platform, each against its baseline in the same run.

Run: ``python bench/apps.py [--quick] [--json PATH]``. One fresh platform on `fnctl up` defaults deploys the
example web app (functions/examples/webapp: ``shop`` and its two models) and bench/projects/state, then:

1. **web app**: the app's own route ``GET /products?category=furniture`` (validation, a SQLite query, JSON)
   through the platform (``/shop/products``, with the key) and the very same FastAPI app under plain uvicorn
   (one worker, no key) on this machine: sequential calls on one keep-alive connection (median, p99), then wrk
   at 1 and 16 connections (requests/s), after an unrecorded load at 16 connections so that autoscaling has
   settled, the two setups taking turns (A B A B) so drift hits both; then, with
   the platform down, the same app on plain Ray Serve (``serve.ingress`` with the builder, one replica, HAProxy
   as the platform runs it, no key). Also ``GET /shop/products/2`` on the platform alone: the app plus one
   ``fn.acall`` to a model.
2. **shared state inside the cluster**: ``state-probe`` times, in its replica, each ``fn.Dict`` / ``fn.Queue``
   operation (async API, one at a time) against a call of a bare Ray actor with the state server's own options,
   made from the same replica in the same run; then calls/s with 16 in flight. Reads are one actor hop; writes
   also wait for their database commit (group commit, SQLite on this machine).
3. **shared state from outside**: ``fn.Dict.get`` / ``incr`` from this process over the control plane's
   ``/v1/state`` (the SDK's HTTP backend), against ``GET /v1/functions/shop`` on the same API and key.

Every number goes to bench/results/apps.json (or --json PATH); the table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import sdk_client
from _ab import HERE, SAME_RAY
from _procs import LocalPlatform, free_port, local_platform
from _raw import raw_serve
from _report import Row, latency_stats, med, print_table, ratio
from _wrk import run_wrk

ROOT = HERE.parent
WEBAPP = ROOT / "functions" / "examples" / "webapp"
ROUTE = "/products?category=furniture"
GET_LUA = HERE / "get.lua"


def sequential(client: httpx.Client, url: str, n: int) -> dict[str, float]:
    for _ in range(20):
        client.get(url).raise_for_status()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        answer = client.get(url)
        samples.append((time.perf_counter() - start) * 1000)
        answer.raise_for_status()
    return latency_stats(samples)


def uvicorn_app(port: int) -> subprocess.Popen[bytes]:
    """The same app under plain uvicorn: the example's builder called once, as a replica does."""
    code = (f"import sys; sys.path.insert(0, {str(WEBAPP)!r}); import shop, uvicorn; "
            f"uvicorn.run(shop.shop(), host='127.0.0.1', port={port}, log_level='warning')")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FN_", "RAY_"))}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{ROUTE}", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the uvicorn baseline did not answer within 30 s")


def _sizes(quick: bool) -> tuple[int, int, float]:
    return (200, 2, 5.0) if quick else (500, 3, 10.0)  # sequential calls, repetitions, seconds per wrk run


def measure(base: str, key: str, quick: bool) -> dict[str, Any]:
    n, _, wrk_s = _sizes(quick)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(headers=headers, timeout=30) as client:
        one: dict[str, Any] = {"sequential": sequential(client, base + ROUTE, n)}
    for connections in (1, 16):
        one[f"wrk{connections}"] = run_wrk(base + ROUTE, key, connections, wrk_s, script=GET_LUA)
    return one


def web_app(platform: LocalPlatform, quick: bool) -> dict[str, Any]:
    n, reps, wrk_s = _sizes(quick)
    port = free_port()
    baseline = uvicorn_app(port)
    setups = {"fn": (f"{platform.http_url}/shop", platform.key), "uvicorn": (f"http://127.0.0.1:{port}", "")}
    result: dict[str, Any] = {name: [] for name in setups}
    try:
        # Load first, unrecorded, so autoscaling has settled (fn scales the app up to its max_replicas at 16
        # connections; plain Serve runs one replica) before anything is measured.
        print(f"web app: warming up at 16 connections for {2 * wrk_s:g} s", flush=True)
        run_wrk(f"{platform.http_url}/shop{ROUTE}", platform.key, 16, 2 * wrk_s, script=GET_LUA)
        for rep in range(reps):
            for name, (base, key) in setups.items():
                print(f"web app: {name}, repetition {rep + 1} of {reps}", flush=True)
                result[name].append(measure(base, key, quick))
                if name == "fn":
                    result[name][-1]["replicas"] = platform.running("shop")
        with httpx.Client(headers={"Authorization": f"Bearer {platform.key}"}, timeout=30) as client:
            result["with_model"] = sequential(client, f"{platform.http_url}/shop/products/2", n)
    finally:
        baseline.terminate()
        baseline.wait(10)
    return result


def web_app_raw_serve(quick: bool) -> list[dict[str, Any]]:
    """The same app on plain Ray Serve behind HAProxy (the platform's ingress), with the platform down."""
    _, reps, _ = _sizes(quick)
    runs = []
    with raw_serve("shop", {"RAY_SERVE_ENABLE_HA_PROXY": "1"}) as worker:
        for rep in range(reps):
            print(f"web app: plain Ray Serve, repetition {rep + 1} of {reps}", flush=True)
            runs.append(measure(worker.info["url"], "", quick))
    return runs


def state_inside(platform: LocalPlatform, quick: bool) -> list[dict[str, Any]]:
    n, reps = (300, 2) if quick else (1000, 3)
    runs = []
    with httpx.Client(headers={"Authorization": f"Bearer {platform.key}"}, timeout=900) as client:
        for rep in range(reps):
            print(f"state inside the cluster: repetition {rep + 1} of {reps}, {n} calls per operation", flush=True)
            answer = client.post(f"{platform.http_url}/state-probe", json={"n": n, "concurrency": 16})
            if answer.status_code != 200:
                raise SystemExit(f"state-probe answered {answer.status_code}: {answer.text}\n"
                                 f"{chr(10).join(platform.log_lines('state-probe')[-30:])}")
            runs.append(answer.json())
    return runs


def state_outside(platform: LocalPlatform, quick: bool) -> dict[str, Any]:
    n = 100 if quick else 300
    os.environ.update({"FN_API_URL": str(platform.api.base_url).rstrip("/"), "FN_API_KEY": platform.key})
    import fn

    d = fn.Dict("bench-outside")
    d["hot"] = {"w": [0.1, 0.2]}

    def timed(call: Callable[[], object]) -> dict[str, float]:
        return latency_stats(sdk_client.timed(call, n))  # 10 calls to warm up, then n timed in ms

    print(f"state from outside: {n} calls per operation over /v1/state", flush=True)
    return {"api baseline": timed(lambda: platform.api.get("/v1/functions/shop").raise_for_status()),
            "Dict.get": timed(lambda: d.get("hot")), "Dict.incr": timed(lambda: d.incr("count"))}


def rows(result: dict[str, Any]) -> list[Row]:
    table: list[Row] = []
    web = result["web_app"]
    for metric, path, unit in (("latency, 1 at a time", ("sequential", "p50_ms"), "ms"),
                               ("requests/s, 1 connection", ("wrk1", "rps"), "/s"),
                               ("requests/s, 16 connections", ("wrk16", "rps"), "/s")):
        base = med(web["uvicorn"], *path)
        p99 = ("sequential", "p99_ms") if unit == "ms" else None
        replicas = med(web["fn"], "replicas") or 0
        setups = (("uvicorn, same app", web["uvicorn"], "the baseline"),
                  ("plain Serve + HAProxy", result["web_app_raw_serve"], "serve.ingress(builder), 1 replica, no key"),
                  ("fn @fn.asgi", web["fn"], f"key checked, request id, metrics; {replicas:g} replicas"))
        for setup, runs, note in setups:
            value = med(runs, *path)
            table.append(Row("web app", setup, metric, value, unit, p99=med(runs, *p99) if p99 else None,
                             ratio=None if runs is web["uvicorn"] else ratio(value, base), note=note))
    w = web["with_model"]
    table.append(Row("web app", "fn, route + fn.acall", "latency, 1 at a time", w["p50_ms"], "ms", p99=w["p99_ms"],
                     note="GET /shop/products/2: the app and one model call"))
    inside = result["state_inside"]
    bare = med(inside, "bare actor call", "p50_ms")
    for op in ("bare actor call", "Dict.aget", "Dict.aput", "Dict.aincr", "Queue.aput", "Queue.aget"):
        value = med(inside, op, "p50_ms")
        note = "the baseline" if op == "bare actor call" else "one hop" if op == "Dict.aget" else "hop + commit"
        table.append(Row("state, in a replica", op, "latency, 1 at a time", value, "ms", p99=med(inside, op, "p99_ms"),
                         ratio=None if op == "bare actor call" else ratio(value, bare), note=note))
    bare_rate = med(inside, "rate", "bare actor call")
    for op in ("bare actor call", "Dict.aget", "Dict.aincr"):
        value = med(inside, "rate", op)
        table.append(Row("state, in a replica", op, "calls/s, 16 in flight", value, "/s",
                         ratio=None if op == "bare actor call" else ratio(value, bare_rate)))
    outside = result["state_outside"]
    api = outside["api baseline"]["p50_ms"]
    table.append(Row("state, over HTTP", "GET /v1/functions/shop", "latency", api, "ms",
                     p99=outside["api baseline"]["p99_ms"], note="the baseline"))
    for op in ("Dict.get", "Dict.incr"):
        table.append(Row("state, over HTTP", op, "latency", outside[op]["p50_ms"], "ms", p99=outside[op]["p99_ms"],
                         ratio=ratio(outside[op]["p50_ms"], api)))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls and repetitions, shorter wrk runs")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "apps.json", metavar="PATH",
                        help="where to write every number (default bench/results/apps.json)")
    args = parser.parse_args()
    started = time.perf_counter()
    with local_platform(extra_env=SAME_RAY) as platform:
        platform.deploy(WEBAPP)
        platform.deploy(HERE / "projects" / "state")
        result: dict[str, Any] = {"web_app": web_app(platform, args.quick),
                                  "state_inside": state_inside(platform, args.quick),
                                  "state_outside": state_outside(platform, args.quick)}
    result["web_app_raw_serve"] = web_app_raw_serve(args.quick)
    table = rows(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"quick": args.quick, "wall_s": time.perf_counter() - started, "results": result,
                                     "table": [row.as_json() for row in table]}, indent=1, default=str))
    print(f"\nfn web apps and shared state, one platform ({'quick' if args.quick else 'full'} run); "
          f"'vs baseline' is the ratio of medians to the row the note calls the baseline")
    print_table(table)
    print(f"\nevery number: {args.json} (this machine: {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
