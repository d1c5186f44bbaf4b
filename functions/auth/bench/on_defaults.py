"""The identity flow's decision latency on a fresh `fnctl up --gpus 1`, as a new user starts it, against
the steps' own critical path measured in-process in the same run.

    python3 functions/auth/bench/on_defaults.py                 # 20 cases
    python3 functions/auth/bench/on_defaults.py --cases 8 --cpus 4

A fresh FN_HOME, `fnctl up --gpus 1` (plus `--cpus N` if given), `fnctl deploy` of the hello example
(what `fnctl quickstart` leaves: one call, so its replica is up and idle, holding its CPUs), then
`fnctl deploy functions/auth`, then generated genuine cases one after the other through the flows
gateway over HTTP (the SDK), the designs in turn: ID cards A, B, C (front, back, selfie) and
passport pages P (front and selfie, then the run's inputs closed: no back). The first case comes
right after the deploy, every step from zero (cold); the others are warm. A case's time runs from its
last upload (for a passport, the close) to its decision. After `fnctl down`, the same cases run through
the steps in-process, one thread each (bench/kyc.py's harness), and their critical path (front and
back in parallel, then face and quality in parallel, then decide) is the baseline: the platform's
warm median over it is the overhead of running the flow as a platform does.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
ROOT = PROJECT.parents[1]
HELLO = ROOT / "cli" / "fnctl" / "examples" / "hello"
DESIGNS = ("A", "B", "C", "P")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fnctl(env: dict[str, str], *args: str, timeout: float = 900) -> str:
    done = subprocess.run([sys.executable, "-m", "fnctl.main", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"fnctl {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def plan(count: int) -> list[tuple[int, str]]:
    return [(seed, DESIGNS[seed % len(DESIGNS)]) for seed in range(count)]


def _platform_cases(env: dict[str, str], count: int) -> list[dict[str, object]]:
    """Runs in a child with the platform's FN_HOME, so the SDK finds its credentials."""
    code = f"""
import json, sys, time
sys.path.insert(0, {str(PROJECT)!r})
import fn
from kyc.cases import make_case
rows = []
for seed, design in {plan(count)!r}:
    case = make_case(seed, "easy", "genuine", design)
    run = fn.flows.start("kyc")
    run.put("selfie", case.selfie)
    if case.back is not None:
        run.put("back", case.back)
    run.put("front", case.front)
    if case.back is None:
        run.close_inputs()
    started = time.monotonic()
    out = run.result(timeout=900)
    rows.append({{"seed": seed, "design": design, "seconds": time.monotonic() - started,
                  "decision": out["decision"]}})
print(json.dumps(rows))
"""
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the cases failed:\n{done.stderr}")
    rows: list[dict[str, object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return rows


def platform_run(cpus: str | None, cases: int) -> dict[str, object]:
    home = Path(tempfile.mkdtemp(prefix="fnk"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FN_", "RAY_"))}
    env["FN_HOME"] = str(home / ".fn")
    up = ["up", "--gpus", "1", "--api-port", str(_free_port()), "--http-port", str(_free_port())]
    try:
        _fnctl(env, *up, *(["--cpus", cpus] if cpus else []))
        _fnctl(env, "deploy", str(HELLO))
        _fnctl(env, "invoke", "add", "--data", '{"a": 1, "b": 2}')
        started = time.monotonic()
        _fnctl(env, "deploy", str(PROJECT))
        deploy_s = time.monotonic() - started
        rows = _platform_cases(env, cases)
    finally:
        subprocess.run([sys.executable, "-m", "fnctl.main", "down"], env=env, capture_output=True, timeout=300, check=False)
    return {"deploy_s": deploy_s, "rows": rows}


def in_process(cases: int) -> list[float]:
    """The same cases through the steps as plain Python, one thread each: critical paths in seconds."""
    spec = importlib.util.spec_from_file_location("kyc_bench", PROJECT / "bench" / "kyc.py")
    assert spec is not None and spec.loader is not None
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)  # bench/kyc.py: puts functions/auth on sys.path, one thread per step
    from kyc.cases import make_case
    steps = harness.load_steps()
    return [harness.run_case(steps, make_case(seed, "easy", "genuine", design))["ms"]["critical_path"] / 1000
            for seed, design in plan(cases)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=20, help="generated genuine cases (default 20)")
    parser.add_argument("--cpus", default=None, help="pass --cpus N to fnctl up (default: fnctl up's own)")
    args = parser.parse_args()
    if args.cases < 2:
        parser.error("--cases must be at least 2: the first case is cold, the others warm")
    result = platform_run(args.cpus, args.cases)
    rows = result["rows"]
    assert isinstance(rows, list)
    seconds = [float(row["seconds"]) for row in rows]
    critical = in_process(args.cases)
    warm = seconds[1:]
    warm_median, path_median = statistics.median(warm), statistics.median(critical[1:])
    label = f"fnctl up --gpus 1{f' --cpus {args.cpus}' if args.cpus else ''}"
    print(f"\n{label}: deploy {result['deploy_s']:.1f} s, {len(rows)} genuine cases (designs {', '.join(DESIGNS)} in turn)")
    print(f"{'':34}{'median s':>10}{'p90 s':>10}")
    p90 = sorted(warm)[min(len(warm) - 1, int(0.9 * len(warm)))]
    print(f"{'cold (first case, from zero)':34}{seconds[0]:>10.2f}{'':>10}")
    print(f"{'warm (cases 2-' + str(len(rows)) + ')':34}{warm_median:>10.2f}{p90:>10.2f}")
    print(f"{'steps in-process, critical path':34}{path_median:>10.2f}")
    print(f"warm / critical path: {warm_median / path_median:.2f} (goal: at most 2)")
    decisions: dict[str, int] = {}
    for row in rows:
        decisions[str(row["decision"])] = decisions.get(str(row["decision"]), 0) + 1
    print("decisions:", json.dumps(decisions), " per case:", " ".join(f"{r['design']}{r['seed']}={float(str(r['seconds'])):.1f}s"
                                                                  for r in rows))


if __name__ == "__main__":
    main()
