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
import statistics

import psutil
from _ab import HERE, ab_rounds, add_baseline_options, warm_noop
from _procs import local_platform
from _wrk import run_wrk

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


def measure(env: dict[str, str], seconds: int, connections: int) -> dict[str, float]:
    with local_platform(extra_env=env) as platform:
        url, _ = warm_noop(platform)
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
    add_baseline_options(parser)
    parser.add_argument("--connections", type=int, default=1, help="wrk connections (default 1)")
    args = parser.parse_args()
    label, runs = ab_rounds(parser, args, lambda env: measure(env, args.seconds, args.connections))
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
