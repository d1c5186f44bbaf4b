"""What a traffic split and a shadow cost on the warm path, against the same function with one version, same run.

Run: ``python bench/versions.py [--rounds 2] [--seconds 10]``. One fresh platform on `fnctl up` defaults deploys
bench/projects/warm's no-op twice (the second copy differs by a comment: a new version, the same code), then
in each round wrk posts to ``/noop`` over 1 and 32 connections in three configurations, in turn:

- **one version**: no split, no shadow (every function's case; what the change must not slow down);
- **split 50/50**: half the calls are drawn for the other version and passed on by the active replica;
- **shadow 100 %**: every call is answered by the active version and copied to the other one afterwards.

The table gives medians over rounds and each configuration's ratio to "one version". The cost of the change on
a function with one version, against the revision before it, is bench/warm_vs.py's: ``--baseline REV``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _ab import HERE, SAME_RAY, warm_noop
from _procs import LocalPlatform, local_platform
from _wrk import ensure_wrk, run_wrk

RESULTS = HERE / "results" / "versions.json"
CONFIGS = ("one version", "split 50/50", "shadow 100%")


def _traffic(platform: LocalPlatform, body: dict[str, Any]) -> None:
    response = platform.api.put("/v1/functions/noop/traffic", json=body, timeout=300)
    if response.status_code != 200:
        raise SystemExit(f"PUT /v1/functions/noop/traffic {body}: {response.status_code} {response.text[:300]}")
    time.sleep(3)  # the replicas re-read the table at most every 2 s


def _second_version(folder: Path) -> Path:
    copy = folder / "warm"
    shutil.copytree(HERE / "projects" / "warm", copy)
    with (copy / "warm.py").open("a") as source:
        source.write("\n# a second version of the same code (bench/versions.py)\n")
    return copy


def measure(rounds: int, seconds: int) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {config: [] for config in CONFIGS}
    with local_platform(extra_env=SAME_RAY) as platform, tempfile.TemporaryDirectory() as folder:
        url, _ = warm_noop(platform)  # version 1
        platform.deploy(_second_version(Path(folder)))  # version 2, active
        bodies = {"one version": {"split": {"2": 100}}, "split 50/50": {"split": {"1": 50, "2": 50}},
                  "shadow 100%": {"shadow_version": 1, "shadow_percent": 100}}
        for round_no in range(1, rounds + 1):
            for config in CONFIGS:
                print(f"round {round_no}: {config}", flush=True)
                _traffic(platform, {"stop_shadow": True})
                _traffic(platform, bodies[config])
                run_wrk(url, platform.key, 4, 3)  # warm-up, discarded (the other version's replica starts)
                runs[config].append({"c1": run_wrk(url, platform.key, 1, seconds),
                                     "c32": run_wrk(url, platform.key, 32, seconds)})
        shadows = platform.api.get("/v1/functions/noop/shadow", params={"limit": 5000}).json()
        runs["shadow report"] = [{"calls": shadows["calls"], "agreement": shadows["agreement"]}]
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    ensure_wrk()
    runs = measure(args.rounds, args.seconds)
    rows = []
    for conns in ("c1", "c32"):
        base = {key: statistics.median(r[conns][key] for r in runs["one version"]) for key in ("rps", "p50_ms")}
        for config in CONFIGS:
            for key in ("rps", "p50_ms"):
                value = statistics.median(r[conns][key] for r in runs[config])
                rows.append({"connections": conns[1:], "config": config, "measure": key, "value": value,
                             "ratio": value / base[key] if base[key] else None})
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"rounds": args.rounds, "seconds": args.seconds, "runs": runs, "rows": rows},
                                  indent=1))
    print(f"\n{'connections':>11}  {'configuration':<14}{'measure':<8}{'value':>10}{'/ one version':>15}")
    for row in rows:
        ratio = f"{row['ratio']:.3f}" if row["ratio"] is not None else "-"
        print(f"{row['connections']:>11}  {row['config']:<14}{row['measure']:<8}{row['value']:>10.2f}{ratio:>15}")
    report = runs["shadow report"][0]
    print(f"\nshadow report after the run: {report['calls']} calls compared, agreement {report['agreement']}")
    print(f"medians over {args.rounds} rounds; every number: {RESULTS}")


if __name__ == "__main__":
    main()
