"""What every replica (and every Ray worker, which preloads it) imports: this checkout against an earlier revision.

Run: ``python bench/replica_imports.py --baseline REV [--module-before NAME]``. In fresh interpreters (7 each),
times ``import fnplatform.serving.replica`` here and the replica module of REV (``fnplatform.runtime`` before
the platform was split by process), and counts the modules each loads and which of them are heavy
packages a replica should not need (SQLAlchemy, FastAPI, boto3).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

from first_call import export

HEAVY = ("sqlalchemy", "fastapi", "boto3", "botocore", "psycopg")
PROBE = ("import json, sys, time\nbefore = set(sys.modules)\nstart = time.perf_counter()\nimport {module}\n"
         "elapsed = time.perf_counter() - start\nnew = set(sys.modules) - before\n"
         "print(json.dumps([len(new), elapsed, sorted({{m.split('.')[0] for m in new}} & set({heavy!r}))]))")


def measure(module: str, pythonpath: str | None, runs: int = 7) -> tuple[int, float, list[str]]:
    env = {**os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {})}
    results = [json.loads(subprocess.run([sys.executable, "-c", PROBE.format(module=module, heavy=HEAVY)], env=env,
                                         capture_output=True, text=True, check=True).stdout) for _ in range(runs)]
    return results[0][0], statistics.median(r[1] for r in results), results[0][2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="git revision to compare with")
    parser.add_argument("--module-before", default="fnplatform.runtime", help="the replica's module in that revision")
    args = parser.parse_args()
    old = export(args.baseline)
    try:
        rows = [("this checkout", "fnplatform.serving.replica", *measure("fnplatform.serving.replica", None)),
                (f"baseline {args.baseline}", args.module_before,
                 *measure(args.module_before, os.pathsep.join(str(old / p) for p in ("sdk", "cli", "platform"))))]
    finally:
        shutil.rmtree(old, ignore_errors=True)
    print(f"\n{'code':<22}{'module':<30}{'modules loaded':>16}{'import time (median of 7)':>28}  heavy packages")
    for label, module, count, seconds, heavy in rows:
        print(f"{label:<22}{module:<30}{count:>16}{seconds:>26.2f} s  {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
