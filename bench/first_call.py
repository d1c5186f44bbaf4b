"""The calls made the instant a deploy returns: this checkout against an earlier revision, same run.

Run: ``python bench/first_call.py --baseline REV [--deploys N]``. For each code version (this
checkout, then REV exported with ``git archive`` and put first on PYTHONPATH), a fresh platform on
`fnctl up` defaults deploys N one-function projects in turn (each a new route), each with the
deploy command run in-process (as `fnctl quickstart` does, so no interpreter exit hides the
window). The moment it returns, 20 concurrent POSTs go to the new function; their statuses and the
deploy's wall time are recorded, and, where the deploy waits for the ingress, how long after Serve
reported the function running the ingress routed it (from the platform's log). Medians over the deploys.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _procs import local_platform

REPO = Path(__file__).resolve().parents[1]
CALLS = 20


def export(rev: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix="fnrev", dir="/tmp"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    # Before fnplatform had an __init__.py it was a namespace package, which the installed regular one would shadow.
    (root / "platform" / "fnplatform" / "__init__.py").touch()
    return root


def child(deploys: int) -> None:
    """Inside the platform's environment: deploy in-process, then call at once."""
    import httpx

    from fnctl.main import cli

    creds = json.loads((Path(os.environ["FN_HOME"]) / "credentials.json").read_text())
    walls, statuses = [], []
    with ThreadPoolExecutor(max_workers=CALLS) as pool:
        for i in range(deploys):
            project = Path(tempfile.mkdtemp(prefix="fnfc", dir="/tmp"))
            name = f"first-{i}-{os.getpid()}"
            (project / "first.py").write_text(
                f"import fn\n\n\n@fn.function(name={name!r})\ndef first(a: int) -> int:\n    return a + {i}\n")
            started = time.perf_counter()
            cli(["deploy", str(project)], standalone_mode=False)
            walls.append(time.perf_counter() - started)
            calls = [pool.submit(httpx.post, f"{creds['http_url']}/{name}", json={"a": 1}, timeout=60,
                                 headers={"Authorization": f"Bearer {creds['api_key']}"}) for _ in range(CALLS)]
            statuses.append([call.result().status_code for call in calls])
            cli(["rm", name], standalone_mode=False)  # its replicas would slow the next deploy down
            shutil.rmtree(project, ignore_errors=True)
    print(json.dumps({"deploy_s": walls, "statuses": statuses}))


def measure(label: str, deploys: int, pythonpath: str | None) -> dict[str, Any]:
    with local_platform(extra_env={"PYTHONPATH": pythonpath} if pythonpath else None) as platform:
        proc = subprocess.run([sys.executable, __file__, "--child", str(deploys)], env=platform.env, capture_output=True,
                              text=True, timeout=1200, check=True)
        assert platform.home is not None
        log = (platform.home / "logs" / "platform.log").read_text(errors="replace")
    # Logged by a deploy that waits for the ingress (the code since that wait exists): Serve running -> routed.
    lags = [float(ms) for ms in re.findall(r"the ingress routes /\S+ (\d+) ms after Serve reported it running", log)]
    return {"label": label, "route_lag_ms": lags, **json.loads(proc.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="git revision to compare with (e.g. the commit before a change)")
    parser.add_argument("--deploys", type=int, default=8)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if not args.baseline:
        parser.error("--baseline REV is required")
    old = export(args.baseline)
    try:
        results = [measure("this checkout", args.deploys, None),
                   measure(f"baseline {args.baseline}", args.deploys,
                           os.pathsep.join(str(old / p) for p in ("sdk", "cli", "platform")))]
    finally:
        shutil.rmtree(old, ignore_errors=True)
    print(f"\n{'code':<24}{'deploy wall (median)':>22}{'deploys with a call not 200':>30}{'calls not 200':>16}"
          f"{'route lag after Serve running (median, max)':>46}  statuses")
    for r in results:
        failed = [s for s in r["statuses"] if any(code != 200 for code in s)]
        bad = sum(code != 200 for s in r["statuses"] for code in s)
        seen = sorted({code for s in r["statuses"] for code in s})
        lag = (f"{statistics.median(r['route_lag_ms']):.0f} ms, {max(r['route_lag_ms']):.0f} ms" if r["route_lag_ms"]
               else "not logged (no wait)")
        print(f"{r['label']:<24}{statistics.median(r['deploy_s']):>20.2f} s{len(failed):>24} of {len(r['statuses'])}"
              f"{bad:>9} of {sum(len(s) for s in r['statuses'])}{lag:>46}  {seen}")


if __name__ == "__main__":
    main()
