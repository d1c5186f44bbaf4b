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


def measure(pythonpath: str | None, seconds: int, env: dict[str, str] | None = None) -> dict[str, dict[str, float]]:
    with local_platform(extra_env={**SAME_RAY, **(env or {}), **({"PYTHONPATH": pythonpath} if pythonpath else {})}) as platform:
        platform.deploy(HERE / "projects" / "warm")
        url = f"{platform.http_url}/noop"
        answer = httpx.post(url, json={"x": 1}, headers={"Authorization": f"Bearer {platform.key}"}, timeout=60)
        if answer.status_code != 200 or answer.json() != {"x": 1}:
            raise RuntimeError(f"{url} answered {answer.status_code} {answer.text[:200]}")
        # what this platform does with traces: the answer's traceparent flag (an older revision sends none)
        flag = answer.headers.get("traceparent", "")[-2:]
        traced = {"01": 1.0, "00": 0.0}.get(flag, -1.0)
        run_wrk(url, platform.key, 4, 3)  # warm-up, discarded
        return {"c1": run_wrk(url, platform.key, 1, seconds), "c32": run_wrk(url, platform.key, 32, seconds),
                "traced": {"sampled": traced}}


def _median(runs: list[dict[str, dict[str, float]]], conns: str, key: str) -> float:
    return statistics.median(r[conns][key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default=None,
                        help="git revision to compare with (e.g. the commit before a change); default: this checkout")
    parser.add_argument("--baseline-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting of the baseline's platform only (repeatable), e.g. FN_TRACE_SAMPLE=0")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds (default 2)")
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run (default 10)")
    args = parser.parse_args()
    baseline_env = dict(setting(parser, text) for text in args.baseline_env)
    if args.baseline is None and not baseline_env:
        parser.error("give --baseline REV, --baseline-env NAME=VALUE, or both")
    ensure_wrk()
    old = export(args.baseline) if args.baseline else None
    baseline_path = os.pathsep.join(str(old / p) for p in ("sdk", "cli", "platform")) if old else None
    label = " ".join([args.baseline or "this", *args.baseline_env])
    runs: dict[str, list[dict[str, dict[str, float]]]] = {"this": [], "baseline": []}
    try:
        for round_no in range(1, args.rounds + 1):
            for which, path, env in (("this", None, None), ("baseline", baseline_path, baseline_env)):
                print(f"round {round_no}: {which}", flush=True)
                runs[which].append(measure(path, args.seconds, env))
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
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


def setting(parser: argparse.ArgumentParser, text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith(("FN_", "RAY_")):
        parser.error(f"--baseline-env {text!r}: use NAME=VALUE with a FN_ or RAY_ variable (e.g. FN_TRACE_SAMPLE=0)")
    return name, value


if __name__ == "__main__":
    main()
