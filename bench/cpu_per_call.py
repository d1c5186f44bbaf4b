"""CPU time per warm call, by process, for this checkout against a baseline: where a change's cost lands.

Run: ``python bench/cpu_per_call.py --baseline REV`` or ``--baseline-env FN_TRACE_SAMPLE=0`` (the same
checkout with other settings), ``[--rounds 2] [--seconds 10] [--connections 1]``. Each round measures
this checkout, then the baseline, each on a fresh platform on `fnctl up` defaults serving
bench/projects/warm's no-op: after a warm-up, the user and system CPU seconds of every process on the
machine are read, wrk posts to ``/noop``, and they are read again. The table gives, per role (the
no-op's replica, HAProxy, the control plane, the hub, Serve's controller, the rest of Ray; not wrk, which
has exited when the second reading is taken), the median
over rounds of its CPU microseconds per call, and the difference. On a machine where throughput varies
by tens of percent from one fresh platform to the next (bench/warm_vs.py), CPU per call moves less,
and names the process that pays.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
from pathlib import Path

import httpx
import psutil
from _procs import local_platform
from _wrk import ensure_wrk, run_wrk
from first_call import export
from warm_vs import SAME_RAY, setting

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "cpu_per_call.json"
# First match wins: a process's role by its command line.
ROLES = (
    ("ServeReplica:noop", "replica (the no-op)"),
    ("ServeReplica", "other replicas (gateways)"),
    ("ray::Hub", "hub"),
    ("fnplatform.control", "control plane"),
    ("haproxy", "HAProxy"),
    ("ServeController", "Serve controller"),
    ("ProxyActor", "Serve proxy actor"),
    ("ray", "rest of Ray (gcs, raylet, agents, workers)"),
)


def role_of(process: psutil.Process) -> str | None:
    try:
        command = " ".join(process.cmdline())
    except (psutil.Error, OSError):
        return None
    return next((role for needle, role in ROLES if needle in command), None)


def cpu_by_process() -> dict[tuple[str, int], float]:
    seconds: dict[tuple[str, int], float] = {}
    for process in psutil.process_iter():
        role = role_of(process)
        if role is None:
            continue
        try:
            times = process.cpu_times()
        except (psutil.Error, OSError):
            continue
        seconds[(role, process.pid)] = times.user + times.system
    return seconds


def measure(pythonpath: str | None, seconds: int, connections: int, env: dict[str, str]) -> dict[str, float]:
    extra = {**SAME_RAY, **env, **({"PYTHONPATH": pythonpath} if pythonpath else {})}
    with local_platform(extra_env=extra) as platform:
        platform.deploy(HERE / "projects" / "warm")
        url = f"{platform.http_url}/noop"
        answer = httpx.post(url, json={"x": 1}, headers={"Authorization": f"Bearer {platform.key}"}, timeout=60)
        if answer.status_code != 200 or answer.json() != {"x": 1}:
            raise RuntimeError(f"{url} answered {answer.status_code} {answer.text[:200]}")
        run_wrk(url, platform.key, 4, 3)  # warm-up, discarded
        before = cpu_by_process()
        result = run_wrk(url, platform.key, connections, seconds)
        after = cpu_by_process()
    calls = max(result["requests"], 1)
    per_call: dict[str, float] = {"requests/s": result["rps"], "p50 ms": result["p50_ms"]}
    for (role, pid), spent in after.items():  # a process started during the run counts from 0
        per_call[role] = per_call.get(role, 0.0) + (spent - before.get((role, pid), 0.0)) / calls * 1e6
    return per_call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default=None, help="git revision to compare with; default: this checkout")
    parser.add_argument("--baseline-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting of the baseline's platform only (repeatable), e.g. FN_TRACE_SAMPLE=0")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds (default 2)")
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=1, help="wrk connections (default 1)")
    args = parser.parse_args()
    baseline_env = dict(setting(parser, text) for text in args.baseline_env)
    if args.baseline is None and not baseline_env:
        parser.error("give --baseline REV, --baseline-env NAME=VALUE, or both")
    ensure_wrk()
    old = export(args.baseline) if args.baseline else None
    baseline_path = os.pathsep.join(str(old / p) for p in ("sdk", "cli", "platform")) if old else None
    label = " ".join([args.baseline or "this", *args.baseline_env])
    runs: dict[str, list[dict[str, float]]] = {"this": [], "baseline": []}
    try:
        for round_no in range(1, args.rounds + 1):
            for which, path, env in (("this", None, {}), ("baseline", baseline_path, baseline_env)):
                print(f"round {round_no}: {which}", flush=True)
                runs[which].append(measure(path, args.seconds, args.connections, env))
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    keys = ["requests/s", "p50 ms"] + [role for _, role in ROLES]
    rows = []
    for key in keys:
        this = statistics.median(run.get(key, 0.0) for run in runs["this"])
        base = statistics.median(run.get(key, 0.0) for run in runs["baseline"])
        rows.append({"measure": key, "this": this, "baseline": base, "difference": this - base})
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"baseline": label, "rounds": args.rounds, "seconds": args.seconds,
                                   "connections": args.connections, "runs": runs, "rows": rows}, indent=1))
    print(f"\n{'measure (CPU µs per call, medians)':<44}{'this':>10}{'baseline ' + label:>34}{'difference':>12}")
    for row in rows:
        print(f"{row['measure']:<44}{row['this']:>10.1f}{row['baseline']:>34.1f}{row['difference']:>+12.1f}")
    print(f"\n{args.connections} connection(s), {args.seconds} s per run, medians over {args.rounds} rounds; "
          f"every number: {RESULTS}")


if __name__ == "__main__":
    main()
