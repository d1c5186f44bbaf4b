"""The warm path of this checkout against an earlier revision, same run: what a change costs per call.

Run: ``python bench/warm_vs.py --baseline REV [--rounds 2] [--seconds 10]``, or the same checkout with
other settings as the baseline: ``python bench/warm_vs.py --baseline-env FN_TRACE_SAMPLE=0`` (traces off).
Each round measures this checkout, then REV (exported with ``git archive`` and put first on PYTHONPATH, as bench/first_call.py
does): a fresh platform on `fnctl up` defaults deploys bench/projects/warm, checks one answer, warms up,
then wrk posts to ``/noop`` over 1 connection and over 32. Rounds alternate A B A B so drift on the
machine falls on both; the table gives medians over rounds and the ratio this/baseline. Used for the
cost of the metrics each replica counts (docs/observability.md): ``--baseline`` the commit before them.
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

from _ab import HERE, ab_rounds, add_baseline_options, warm_noop
from _procs import local_platform
from _wrk import run_wrk

RESULTS = HERE / "results" / "warm_vs.json"


def measure(env: dict[str, str], seconds: int) -> dict[str, dict[str, float]]:
    with local_platform(extra_env=env) as platform:
        url, answer = warm_noop(platform)
        # what this platform does with traces: the answer's traceparent flag (an older revision sends none)
        traced = {"01": 1.0, "00": 0.0}.get(answer.headers.get("traceparent", "")[-2:], -1.0)
        return {"c1": run_wrk(url, platform.key, 1, seconds), "c32": run_wrk(url, platform.key, 32, seconds),
                "traced": {"sampled": traced}}


def _median(runs: list[dict[str, dict[str, float]]], conns: str, key: str) -> float:
    return statistics.median(r[conns][key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_baseline_options(parser)
    args = parser.parse_args()
    label, runs = ab_rounds(parser, args, lambda env: measure(env, args.seconds))
    rows: list[dict[str, Any]] = []
    for conns in ("c1", "c32"):
        for key, better in (("rps", "higher"), ("p50_ms", "lower")):
            this, base = _median(runs["this"], conns, key), _median(runs["baseline"], conns, key)
            rows.append({"connections": conns[1:], "measure": key, "this": this, "baseline": base,
                         "ratio": this / base if base else None, "better": better})
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"baseline": label, "rounds": args.rounds, "seconds": args.seconds,
                                   "runs": runs, "rows": rows}, indent=1))
    print(f"\n{'connections':>11}  {'measure':<8}{'this':>12}{'baseline ' + label:>34}{'this/baseline':>15}")
    for row in rows:
        ratio = f"{row['ratio']:.3f}" if row["ratio"] is not None else "-"
        print(f"{row['connections']:>11}  {row['measure']:<8}{row['this']:>12.2f}{row['baseline']:>34.2f}{ratio:>15}"
              f"  ({row['better']} is better)")
    for which in ("this", "baseline"):
        flags = {run["traced"]["sampled"] for run in runs[which]}
        print(f"{which}: " + ", ".join({1.0: "traces recorded", 0.0: "traces not recorded",
                                       -1.0: "no traceparent (no traces)"}[f] for f in sorted(flags)))
    print(f"\nmedians over {args.rounds} rounds; every number: {RESULTS}")


if __name__ == "__main__":
    main()
