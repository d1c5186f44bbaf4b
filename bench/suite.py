"""The benchmark suite: every scenario against its same-run baseline, one table, one JSON file.

Run: ``python bench/suite.py`` (3 repetitions), ``--quick`` (1 repetition, shorter wrk runs),
``--only SCENARIO`` (repeatable): warm, cold, burst, deploy, idle, composition. Each repetition first measures
the platform (one throwaway platform shared by warm/cold/burst/deploy/composition, one of its own for idle),
stops it, then measures the baselines (plain uvicorn, plain Ray Serve workers, one Ray at a time):
A B A B. Medians over repetitions; the table is printed at the end and everything is written to
bench/results/suite.json. Needs wrk (installed with apt-get when missing) and a machine where no
other Ray cluster runs (the suite waits while one does).
"""

from __future__ import annotations

import argparse
import os
import platform as host
import time
import traceback
from typing import Any

from _procs import LEFTOVERS, local_platform
from _report import Ctx, Row, Scenario, print_table, save
from _targets import check_targets, print_targets
from _wrk import ensure_wrk
from scenarios_flows import COMPOSITION
from scenarios_ops import DEPLOY, IDLE
from scenarios_scale import BURST_SCENARIO, COLD
from scenarios_warm import SCENARIO as WARM

SCENARIOS: list[Scenario] = [WARM, COLD, BURST_SCENARIO, DEPLOY, COMPOSITION, IDLE]


def _attempt(label: str, work: Any, *args: Any) -> dict[str, Any]:
    """Run one measurement; a failure is recorded (and shown in the table) instead of ending the suite."""
    print(f"[{time.strftime('%H:%M:%S')}] {label}", flush=True)
    try:
        result: dict[str, Any] = work(*args)
        return result
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - keep the other scenarios' numbers (fnctl raises SystemExit)
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {str(exc).strip()[-300:]}"}


def _platform_phase(group: list[Scenario], ctx: Ctx, rep: int, results: dict[str, Any]) -> None:
    names = ", ".join(s.name for s in group)
    try:
        with local_platform(extra_env={"FN_DEPLOY_TIMEOUT_S": "900"}) as platform:  # 100 functions on 2 cores
            for scenario in group:
                results[scenario.name]["platform"].append(
                    _attempt(f"rep {rep + 1}: platform, {scenario.name}", scenario.platform, platform, ctx))
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the platform failed to start or stop: record it, go on
        traceback.print_exc()
        for scenario in group:
            if len(results[scenario.name]["platform"]) <= rep:
                results[scenario.name]["platform"].append({"error": f"platform ({names}): {exc}"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 repetition, 5 s wrk runs, 100 sequential calls")
    parser.add_argument("--only", action="append", choices=[s.name for s in SCENARIOS], metavar="SCENARIO",
                        help="run only this scenario (repeatable): " + ", ".join(s.name for s in SCENARIOS))
    args = parser.parse_args()
    ctx = (Ctx(quick=True, reps=1, wrk_s=5, calls=100, idle_window_s=15) if args.quick
           else Ctx(quick=False, reps=3, wrk_s=10, calls=300, idle_window_s=30))
    selected = [s for s in SCENARIOS if not args.only or s.name in args.only]
    ensure_wrk()
    started = time.perf_counter()
    results: dict[str, Any] = {s.name: {"platform": [], "baseline": []} for s in selected}
    for rep in range(ctx.reps):
        shared = [s for s in selected if not s.own_platform]
        if shared:
            _platform_phase(shared, ctx, rep, results)
        for scenario in (s for s in selected if s.own_platform):
            _platform_phase([scenario], ctx, rep, results)
        for scenario in selected:
            results[scenario.name]["baseline"].append(
                _attempt(f"rep {rep + 1}: baseline, {scenario.name}", scenario.baseline, ctx))
    rows: list[Row] = []
    for scenario in selected:
        plat, base = results[scenario.name]["platform"], results[scenario.name]["baseline"]
        try:
            scenario_rows = scenario.rows(plat, base)
        except Exception as exc:  # noqa: BLE001 - a scenario with no numbers still gets its row
            scenario_rows = [Row(scenario.name, "-", "-", None, "", note=f"no result: {exc}")]
        errors = [r["error"] for r in plat + base if isinstance(r, dict) and "error" in r]
        if errors:
            scenario_rows.append(Row(scenario.name, "errors", f"{len(errors)} of {len(plat) + len(base)} runs", None,
                                     "", note=errors[0][:160]))
        rows += scenario_rows
    wall = time.perf_counter() - started
    targets = check_targets(rows)
    save("suite", {
        "config": {**ctx.__dict__, "scenarios": [s.name for s in selected], "cpus": os.cpu_count(),
                   "python": host.python_version(), "host": host.node()},
        "wall_s": wall, "leftover_processes": LEFTOVERS, "results": results, "table": [r.as_json() for r in rows],
        "targets": targets,
    })
    print()
    print(f"fn benchmark suite: {ctx.reps} repetition(s), medians; ratio = median / the scenario's baseline "
          f"({'quick' if ctx.quick else 'full'} run, {os.cpu_count()} cores, {wall / 60:.1f} min)")
    print_table(rows)
    print_targets(targets)
    if LEFTOVERS:
        print(f"\nwarning: {len(LEFTOVERS)} processes were left behind by a stopped cluster (killed): {LEFTOVERS[:3]}")
    print("\nall numbers: bench/results/suite.json")


if __name__ == "__main__":
    main()
