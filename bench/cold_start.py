"""Where a cold start's time goes: the Fn-Cold-Start header of a light and a heavy function, over HTTP.

Run: ``python bench/cold_start.py [--rounds 3]``. A fresh platform on `fnctl up` defaults deploys
bench/projects/cold: ``cold-light`` (nothing to import or set up) and ``cold-heavy`` (setup() imports
onnxruntime and builds a session). Each round waits until a function has no replica, posts to it over
HTTP through the ingress and reads the call's ``Fn-Cold-Start`` header; the table gives the median of each
phase over rounds, the median caller's wall time beside the header's total (the header counts from the
ingress's stamp, so the two differ by the client's own connection and the answer's way back), and the
largest gap between the phases' sum and the total.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import httpx
from _procs import LocalPlatform, local_platform

from fnplatform.serving.coldstart import PHASES, parse_breakdown

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "cold_start.json"
FUNCTIONS = ("cold-light", "cold-heavy")


def one_cold_call(platform: LocalPlatform, name: str) -> dict[str, float]:
    deadline = time.monotonic() + 120
    while platform.replicas(name):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} kept a replica for 120 s; it should scale to zero after idle_timeout_s")
        time.sleep(0.5)
    started = time.perf_counter()
    answer = httpx.post(f"{platform.http_url}/{name}", json={"x": 1},
                        headers={"Authorization": f"Bearer {platform.key}"}, timeout=300)
    wall = time.perf_counter() - started
    if answer.status_code != 200 or "fn-cold-start" not in answer.headers:
        raise RuntimeError(f"{name}: {answer.status_code}, headers {dict(answer.headers)}: {answer.text[:200]}")
    return {**parse_breakdown(answer.headers["fn-cold-start"]), "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="cold calls per function (default 3)")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in FUNCTIONS}
    with local_platform() as platform:
        platform.deploy(HERE / "projects" / "cold")
        for _ in range(args.rounds):
            for name in FUNCTIONS:
                runs[name].append(one_cold_call(platform, name))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(runs, indent=2))
    columns = ("wall", "total", *PHASES)
    print(f"cold start over HTTP, median of {args.rounds} rounds (seconds); gap = max |sum of phases - total|")
    print(f"{'function':<12}" + "".join(f"{c:>8}" for c in columns) + f"{'gap':>8}")
    for name, calls in runs.items():
        medians = [statistics.median(call[c] for call in calls) for c in columns]
        gap = max(abs(sum(call[p] for p in PHASES) - call["total"]) for call in calls)
        print(f"{name:<12}" + "".join(f"{m:>8.2f}" for m in medians) + f"{gap:>8.2f}")


if __name__ == "__main__":
    main()
