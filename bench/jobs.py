"""Jobs and streams on one platform: job throughput against plain calls, what queued jobs cost, time to first chunk.

Run: ``python bench/jobs.py [--quick] [--json PATH]``. One fresh platform on `fnctl up` defaults deploys
bench/projects/jobs (noop, parked, tokens), then:

1. **throughput**: N no-op calls (default 2,000, --quick 300) POSTed to ``/noop`` by 16 threads, each on its own
   keep-alive httpx connection (the baseline), then the same N as jobs to ``/jobs/noop``: jobs accepted per
   second (until the last 202), completed per second (from the first POST until no noop job is queued or running,
   seen through ``GET /jobs``; the database's last ``finished`` time is given alongside), each ÷ calls per second,
   and the median accept latency against the median call latency.
2. **streams**: 20 calls of ``tokens(n=20, pause_s=0.05)`` read as JSON lines: the median time to the first chunk
   against the median time to the whole stream (expect about 50 ms and 1 s).
3. **queued jobs**: one ``parked`` job sleeps 600 s and, with ``job_concurrency=1``, holds the next 10,000
   (--quick 5,000) in the queue. Growth per queued job of the registry database (its pages as SQLite counts them,
   and the files registry.db + registry.db-wal), of the runner actor's RSS (per 10,000), the runner's CPU while
   they wait, the accept rate while the queue grows, and how long one job of another function (noop) then takes.
   The runner reads due jobs oldest first, 4 per free slot (``JobRunner._fill``): past about 4,000 queued jobs
   of a function at its cap, a later job of another function may not be reached at all (then "not run").

The runner is found by its process title (``ray::JobRunner``) among the platform's processes. Every number goes
to bench/results/jobs.json (or --json PATH); the table is printed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sqlite3
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from _ab import HERE, SAME_RAY
from _procs import LocalPlatform, local_platform
from _report import Row, percentile, print_table, ratio

THREADS = 16
RUNNER = re.compile(r"ray::JobRunner(\.|\s|$)")  # fnplatform.jobs.runner.JobRunner, the actor named fn-jobs


@dataclass
class Posted:
    started: float  # perf_counter at the first POST
    wall_s: float  # until the last answer
    latencies_ms: list[float]
    answers: list[Any]  # JSON bodies of the answers with the expected status
    errors: list[str]

    def rate(self) -> float:
        return len(self.answers) / self.wall_s

    def stats(self) -> dict[str, Any]:
        return {"per_s": self.rate(), "p50_ms": statistics.median(self.latencies_ms),
                "p99_ms": percentile(self.latencies_ms, 0.99), "ok": len(self.answers), "errors": self.errors[:5],
                "error_count": len(self.errors)}


def post_all(url: str, key: str, bodies: list[dict[str, Any]], expect: int) -> Posted:
    """POST every body from THREADS threads, each with its own keep-alive client."""
    local, lock = threading.local(), threading.Lock()
    clients: list[httpx.Client] = []

    def one(body: dict[str, Any]) -> tuple[float, Any, str | None]:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=120)
            with lock:
                clients.append(client)
        start = time.perf_counter()
        try:
            response = client.post(url, json=body)
        except httpx.HTTPError as exc:
            return (time.perf_counter() - start) * 1000, None, f"{type(exc).__name__}: {exc}"
        ms = (time.perf_counter() - start) * 1000
        if response.status_code != expect:
            return ms, None, f"{response.status_code} {response.text[:200]}"
        return ms, response.json(), None

    with ThreadPoolExecutor(THREADS) as pool:
        started = time.perf_counter()
        done = list(pool.map(one, bodies))
        wall = time.perf_counter() - started
    for client in clients:
        client.close()
    return Posted(started, wall, [ms for ms, _, _ in done], [a for _, a, e in done if e is None],
                  [e for _, _, e in done if e is not None])


def drain(client: httpx.Client, function: str, timeout_s: float) -> float:
    """perf_counter when the API first lists no queued or running job of *function*."""
    deadline = time.monotonic() + timeout_s
    while any(client.get("/jobs", params={"function": function, "status": s, "limit": 1}).json()
              for s in ("queued", "running")):
        if time.monotonic() > deadline:
            raise SystemExit(f"{function}'s jobs did not all end within {timeout_s:g} s")
        time.sleep(0.05)
    return time.perf_counter()


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # as the registry stores times (storage/db.py utcnow)


def _db(home: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(f"file:{home / 'registry.db'}?mode=ro", uri=True, timeout=30))


def db_sizes(home: Path) -> dict[str, int]:
    """The database's bytes in use (pages less free pages: what it holds whatever was checkpointed) and its files'."""
    with _db(home) as db:
        pages, free, size = (db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count", "page_size"))
    files = sum(p.stat().st_size for p in (home / "registry.db", home / "registry.db-wal") if p.exists())
    return {"pages_bytes": (pages - free) * size, "files_bytes": files}


def db_finished(home: Path, function: str, since: datetime) -> tuple[int, datetime | None]:
    """Jobs of *function* created since *since* that succeeded, and the last one's finished time."""
    with _db(home) as db:
        count, last = db.execute("SELECT count(*), max(finished) FROM jobs WHERE function = ? AND status = 'succeeded' "
                                 "AND created >= ?", (function, since.isoformat(sep=" ", timespec="microseconds"))).fetchone()
    return int(count), datetime.fromisoformat(last) if last else None


def _home(platform: LocalPlatform) -> Path:
    assert platform.home is not None  # local_platform always sets it
    return platform.home


def runner_process(platform: LocalPlatform) -> psutil.Process:
    for proc in platform.processes():
        try:
            if RUNNER.match(" ".join(proc.cmdline()).strip()):
                return proc
        except psutil.Error:
            continue
    raise SystemExit("no process titled ray::JobRunner among the platform's processes")


def cpu_share(proc: psutil.Process, seconds: float) -> float:
    """Cores the process used over *seconds* (1.0: one core busy)."""
    before = proc.cpu_times()
    time.sleep(seconds)
    after = proc.cpu_times()
    return float(after.user + after.system - before.user - before.system) / seconds


def throughput(platform: LocalPlatform, client: httpx.Client, n: int) -> dict[str, Any]:
    calls_url, jobs_url = f"{platform.http_url}/noop", f"{platform.http_url}/jobs/noop"
    bodies = [{"x": i} for i in range(n)]
    post_all(calls_url, platform.key, bodies[:64], 200)  # warm-up, discarded
    post_all(jobs_url, platform.key, bodies[:64], 202)
    drain(client, "noop", 120)
    calls = post_all(calls_url, platform.key, bodies, 200)
    since = _utcnow()
    jobs = post_all(jobs_url, platform.key, bodies, 202)
    completed_s = drain(client, "noop", 600) - jobs.started
    failed = client.get("/jobs", params={"function": "noop", "status": "failed", "limit": 1000}).json()
    succeeded, last = db_finished(_home(platform), "noop", since)
    return {"n": n, "calls": calls.stats(), "jobs": jobs.stats(), "completed_s": completed_s,
            "completed_per_s": len(jobs.answers) / completed_s, "failed": len(failed), "db_succeeded": succeeded,
            "db_completed_s": (last - since).total_seconds() if last else None}


def streams(client: httpx.Client, count: int, n: int = 20, pause_s: float = 0.05) -> dict[str, Any]:
    first_ms: list[float] = []
    whole_ms: list[float] = []
    for i in range(count + 1):  # the first is a warm-up
        start, first, chunks = time.perf_counter(), 0.0, 0
        with client.stream("POST", "/tokens", json={"n": n, "pause_s": pause_s}) as response:
            kind = response.headers.get("content-type", "")
            if response.status_code != 200 or not kind.startswith("application/x-ndjson"):
                raise SystemExit(f"POST /tokens: {response.status_code} {kind} {response.read()[:200]!r}")
            for line in response.iter_lines():
                if not line.strip():
                    continue
                chunk = json.loads(line)
                if isinstance(chunk, dict) and "error" in chunk:
                    raise SystemExit(f"POST /tokens: the stream failed after {chunks} chunks: {chunk}")
                first = first or time.perf_counter()
                chunks += 1
        end = time.perf_counter()
        if chunks != n:
            raise SystemExit(f"POST /tokens: {chunks} chunks, expected {n}")
        if i:
            first_ms.append((first - start) * 1000)
            whole_ms.append((end - start) * 1000)
    return {"count": count, "n": n, "pause_s": pause_s, "first_ms": first_ms, "whole_ms": whole_ms}


def _spawn(client: httpx.Client, function: str, body: dict[str, Any]) -> str:
    answer = client.post(f"/jobs/{function}", json=body)
    if answer.status_code != 202:
        raise SystemExit(f"POST /jobs/{function}: {answer.status_code} {answer.text[:300]}")
    return str(answer.json()["id"])


def queued(platform: LocalPlatform, client: httpx.Client, n: int, probe_s: float = 60) -> dict[str, Any]:
    home = _home(platform)
    proc = runner_process(platform)
    blocker = _spawn(client, "parked", {"sleep_s": 600})
    deadline = time.monotonic() + 60
    while (status := client.get(f"/jobs/{blocker}").json()["status"]) != "running":
        if status != "queued" or time.monotonic() > deadline:
            raise SystemExit(f"the blocking parked job is {status}; it should be running (sleeping 600 s)")
        time.sleep(0.2)
    time.sleep(3)
    before = {"rss": proc.memory_info().rss, "cpu": cpu_share(proc, 10), **db_sizes(home)}
    posted = post_all(f"{platform.http_url}/jobs/parked", platform.key, [{"x": i} for i in range(n)], 202)
    time.sleep(5)  # the runner's loop turns every half second: let it see the queue
    after = {"rss": proc.memory_info().rss, "cpu": cpu_share(proc, 10), **db_sizes(home)}
    start = time.perf_counter()
    probe = _spawn(client, "noop", {"x": -1})
    state = client.get(f"/jobs/{probe}", params={"wait": probe_s}).json()
    other_s = time.perf_counter() - start if state["status"] == "succeeded" else None
    return {"n": len(posted.answers), "accept": posted.stats(), "before": before, "after": after,
            "other_function_s": other_s, "other_function_status": state["status"], "probe_wait_s": probe_s}


def rows(r: dict[str, Any]) -> list[Row]:
    t, s, q = r["throughput"], r["streams"], r["queued"]
    calls, jobs = t["calls"], t["jobs"]
    db_note = f"database's last finished: {t['db_completed_s']:.2f} s" if t["db_completed_s"] is not None else ""
    errors = f"errors: {calls['error_count']} calls, {jobs['error_count']} jobs, {t['failed']} failed"
    first, whole = statistics.median(s["first_ms"]), statistics.median(s["whole_ms"])
    per = q["n"] or 1
    grow = {key: q["after"][key] - q["before"][key] for key in ("rss", "pages_bytes", "files_bytes")}
    other = "queued after them" if q["other_function_s"] is not None else (
        f"not run in {q['probe_wait_s']:g} s (still {q['other_function_status']})")
    return [
        Row("throughput", f"calls x{t['n']}", "calls/s", calls["per_s"], "/s", note=f"{THREADS} threads, keep-alive"),
        Row("throughput", f"jobs x{t['n']}", "accepted/s", jobs["per_s"], "/s", ratio=ratio(jobs["per_s"], calls["per_s"]),
            note="until the last 202; ratio: / calls/s"),
        Row("throughput", f"jobs x{t['n']}", "completed/s", t["completed_per_s"], "/s",
            ratio=ratio(t["completed_per_s"], calls["per_s"]), note=f"first POST to none queued or running; {db_note}"),
        Row("throughput", "calls", "latency", calls["p50_ms"], "ms", p99=calls["p99_ms"], note=errors),
        Row("throughput", "jobs", "accept latency", jobs["p50_ms"], "ms", p99=jobs["p99_ms"],
            ratio=ratio(jobs["p50_ms"], calls["p50_ms"]), note="ratio: / call latency"),
        Row("queued jobs", f"{q['n']:,} parked", "database (pages)", grow["pages_bytes"] / per, "B/job"),
        Row("queued jobs", f"{q['n']:,} parked", "database (db + wal files)", grow["files_bytes"] / per, "B/job"),
        Row("queued jobs", f"{q['n']:,} parked", "runner RSS", grow["rss"] / per * 10_000 / 2**20, "MiB/10k jobs",
            note=f"{q['before']['rss'] / 2**20:.0f} -> {q['after']['rss'] / 2**20:.0f} MiB"),
        Row("queued jobs", f"{q['n']:,} parked", "runner CPU", q["after"]["cpu"] * 100, "% core",
            ratio=ratio(q["after"]["cpu"], q["before"]["cpu"]), note=f"{q['before']['cpu'] * 100:.1f} % with none queued"),
        Row("queued jobs", "queue growing", "accepted/s", q["accept"]["per_s"], "/s",
            note=f"accept p50 {q['accept']['p50_ms']:.1f} ms, p99 {q['accept']['p99_ms']:.1f} ms"),
        Row("queued jobs", "then 1 noop job", "time to succeed", q["other_function_s"], "s", note=other),
        Row("streams", f"tokens n={s['n']} pause {s['pause_s']:g} s", "first chunk", first, "ms",
            p99=percentile(s["first_ms"], 0.99), ratio=first / whole, note="ratio: first chunk / whole stream"),
        Row("streams", f"tokens n={s['n']} pause {s['pause_s']:g} s", "whole stream", whole, "ms",
            p99=percentile(s["whole_ms"], 0.99), note=f"{s['count']} streams, JSON lines"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="300 jobs and calls, 5,000 queued jobs")
    parser.add_argument("--jobs", type=int, default=None, help="jobs and calls in the throughput test (default 2000)")
    parser.add_argument("--queued", type=int, default=None, help="jobs held in the queue (default 10000)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "jobs.json", metavar="PATH",
                        help="where to write every number (default bench/results/jobs.json)")
    args = parser.parse_args()
    n = args.jobs or (300 if args.quick else 2000)
    n_queued = args.queued or (5000 if args.quick else 10_000)
    started = time.perf_counter()
    with local_platform(extra_env=SAME_RAY) as platform:
        platform.deploy(HERE / "projects" / "jobs")
        with httpx.Client(base_url=platform.http_url, headers={"Authorization": f"Bearer {platform.key}"},
                          timeout=120) as client:
            print(f"throughput: {n} calls, then {n} jobs", flush=True)
            result: dict[str, Any] = {"throughput": throughput(platform, client, n)}
            print("streams: 20 calls of tokens", flush=True)
            result["streams"] = streams(client, 20)
            print(f"queued jobs: {n_queued} held behind one parked job", flush=True)
            result["queued"] = queued(platform, client, n_queued)
    table = rows(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"quick": args.quick, "threads": THREADS, "wall_s": time.perf_counter() - started,
                                     "results": result, "table": [row.as_json() for row in table]}, indent=1,
                                    default=str))
    print(f"\nfn jobs and streams, one platform ({'quick' if args.quick else 'full'} run); "
          f"'vs baseline' is the ratio the note names")
    print_table(table)
    print(f"\nevery number: {args.json}")


if __name__ == "__main__":
    main()
