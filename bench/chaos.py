"""The chaos suite: steady load on two functions, a flow and jobs while, one at a time, a fault strikes.

Run: ``python bench/chaos.py`` (every fault), ``--quick`` (shorter phases; replica, hub and flow-run only),
``--only FAULT,...``, ``--json PATH`` (besides bench/results/chaos.json), ``--no-wait`` (do not wait while
another Ray cluster runs on this machine: nothing here is a speed measurement that it would skew).

It starts moto's S3 server (the store) and a throwaway platform (``fnctl up`` on a fresh FN_HOME and free
ports, SQLite registry), deploys its own project (``echo``, ``slow-add``, and the flow ``chaos-flow`` over
them), then runs HTTP callers (httpx), SDK callers (``fn.ref(...).call``), a flow driver (start a run, give
its two inputs, follow it to its end) and a job driver (spawn a slow-add job with an Idempotency-Key of its
own, sending the POST again with that key after no answer or a 502/503/504 for up to 30 s, then follow the
job to its end) at about 18 requests/s in all, for the whole run. Each fault's
phase: steady load, the fault, then load until 5 s in which every request succeeded (at most 60 s; 240 s
for the control plane). The faults, in this order:

  replica        SIGKILL the process of the echo replica (ray::ServeReplica:echo:echo)
  hub            SIGKILL the hub actor's process (ray::Hub)
  flow-run       SIGKILL every run host (ray::FlowRuns) once a run has one of its two inputs, then give the other
  registry       hold BEGIN EXCLUSIVE on FN_HOME/registry.db for 10 s
  store          SIGSTOP the S3 server for 10 s
  control-plane  SIGKILL the control plane, then ``fnctl up`` on the same ports (locally it owns Ray: the
                 whole node restarts)

Per fault: requests sent (flow starts, inputs and job spawns included, status polls not; a spawn's POSTs sent
again count once), succeeded, failed with a
clean fn error (JSON with type, message and request id; 429/502/503/504), refused (connection refused:
nothing ran, the caller knows at once), cut (the connection closed mid-request; target 0 except when the
fault kills the ingress itself: the local control plane owns Ray), failed otherwise (target 0), hung (no
answer within 30 s, target 0);
flow runs given every input, finished with the right output (target: all), failed, wrong, lost (never
finished within the run plus a grace period; target 0); jobs accepted (202, or 200 for a POST sent again),
succeeded with the right result (target: all, however often the platform ran them), failed, wrong, lost
(never ended within the run plus the grace period; target 0); and the time from the fault's end (the kill,
or the lock or stop released) to the first of 5 s of only successes. Requests, runs and jobs belong to the
phase in which they were sent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _chaos_faults import FAULTS, QUICK, Fault, FaultError, MotoServer, Target
from _chaos_load import PROJECT, Load, Rates
from _chaos_outcomes import INGRESS_KILLED, KINDS, FaultRow, fill, recovery_s, table
from _procs import LEFTOVERS, local_platform
from _report import save


@dataclass(frozen=True)
class Timing:
    warmup_s: float  # load before the first phase (not counted)
    steady_s: float  # load before each fault
    recovery_cap: float  # at most this share of a fault's max_recovery_s
    window_s: float  # recovered: this long with only successes
    hang_s: float  # a client's timeout: past it a request is "hung"
    grace_s: float  # after the load stops, how long runs and jobs may take to end before they count as lost


FULL = Timing(warmup_s=5, steady_s=10, recovery_cap=1.0, window_s=5, hang_s=30, grace_s=60)
QUICK_TIMING = Timing(warmup_s=3, steady_s=5, recovery_cap=0.75, window_s=5, hang_s=30, grace_s=30)


def await_recovery(load: Load, fault_end: float, max_s: float, window_s: float) -> float | None:
    """Seconds from the fault's end to the first of *window_s* s of only successes; None: not within *max_s*."""
    deadline = fault_end + max_s
    while True:
        outcomes, in_flight = load.snapshot()
        found = recovery_s(outcomes, fault_end, time.monotonic(), in_flight, window_s)
        if found is not None or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def run_fault(fault: Fault, target: Target, timing: Timing) -> FaultRow:
    row = FaultRow(fault.name, start=time.monotonic())
    print(f"[{time.strftime('%H:%M:%S')}] {fault.name}: {timing.steady_s:g} s of steady load", flush=True)
    time.sleep(timing.steady_s)
    try:
        injected = fault.inject(target)
        row.fault_at, row.fault_end, row.note = injected.at, injected.end, injected.note
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the other faults still run; the row says what failed
        traceback.print_exc()
        row.error = str(exc) if isinstance(exc, FaultError) else f"{type(exc).__name__}: {exc}"
        row.fault_at = row.fault_end = time.monotonic()
    print(f"[{time.strftime('%H:%M:%S')}] {fault.name}: {row.note or row.error}; waiting for recovery", flush=True)
    row.recovery_s = await_recovery(target.load, row.fault_end, fault.max_recovery_s * timing.recovery_cap,
                                    timing.window_s)
    print(f"[{time.strftime('%H:%M:%S')}] {fault.name}: " + (
        f"recovered {row.recovery_s:.1f} s after the fault" if row.recovery_s is not None else "not recovered"), flush=True)
    return row


def parse_faults(only: str | None, quick: bool) -> list[Fault]:
    by_name = {f.name: f for f in FAULTS}
    if not only:
        return [f for f in FAULTS if not quick or f.name in QUICK]
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SystemExit(f"--only: unknown fault(s) {', '.join(unknown)}; choose from {', '.join(by_name)}")
    return [f for f in FAULTS if f.name in names]  # always in the suite's order: control-plane last


def missed(rows: list[FaultRow]) -> list[str]:
    """The target cells that are not met: failed otherwise, hung and lost 0, every run and job right; cut 0
    unless the fault kills the ingress itself."""
    out = []
    for r in rows:
        cut = 0 if r.fault in INGRESS_KILLED else r.requests.get("cut", 0)
        for cell, value in (("failed otherwise", r.requests.get("other", 0)), ("cut", cut), ("hung", r.requests.get("hung", 0)),
                            ("runs lost", r.flows.get("lost", 0)),
                            ("runs not right", r.flows.get("runs", 0) - r.flows.get("right", 0)),
                            ("jobs lost", r.jobs.get("lost", 0)),
                            ("jobs not right", r.jobs.get("accepted", 0) - r.jobs.get("right", 0))):
            if value:
                out.append(f"{r.fault}: {cell} {value}")
        if r.error:
            out.append(f"{r.fault}: not injected ({r.error})")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter phases; faults replica, hub, flow-run (about 3 min)")
    parser.add_argument("--only", metavar="FAULT,...", help="these faults only: " + ", ".join(f.name for f in FAULTS))
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument("--no-wait", action="store_true", help="start even while another Ray cluster runs here")
    args = parser.parse_args()
    faults = parse_faults(args.only, args.quick)
    timing = QUICK_TIMING if args.quick else FULL
    rates = Rates()
    began = time.monotonic()
    rows: list[FaultRow] = []
    with MotoServer() as moto, local_platform(extra_env=moto.env(), exclusive=not args.no_wait) as platform:
        assert platform.home is not None
        project = Path(tempfile.mkdtemp(prefix="fnchaos", dir="/tmp"))
        try:
            (project / "chaos_target.py").write_text(PROJECT)
            print(f"[{time.strftime('%H:%M:%S')}] deploying echo, slow-add and chaos-flow", flush=True)
            platform.deploy(project)
        finally:
            shutil.rmtree(project, ignore_errors=True)
        # The SDK callers find the platform as a user's shell would: through FN_HOME's credentials file.
        for name in ("FN_API_URL", "FN_API_KEY", "FN_HTTP_URL"):
            os.environ.pop(name, None)
        os.environ["FN_HOME"] = str(platform.home)
        load = Load(platform.http_url, platform.key, timing.hang_s, rates)
        load.start()
        time.sleep(timing.warmup_s)
        target = Target(platform, load, moto)
        for fault in faults:
            rows.append(run_fault(fault, target, timing))
            if len(rows) > 1:
                rows[-2].end = rows[-1].start
        warmup = FaultRow("warmup", start=began, end=rows[0].start if rows else time.monotonic())
        if rows:
            rows[-1].end = time.monotonic()
        print(f"[{time.strftime('%H:%M:%S')}] stopping the load; waiting up to {timing.grace_s:g} s for runs and jobs",
              flush=True)
        load.stop()
        load.drain(timing.grace_s)
    for row in [warmup, *rows]:
        fill(row, load.outcomes, load.runs, load.jobs)
    wall = time.monotonic() - began
    results: dict[str, Any] = {
        "config": {"quick": args.quick, "faults": [f.name for f in faults], "timing": asdict(timing),
                   "rates": asdict(rates), "cpus": os.cpu_count(), "python": host.python_version(), "host": host.node()},
        "wall_s": wall, "warmup": warmup.as_json(), "faults": [r.as_json() for r in rows],
        "runs_not_right": [{"run": r.run_id, "verdict": r.verdict, "status": r.status, "output": r.output,
                            "expected": r.expected, "error": r.error, "victim": r.victim}
                           for r in load.runs if r.verdict != "right"],
        "jobs_not_right": [{"job": j.job_id, "verdict": j.verdict, "status": j.status, "result": j.result,
                            "expected": j.expected, "error": j.error, "attempts": j.attempts}
                           for j in load.jobs if j.verdict != "right"],
        "missed": missed(rows), "leftover_processes": LEFTOVERS,
    }
    save("chaos", results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(f"\nfn chaos suite ({'quick' if args.quick else 'full'} run, {os.cpu_count()} cores, {wall / 60:.1f} min); "
          f"requests by outcome ({', '.join(KINDS)}), flow runs and jobs by verdict:\n")
    print(table(rows))
    print("\ntargets: " + ("all met" if not results["missed"] else "MISSED: " + "; ".join(results["missed"])))
    print("all numbers: bench/results/chaos.json" + (f" and {args.json}" if args.json else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
