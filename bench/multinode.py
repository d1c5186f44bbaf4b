"""Recovery from a killed node on a real multi-node Ray cluster: fn against plain Ray Serve on the same cluster shape.

Run: ``python bench/multinode.py`` (3 repetitions) or ``--reps N``. Each repetition starts the cluster of
tests/e2e/test_multinode.py (`ray start`: a head in pools api and cpu, a cpu worker, a gpu worker), runs its
scenario (fnctl up --ray-address, deploy, 12 jobs of 3 s, then the cpu worker SIGKILLed with every process of it)
and records how long until the function is back to its 2 replicas on the surviving cpu node and until every job
accepted before the kill succeeded. The baseline, on a fresh cluster of the same shape: a plain Serve deployment
with 2 replicas of the same resources, the same kill, the time until both replicas run on the surviving cpu node
and Serve counts 2 running (the same test as fn's).
Medians over repetitions, A B A B; the table is printed and everything is written to bench/results/multinode.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "e2e"))

from e2e_cli import free_port  # noqa: E402 - the e2e test's helpers, found through the path above
from test_multinode import Cluster, replica_nodes, run_scenario, started_cluster  # noqa: E402

BASELINE = """
import json, sys
import ray
from ray import serve

ray.init(address=sys.argv[1], log_to_driver=False)
serve.start(http_options={"host": "127.0.0.1", "port": int(sys.argv[2])})

@serve.deployment(name="where-cpu", num_replicas=2, ray_actor_options={"num_cpus": 1, "resources": {"pool_cpu": 0.001}})
class WhereCpu:
    def __call__(self, request):
        return ray.get_runtime_context().get_node_id()

serve.run(WhereCpu.bind(), name="where-cpu", route_prefix="/where-cpu")
print(json.dumps({"ready": True}), flush=True)
for _ in sys.stdin:  # each line: how many replicas Serve runs now
    app = serve.status().applications["where-cpu"]
    states = next(iter(app.deployments.values())).replica_states
    print(json.dumps({"running": states.get("RUNNING", 0)}), flush=True)
"""


def fn_once() -> dict[str, Any]:
    with started_cluster() as cluster, tempfile.TemporaryDirectory(prefix="fnmb") as work:
        return run_scenario(cluster, Path(work))


def baseline_once() -> dict[str, Any]:
    with started_cluster() as cluster:
        return _baseline(cluster)


def _baseline(cluster: Cluster) -> dict[str, Any]:
    """The same kill and the same test of recovery as fn's: 2 replicas on the surviving cpu node, and Serve says 2 run."""
    proc = subprocess.Popen([sys.executable, "-c", BASELINE, cluster.address, str(free_port())], env=cluster.env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        if not _answer(proc).get("ready"):
            return {"error": "the plain Serve deployment did not start"}
        placed = replica_nodes(cluster, "where-cpu")
        if placed != ["cpu-worker", "head"]:
            return {"error": f"Serve placed the 2 replicas on {placed}, not one per cpu node"}
        killed = time.monotonic()
        cluster.kill("cpu-worker")
        while time.monotonic() - killed < 180:
            proc.stdin.write("status\n")
            proc.stdin.flush()
            running = _answer(proc).get("running")
            if replica_nodes(cluster, "where-cpu") == ["head", "head"] and running == 2:
                return {"recovered_s": time.monotonic() - killed}
            time.sleep(0.25)
        return {"error": "not back to 2 replicas within 180 s"}
    finally:
        proc.kill()
        proc.wait(timeout=30)


def _answer(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The child's next JSON line (Ray and Serve may print lines of their own on its stdout); {} at its end."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{"):
            answer: dict[str, Any] = json.loads(line)
            return answer
    return {}


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    fn_runs: list[dict[str, Any]] = []
    base_runs: list[dict[str, Any]] = []
    for rep in range(args.reps):
        for label, work, runs in (("fn", fn_once, fn_runs), ("plain Serve", baseline_once, base_runs)):
            print(f"[{time.strftime('%H:%M:%S')}] rep {rep + 1}: {label}", flush=True)
            try:
                runs.append(work())
            except Exception as exc:  # noqa: BLE001 - record it and keep the other repetitions' numbers
                runs.append({"error": f"{type(exc).__name__}: {str(exc)[-300:]}"})
    fn_s, base_s = _median(fn_runs, "recovered_s"), _median(base_runs, "recovered_s")
    rows = [
        ("fn: function back to 2 replicas after its node was killed", fn_s),
        ("plain Serve: deployment back to 2 replicas (baseline)", base_s),
        ("fn: every job accepted before the kill succeeded, after", _median(fn_runs, "jobs_done_s")),
        ("fn: calls that failed while it recovered", _median(fn_runs, "failed_calls")),
    ]
    print(f"\nmulti-node recovery: {args.reps} repetition(s), medians (a head and 2 workers on one host, "
          f"`ray start`; the cpu worker SIGKILLed)")
    for label, value in rows:
        print(f"  {label:62} {'-' if value is None else f'{value:.2f}'}")
    if fn_s and base_s:
        print(f"  {'ratio fn / plain Serve (recovery)':62} {fn_s / base_s:.2f}x")
    errors = [r["error"] for r in fn_runs + base_runs if "error" in r]
    if errors:
        print(f"  errors: {len(errors)}: {errors[0][:200]}")
    out = HERE / "results" / "multinode.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"reps": args.reps, "fn": fn_runs, "baseline": base_runs}, indent=2))
    print(f"\nall numbers: {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
