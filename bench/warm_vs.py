"""The warm path of this checkout against an earlier revision, same run: what a change costs per call.

Run: ``python bench/warm_vs.py --baseline REV [--rounds 2] [--seconds 10]``. Each round measures this
checkout, then REV (exported with ``git archive`` and put first on PYTHONPATH, as bench/first_call.py
does): a fresh platform on `fnctl up` defaults deploys bench/projects/warm, checks one answer, warms up,
then wrk posts to ``/noop`` over 1 connection and over 32. Rounds alternate A B A B so drift on the
machine falls on both; the table gives medians over rounds and the ratio this/baseline. Used for the
cost of the metrics each replica counts (docs/observability.md): ``--baseline`` the commit before them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
from pathlib import Path
from typing import Any

import httpx
from _procs import local_platform
from _wrk import ensure_wrk, run_wrk
from first_call import export

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "warm_vs.json"


# Both versions run Ray as `fnctl up` now starts it (control/local.py), so only the code differs.
SAME_RAY = {"RAY_enable_metrics_collection": "0"}


def measure(pythonpath: str | None, seconds: int) -> dict[str, dict[str, float]]:
    with local_platform(extra_env={**SAME_RAY, **({"PYTHONPATH": pythonpath} if pythonpath else {})}) as platform:
        platform.deploy(HERE / "projects" / "warm")
        url = f"{platform.http_url}/noop"
        answer = httpx.post(url, json={"x": 1}, headers={"Authorization": f"Bearer {platform.key}"}, timeout=60)
        if answer.status_code != 200 or answer.json() != {"x": 1}:
            raise RuntimeError(f"{url} answered {answer.status_code} {answer.text[:200]}")
        run_wrk(url, platform.key, 4, 3)  # warm-up, discarded
        return {"c1": run_wrk(url, platform.key, 1, seconds), "c32": run_wrk(url, platform.key, 32, seconds)}


def _median(runs: list[dict[str, dict[str, float]]], conns: str, key: str) -> float:
    return statistics.median(r[conns][key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="git revision to compare with (e.g. the commit before a change)")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds (default 2)")
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run (default 10)")
    args = parser.parse_args()
    ensure_wrk()
    old = export(args.baseline)
    baseline_path = os.pathsep.join(str(old / p) for p in ("sdk", "cli", "platform"))
    runs: dict[str, list[dict[str, dict[str, float]]]] = {"this": [], "baseline": []}
    try:
        for round_no in range(1, args.rounds + 1):
            for label, path in (("this", None), ("baseline", baseline_path)):
                print(f"round {round_no}: {label}", flush=True)
                runs[label].append(measure(path, args.seconds))
    finally:
        shutil.rmtree(old, ignore_errors=True)
    rows: list[dict[str, Any]] = []
    for conns in ("c1", "c32"):
        for key, better in (("rps", "higher"), ("p50_ms", "lower")):
            this, base = _median(runs["this"], conns, key), _median(runs["baseline"], conns, key)
            rows.append({"connections": conns[1:], "measure": key, "this": this, "baseline": base,
                         "ratio": this / base if base else None, "better": better})
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"baseline": args.baseline, "rounds": args.rounds, "seconds": args.seconds,
                                   "runs": runs, "rows": rows}, indent=1))
    print(f"\n{'connections':>11}  {'measure':<8}{'this':>12}{'baseline ' + args.baseline:>22}{'this/baseline':>15}")
    for row in rows:
        ratio = f"{row['ratio']:.3f}" if row["ratio"] is not None else "-"
        print(f"{row['connections']:>11}  {row['measure']:<8}{row['this']:>12.2f}{row['baseline']:>22.2f}{ratio:>15}"
              f"  ({row['better']} is better)")
    print(f"\nmedians over {args.rounds} rounds; every number: {RESULTS}")


if __name__ == "__main__":
    main()
