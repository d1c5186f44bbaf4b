"""The identity flow on a fresh `fnctl up` as a new user starts it, old default against new.

    python3 functions/auth/bench/on_defaults.py                  # new default, then --cpus <cores> (the old default)
    python3 functions/auth/bench/on_defaults.py --cases 3 --only default

Each configuration: a fresh FN_HOME, `fnctl up --gpus 1 [--cpus N]`, `fnctl deploy` of the hello
example (what `fnctl quickstart` leaves, one call so its replica is up and idle, holding its CPUs),
`fnctl deploy functions/auth`, then generated genuine cases one after the other: the first right
after the deploy (every step starts from zero), the others warm. A case's time runs from its last
upload to its decision. Prints a table; `fnctl down` at the end.
"""

from __future__ import annotations

import argparse
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


def _cases(env: dict[str, str], count: int) -> list[dict[str, float | str]]:
    """Runs in a child with the platform's FN_HOME, so the SDK finds its credentials."""
    code = f"""
import json, sys, time
sys.path.insert(0, {str(PROJECT)!r})
import fn
from kyc.cases import make_case
rows = []
for seed in range({count}):
    case = make_case(seed, "easy", "genuine")
    run = fn.flows.start("kyc")
    run.put("selfie", case.selfie)
    run.put("back", case.back)
    run.put("front", case.front)
    started = time.monotonic()
    out = run.result(timeout=900)
    rows.append({{"seed": seed, "seconds": time.monotonic() - started, "decision": out["decision"]}})
print(json.dumps(rows))
"""
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the cases failed:\n{done.stderr}")
    rows: list[dict[str, float | str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return rows


def measure(cpus: str | None, cases: int) -> dict[str, object]:
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
        rows = _cases(env, cases)
    finally:
        subprocess.run([sys.executable, "-m", "fnctl.main", "down"], env=env, capture_output=True, timeout=300, check=False)
    return {"cpus": cpus or "default", "deploy_s": deploy_s, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--only", choices=["default", "cores"], default=None)
    args = parser.parse_args()
    configs = {"default": None, "cores": str(os.cpu_count())}
    results = [measure(cpus, args.cases) for name, cpus in configs.items() if args.only in (None, name)]
    print(f"{'fnctl up --gpus 1':<24} {'deploy s':>9} {'first case s':>13} {'warm median s':>14}  decisions")
    for result in results:
        rows = result["rows"]
        assert isinstance(rows, list)
        seconds = [float(row["seconds"]) for row in rows]
        warm = statistics.median(seconds[1:]) if len(seconds) > 1 else float("nan")
        label = "(defaults)" if result["cpus"] == "default" else f"--cpus {result['cpus']}"
        print(f"{label:<24} {result['deploy_s']:>9.1f} {seconds[0]:>13.1f} {warm:>14.2f}  "
              f"{','.join(str(row['decision']) for row in rows)}")


if __name__ == "__main__":
    main()
