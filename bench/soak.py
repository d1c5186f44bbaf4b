"""The soak: mixed load for a long while, sampling the memory of every platform process.

Run: ``python bench/soak.py`` (30 minutes), ``--minutes 3`` (a smoke run), ``--json PATH`` (besides
bench/results/soak.json), ``--no-wait`` (do not wait while another Ray cluster runs on this machine).

It starts a throwaway platform (``fnctl up`` on a fresh FN_HOME and free ports, the local store and
registry) and deploys its own project: the chaos suite's ``echo``, ``slow-add`` and ``chaos-flow`` (one
replica each, always), and ``nap`` (scales to zero after 20 s idle). For the whole run: HTTP and SDK
callers of echo and slow-add (10 requests/s in all) and a flow run every 10 s (bench/_chaos_load.py);
a burst of calls to nap, then a gap long enough for it to scale to zero, again and again; and a
redeploy of the project with one constant changed (every function gets a new version) every 5 minutes.

Every 15 s it samples the RSS of every process of the platform (the control plane and everything under
it: Ray's GCS, raylet and agents, Serve's controller and proxy, HAProxy, the hub, replicas, run hosts),
summed per role. Per role: processes, RSS at start, end and max, and the least-squares slope over the
last two thirds of the run (the first is warm-up) in MiB/hour; of the RSS per process ("/proc") when the
role's process count changed within that window (a redeploy's new replicas beside the old). A role GROWS
when its slope exceeds both 5 % of its median per hour and 20 MiB/hour; a role absent from some sample
(nap's replica) comes and goes and gets no slope. Also: calls by outcome (as the chaos suite classifies them), flow runs
by verdict, deploys and the versions they made, and nap's bursts that found it at zero and were answered
by a new replica (cold starts).
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from _chaos_load import PROJECT, Load, Rates
from _chaos_outcomes import KINDS, OK, FaultRow, fill
from _procs import LEFTOVERS, LocalPlatform, local_platform
from _report import save
from _soak_memory import Sample, Threshold, add, debug_growth, gcs_debug_state, growing, role, summarize, table

NAP_IDLE_S = 20  # nap's idle_timeout_s
NAP = f'''

@fn.function(min_replicas=0, idle_timeout_s={NAP_IDLE_S}, timeout_s=60)
def nap(x: int) -> dict[str, int]:
    import os

    return {{"x": x, "pid": os.getpid()}}
'''
RATES = Rates(http_echo=3.0, http_slow_add=2.0, sdk_echo=3.0, sdk_slow_add=2.0, flow_runs=0.1)
SAMPLE_S = 15.0
PROGRESS_S = 60.0
BURST_CALLS = 5
GAP_S = NAP_IDLE_S + 30.0  # idle_timeout_s, then Serve's look-back and the replica's shutdown
COLD_S = 1.0  # a first call slower than this waited for a replica to start
HANG_S = 30.0
GRACE_S = 60.0


def write_project(folder: Path, revision: int) -> None:
    # The constant changes the bundle: every function in it gets a new version on the next deploy.
    (folder / "soak_target.py").write_text(PROJECT + NAP + f"\nSOAK_REVISION = {revision}\n")


def measure(platform: LocalPlatform) -> dict[str, tuple[int, float]]:
    roles: dict[str, tuple[int, float]] = {}
    for proc in platform.processes():
        try:
            cmdline, rss = proc.cmdline(), proc.memory_info().rss
        except psutil.Error:  # gone (a replica scaled down) or a zombie since the tree was listed
            continue
        if cmdline:
            add(roles, role(cmdline), rss)
    return roles


class Redeployer(threading.Thread):
    """``fnctl deploy`` with a new revision every *every_s*; each deploy's time and the versions it made."""

    def __init__(self, platform: LocalPlatform, folder: Path, every_s: float, began: float) -> None:
        super().__init__(name="soak redeployer", daemon=True)
        self.platform, self.folder, self.every_s, self.began = platform, folder, every_s, began
        self.deploys: list[dict[str, Any]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        revision = 0
        while not self.stopping.wait(self.every_s):
            revision += 1
            write_project(self.folder, revision)
            at = time.monotonic()
            record: dict[str, Any] = {"revision": revision, "at_s": round(at - self.began, 1)}
            try:
                self.platform.deploy(self.folder)
                rows = self.platform.api.get("/v1/functions").json()
                record["versions"] = {r["name"]: r["version"] for r in rows}
            except (SystemExit, httpx.HTTPError, ValueError) as exc:  # fnctl.main failed: SystemExit (_procs)
                record["error"] = str(exc)[-600:]
            record["wall_s"] = round(time.monotonic() - at, 1)
            self.deploys.append(record)
            said = (f"FAILED: {(record['error'].strip().splitlines() or ['?'])[-1]}" if "error" in record
                    else f"versions {record['versions']}")
            print(f"[{time.strftime('%H:%M:%S')}] redeploy {revision} ({record['wall_s']} s): {said}", flush=True)


@dataclass
class Burst:
    at_s: float
    at_zero: bool  # the platform said nap had no running replica just before
    first_s: float  # the first call's latency
    ok: int
    pids: list[int]
    new_replica: bool  # answered by no process that answered the burst before: a replica started for it


class Bursts(threading.Thread):
    """Calls to nap in bursts, each after a gap long enough for it to scale to zero."""

    def __init__(self, load: Load, platform: LocalPlatform, began: float) -> None:
        super().__init__(name="soak bursts", daemon=True)
        self.load, self.platform, self.began = load, platform, began
        self.bursts: list[Burst] = []
        self.stopping = threading.Event()

    def _running(self) -> int | None:
        try:
            return self.platform.running("nap")
        except (httpx.HTTPError, ValueError, KeyError, StopIteration):
            return None

    def _call(self, n: int, pids: list[int]) -> tuple[str, float]:
        def check(response: httpx.Response) -> bool:
            body = response.json()
            if isinstance(body, dict) and body.get("x") == n and isinstance(body.get("pid"), int):
                pids.append(body["pid"])
                return True
            return False

        start = time.monotonic()
        kind = self.load.timed("http nap", lambda: self.load.http("POST", "nap", check, json={"x": n}))
        return kind, time.monotonic() - start

    def run(self) -> None:
        previous: set[int] = set()
        n = 0
        while not self.stopping.is_set():
            at, running = time.monotonic(), self._running()
            pids: list[int] = []
            kinds, latencies = [], []
            for _ in range(BURST_CALLS):
                n += 1
                kind, latency = self._call(n, pids)
                kinds.append(kind)
                latencies.append(latency)
            self.bursts.append(Burst(round(at - self.began, 1), running == 0, round(latencies[0], 3),
                                     kinds.count(OK), sorted(set(pids)), bool(pids) and not set(pids) & previous))
            previous = set(pids) or previous
            self.stopping.wait(GAP_S)

    def counts(self) -> dict[str, int]:
        b = self.bursts
        return {"bursts": len(b), "at_zero": sum(x.at_zero for x in b), "cold_starts": sum(x.new_replica for x in b),
                "slow_first_call": sum(x.first_s > COLD_S for x in b), "calls_ok": sum(x.ok for x in b)}


def calls_by_caller(row: FaultRow) -> str:
    cells = [("caller", "sent", *KINDS)] + [(c, *(str(v.get(k, 0)) for k in ("sent", *KINDS)))
                                           for c, v in sorted(row.by_caller.items())]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) if i == 0 else c[i].rjust(widths[i]) for i in range(len(c)))
                     for c in cells)


def progress(began: float, load: Load, bursts: Bursts, redeployer: Redeployer, sample: Sample) -> None:
    outcomes, _ = load.snapshot()
    ok = sum(o.kind == OK for o in outcomes)
    procs, mib = sample.total()
    print(f"[{time.strftime('%H:%M:%S')}] {(time.monotonic() - began) / 60:5.1f} min: {len(outcomes)} requests "
          f"({len(outcomes) - ok} not ok), {len(load.runs)} flow runs, {len(redeployer.deploys)} redeploys, "
          f"{bursts.counts()['cold_starts']} cold starts; {procs} platform processes, {mib:,.0f} MiB RSS", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the load runs (default 30; 3 for a smoke run)")
    parser.add_argument("--deploy-every", type=float, default=300.0, metavar="S",
                        help="seconds between redeploys (default 300; at most a third of the run)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument("--no-wait", action="store_true", help="start even while another Ray cluster runs here")
    args = parser.parse_args()
    if args.minutes <= 0:
        parser.error(f"--minutes must be > 0, got {args.minutes:g}")
    duration = args.minutes * 60
    deploy_every = min(args.deploy_every, duration / 3)
    samples: list[Sample] = []
    folder = Path(tempfile.mkdtemp(prefix="fnsoak", dir="/tmp"))
    try:
        with local_platform(exclusive=not args.no_wait) as platform:
            assert platform.home is not None
            write_project(folder, 0)
            print(f"[{time.strftime('%H:%M:%S')}] deploying echo, slow-add, nap and chaos-flow", flush=True)
            platform.deploy(folder)
            # The SDK callers find the platform as a user's shell would: through FN_HOME's credentials file.
            for name in ("FN_API_URL", "FN_API_KEY", "FN_HTTP_URL"):
                os.environ.pop(name, None)
            os.environ["FN_HOME"] = str(platform.home)
            load = Load(platform.http_url, platform.key, HANG_S, RATES)
            began = time.monotonic()
            bursts, redeployer = Bursts(load, platform, began), Redeployer(platform, folder, deploy_every, began)
            load.start()
            bursts.start()
            redeployer.start()
            next_progress = began + PROGRESS_S
            gcs_first: str | None = None
            while True:
                now = time.monotonic()
                samples.append(Sample(now - began, measure(platform)))
                if gcs_first is None and now - began >= duration / 3:  # where the slopes' window starts
                    gcs_first = gcs_debug_state(platform.processes())
                if now >= next_progress:
                    progress(began, load, bursts, redeployer, samples[-1])
                    next_progress += PROGRESS_S
                if now - began >= duration:
                    break
                time.sleep(max(0.0, min(began + len(samples) * SAMPLE_S, began + duration) - time.monotonic()))
            gcs_last = gcs_debug_state(platform.processes())
            print(f"[{time.strftime('%H:%M:%S')}] stopping the load; waiting up to {GRACE_S:g} s for runs", flush=True)
            end = time.monotonic()
            bursts.stopping.set()
            redeployer.stopping.set()
            load.stop()
            bursts.join(timeout=BURST_CALLS * HANG_S + 30)
            redeployer.join(timeout=600)  # a deploy under way finishes before the platform goes down
            load.drain(GRACE_S)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    # The samples first, before anything that could fail on them: an hour's run is not lost to a report's bug.
    save("soak-samples", {"samples": [{"t_s": round(s.t_s, 1), "roles": s.roles} for s in samples],
                          "gcs_debug_state": {"window_start": gcs_first, "end": gcs_last}})
    row = FaultRow("soak", start=began, end=float("inf"))  # every request the load sent, to its last burst
    fill(row, load.outcomes, load.runs, load.jobs)
    roles = summarize(samples, Threshold())
    results: dict[str, Any] = {
        "config": {"minutes": args.minutes, "deploy_every_s": deploy_every, "sample_s": SAMPLE_S, "rates": asdict(RATES),
                   "nap_idle_timeout_s": NAP_IDLE_S, "gap_s": GAP_S, "threshold": asdict(Threshold()),
                   "cpus": os.cpu_count(), "python": host.python_version(), "host": host.node()},
        "wall_s": end - began, "requests": row.requests, "by_caller": row.by_caller, "examples": row.examples,
        "flows": row.flows, "jobs": row.jobs, "deploys": redeployer.deploys, "bursts": bursts.counts(),
        "burst_log": [asdict(b) for b in bursts.bursts], "memory": [r.as_json() for r in roles],
        "growing": growing(roles), "samples": [{"t_s": round(s.t_s, 1), "roles": s.roles} for s in samples],
        "leftover_processes": LEFTOVERS,
        "gcs_debug_state": {"window_start": gcs_first, "end": gcs_last},
        "gcs_debug_growth": debug_growth(gcs_first, gcs_last) if gcs_first and gcs_last else None,
    }
    save("soak", results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    failed = [d for d in redeployer.deploys if "error" in d]
    print(f"\nfn soak ({(end - began) / 60:.1f} min, {os.cpu_count()} cores, {len(samples)} samples every {SAMPLE_S:g} s); "
          f"RSS per role, slope over the last two thirds:\n")
    print(table(roles))
    print("\ncalls by outcome:\n" + calls_by_caller(row))
    f = row.flows
    print(f"\nflow runs: {f['runs']} given every input; right {f['right']}, failed {f['failed']}, wrong {f['wrong']}, "
          f"lost {f['lost']}")
    j = row.jobs
    print(f"jobs: {j['accepted']} accepted; " + ", ".join(f"{k} {v}" for k, v in j.items() if k != "accepted"))
    print(f"redeploys: {len(redeployer.deploys) - len(failed)} done, {len(failed)} failed; versions now "
          f"{redeployer.deploys[-1].get('versions') if redeployer.deploys else '-'}")
    b = bursts.counts()
    print(f"nap: {b['bursts']} bursts, {b['at_zero']} found it at zero, {b['cold_starts']} answered by a new replica "
          f"(cold starts), {b['slow_first_call']} with a first call over {COLD_S:g} s")
    if results["gcs_debug_growth"]:
        print("\nGCS counters that grew over the slopes' window (debug_state_gcs.txt):\n  "
              + "\n  ".join(results["gcs_debug_growth"]))
    print("\nmemory: " + ("no role grows" if not results["growing"] else "GROWS: " + "; ".join(results["growing"])))
    print("all numbers: bench/results/soak.json" + (f" and {args.json}" if args.json else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
