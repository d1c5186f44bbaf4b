"""What abusive requests cost the platform: this checkout against an earlier revision, same run.

Run: ``python bench/abuse.py --baseline REV``. For each code version (this checkout, then REV exported
with ``git archive`` and put first on PYTHONPATH) a fresh platform on `fnctl up` defaults deploys one
function (``size(data: bytes) -> int``), then, one scenario at a time, sends:

- 50 unauthenticated 32 MiB JSON bodies to ``POST /v1/keys`` (5 at a time);
- 20 chunked (no Content-Length) 100 MiB bodies to the function, with a valid key (4 at a time);
- 10 bundle bombs to ``PUT /v1/bundles``: a 0.6 MB zip whose manifest inflates to 600 MB;
- 1,000 calls of the function with wrong keys (20 at a time).

While each runs, the resident memory of the control-plane process and of the function's replica is
sampled every 50 ms; the table gives each one's peak growth over its level before the scenario, the
scenario's wall time, and the statuses the client saw ("sent" = the server closed the connection
before the client finished sending, as it may when it refuses a body unread).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
from _procs import LocalPlatform, local_platform
from first_call import export

MiB = 1024 * 1024
PROJECT = 'import fn\n\n\n@fn.function(min_replicas=1)\ndef size(data: bytes) -> int:\n    return len(data)\n'


def chunks(total_mib: int) -> Iterator[bytes]:
    block = b"x" * MiB
    for _ in range(total_mib):
        yield block


def bomb() -> bytes:
    """A zip of about 0.6 MB whose manifest entry inflates to 600 MB (written in blocks, never held whole)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("fn-manifest.json", "w", force_zip64=True) as entry:
            entry.write(b'{"functions": [], "pad": "')
            block = b" " * (16 * MiB)
            for _ in range(600 // 16):
                entry.write(block)
            entry.write(b'"}')
        archive.writestr("app.py", "x = 1\n")
    return buffer.getvalue()


class Peak:
    """Samples the resident memory of processes while a scenario runs."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        self.procs = procs
        self.base = {name: self._rss(p) for name, p in procs.items()}
        self.peak = dict(self.base)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss(proc: psutil.Process) -> int:
        try:
            return int(proc.memory_info().rss)
        except psutil.Error:
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, proc in self.procs.items():
                self.peak[name] = max(self.peak[name], self._rss(proc))
            time.sleep(0.05)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def growth_mib(self, name: str) -> float:
        return (self.peak[name] - self.base[name]) / MiB


def send(fn: Callable[[], httpx.Response]) -> str:
    try:
        return str(fn().status_code)
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        return "sent"  # the server refused and closed while the client was still sending


def replica_process(platform: LocalPlatform) -> psutil.Process:
    for proc in platform.processes():
        try:
            if "ServeReplica:size" in " ".join(proc.cmdline()):
                return proc
        except psutil.Error:
            continue
    raise SystemExit("the size replica is not running")


def scenarios(platform: LocalPlatform) -> dict[str, Callable[[], list[str]]]:
    key = {"Authorization": f"Bearer {platform.key}"}
    api_url = str(platform.api.base_url).rstrip("/")
    body32 = b"[" + b"1," * (16 * MiB - 1) + b"1]"
    bomb_zip = bomb()
    bomb_sha = hashlib.sha256(bomb_zip).hexdigest()

    def run(count: int, workers: int, one: Callable[[int], str]) -> list[str]:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, range(count)))

    return {
        "50 unauthenticated 32 MiB bodies": lambda: run(50, 5, lambda _: send(lambda: httpx.post(
            f"{api_url}/v1/keys", content=body32, headers={"content-type": "application/json"}, timeout=120))),
        "20 chunked 100 MiB bodies to a function": lambda: run(20, 4, lambda _: send(lambda: httpx.post(
            f"{platform.http_url}/size", content=chunks(100), timeout=300,
            headers={**key, "content-type": "application/octet-stream"}))),
        "10 bundle bombs (600 MB manifest)": lambda: run(10, 2, lambda _: send(lambda: httpx.put(
            f"{api_url}/v1/bundles/{bomb_sha}", content=bomb_zip, headers=key, timeout=300))),
        "1,000 calls with wrong keys": lambda: run(1000, 20, lambda i: send(lambda: httpx.post(
            f"{platform.http_url}/size", content=b"x", timeout=60,
            headers={"Authorization": f"Bearer fn_wrong_{i}", "content-type": "application/octet-stream"}))),
    }


def measure(label: str, pythonpath: str | None) -> list[dict[str, Any]]:
    rows = []
    with local_platform(extra_env={"PYTHONPATH": pythonpath} if pythonpath else None) as platform:
        project = Path(tempfile.mkdtemp(prefix="fnab", dir="/tmp"))
        (project / "abuse_target.py").write_text(PROJECT)
        platform.deploy(project)
        shutil.rmtree(project, ignore_errors=True)
        server = psutil.Process(int(platform.state["pid"]))  # type: ignore[call-overload]
        for name, scenario in scenarios(platform).items():
            procs = {"control plane": server, "replica": replica_process(platform)}
            started = time.perf_counter()
            with Peak(procs) as peak:
                statuses = scenario()
            rows.append({"code": label, "scenario": name, "wall_s": time.perf_counter() - started,
                         "control_mib": peak.growth_mib("control plane"), "replica_mib": peak.growth_mib("replica"),
                         "statuses": dict(Counter(statuses))})
            print(f"{label}: {name}: {rows[-1]}", flush=True)
            time.sleep(2)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="git revision to compare with (e.g. the commit before a change)")
    args = parser.parse_args()
    rows = measure("this checkout", None)
    if args.baseline:
        old = export(args.baseline)
        try:
            rows += measure(f"baseline {args.baseline}", ":".join(str(old / p) for p in ("sdk", "cli", "platform")))
        finally:
            shutil.rmtree(old, ignore_errors=True)
    print("\n| scenario | code | control plane peak growth | replica peak growth | wall | statuses |\n|---|---|---|---|---|---|")
    for row in sorted(rows, key=lambda r: (r["scenario"], r["code"])):
        statuses = ", ".join(f"{k} x{v}" for k, v in sorted(row["statuses"].items()))
        print(f"| {row['scenario']} | {row['code']} | {row['control_mib']:+.0f} MiB | {row['replica_mib']:+.0f} MiB "
              f"| {row['wall_s']:.1f} s | {statuses} |")


if __name__ == "__main__":
    sys.exit(main())
