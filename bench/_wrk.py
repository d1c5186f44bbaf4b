"""wrk as the HTTP load generator: installed on demand, driven with post_json.lua (or get.lua), its output parsed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

LUA = Path(__file__).resolve().parent / "post_json.lua"
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def ensure_wrk() -> str:
    """The wrk binary; installs the Debian package when it is missing (the suite runs as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is not installed: apt-get install -y wrk", flush=True)
    steps = (["apt-get", "update"], ["apt-get", "install", "-y", "wrk"])
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True, check=False,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if proc.returncode != 0 and step[1] == "install":
            raise SystemExit(f"could not install wrk ({' '.join(step)} exited {proc.returncode}); install it "
                             f"yourself (Debian/Ubuntu: apt-get install wrk) and run again:\n{proc.stderr[-2000:]}")
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get reported success but no wrk is on PATH; install wrk and run again")
    return found


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse(output: str) -> dict[str, float]:
    """Requests/sec, p50/p90/p99 (ms, from --latency), requests, errors and non-2xx from wrk's report."""
    out: dict[str, float] = {}
    for pct, key in (("50", "p50_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        match = re.search(rf"^\s*{pct}%\s+(\S+)\s*$", output, re.MULTILINE)
        if match:
            out[key] = _ms(match.group(1))
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    if not rps or not total or "p50_ms" not in out:
        raise ValueError(f"could not parse wrk output:\n{output}")
    out["rps"] = float(rps.group(1))
    out["requests"] = float(total.group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    out["socket_errors"] = float(sum(int(g) for g in errors.groups())) if errors else 0.0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    out["non_2xx"] = float(non2xx.group(1)) if non2xx else 0.0
    return out


def run_wrk(url: str, key: str, connections: int, duration_s: float, body: str = '{"x": 1}',
            threads: int = 1, timeout_s: int = 30, script: Path = LUA) -> dict[str, float]:
    """One wrk run against *url*; one thread by default so the client takes as little CPU as it can."""
    command = [ensure_wrk(), f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", f"--timeout={timeout_s}s",
               "--latency", "-s", str(script), url]
    proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=duration_s + timeout_s + 60,
                          env={**os.environ, "WRK_KEY": key, "WRK_BODY": body})
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()}")
    result = parse(proc.stdout)
    result["connections"] = connections
    result["duration_s"] = duration_s
    bad = result["socket_errors"] + result["non_2xx"]
    if bad > 0.01 * max(result["requests"], 1):
        print(f"warning: {url} at {connections} connections: {bad:.0f} of {result['requests']:.0f} requests failed",
              flush=True)
    return result
