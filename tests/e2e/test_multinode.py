"""The platform on a real multi-node Ray cluster, built as docs/operations.md tells an operator: `ray start` for a
head (pools api and cpu) and two workers (one in pool cpu, one in pool gpu), then `fnctl up --ray-address`.

Each function runs on its pool's nodes and answers through the ingress; then the cpu worker is killed (its raylet
and every worker process, SIGKILL): the function's replica comes back on the surviving cpu node, and every job
accepted before the kill, some of them running on the killed node, still succeeds. The recovery time is printed
(bench/multinode.py measures it as a benchmark).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from e2e_cli import fnctl, free_port

pytestmark = pytest.mark.slow

PROJECT = '''
import time

import ray

import fn


@fn.function(cpus=1, min_replicas=2, max_replicas=2)
def where_cpu() -> str:
    return ray.get_runtime_context().get_node_id()


@fn.function(cpus=0.5, pool="gpu")
def where_gpu() -> str:
    return ray.get_runtime_context().get_node_id()


@fn.function(cpus=0.25, max_replicas=2, job_concurrency=8)
def slow_square(x: int) -> int:
    time.sleep(3)
    return x * x
'''


@dataclass
class Cluster:
    """Three `ray start --block` processes (each the parent of its node's raylet and worker processes) and fnctl's env."""

    env: dict[str, str]
    address: str
    nodes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: list[Any] = field(default_factory=list)

    def start_node(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> None:
        log = open(Path(self.env["FN_HOME"]).parent / f"{name}.log", "wb")  # noqa: SIM115 - closed at teardown
        self.logs.append(log)
        self.nodes[name] = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--block",
                                             "--disable-usage-stats", *args], env={**self.env, **(extra_env or {})},
                                            stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def tree(self, name: str) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.nodes[name].pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self, name: str) -> None:
        """The node dies at once: its raylet, object store and every worker process (replicas included)."""
        for proc in self.tree(name):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        self.nodes[name].wait(timeout=30)

    def node_of(self, pid: int) -> str | None:
        for name in self.nodes:
            if any(p.pid == pid for p in self.tree(name)):
                return name
        return None


def replica_nodes(cluster: Cluster, function: str) -> list[str | None]:
    title = f"ServeReplica:{function}:{function}"
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if title in " ".join(proc.info["cmdline"] or []):
            found.append(cluster.node_of(proc.info["pid"]))
    return sorted(found, key=str)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with started_cluster() as made:
        yield made


@contextmanager
def started_cluster() -> Iterator[Cluster]:
    """moto's S3 on loopback, a head (pools api, cpu), a cpu worker and a gpu worker; all of it gone after."""
    from moto.server import ThreadedMotoServer

    base = Path(tempfile.mkdtemp(prefix="fnm", dir="/tmp"))
    home = base / "home"
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    s3.start()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FN_", "RAY_", "AWS_"))}
    port = free_port()
    env = {**clean, "FN_HOME": str(home), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_USAGE_STATS_ENABLED": "0",
           # what docs/operations.md says every node and the control plane share: the bundle store and its credentials
           "FN_S3_BUCKET": "fn-bundles", "FN_S3_ENDPOINT": f"http://127.0.0.1:{s3._port}",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    made = Cluster(env=env, address=f"127.0.0.1:{port}")
    try:
        # the api pool's nodes (the flows gateway, run hosts and job runner) read the database from their environment;
        # the other pools' nodes, which run only user code, do not get it. The control plane's default is the same file.
        made.start_node("head", "--head", f"--port={port}", "--num-cpus=3", f"--temp-dir={base / 'ray'}",
                        "--include-dashboard=false",
                        "--resources=" + json.dumps({"pool_api": 1000, "pool_cpu": 1000}),
                        extra_env={"FN_DATABASE_URL": f"sqlite:///{home / 'registry.db'}"})
        _wait_nodes(made, 1)
        made.start_node("cpu-worker", f"--address={made.address}", "--num-cpus=2",
                        "--resources=" + json.dumps({"pool_cpu": 1000}))
        _wait_nodes(made, 2)  # one at a time: two raylets starting at once on one host can time out on 2 cores
        made.start_node("gpu-worker", f"--address={made.address}", "--num-cpus=1", "--num-gpus=1",
                        "--resources=" + json.dumps({"pool_gpu": 1000}))
        _wait_nodes(made, 3)
        yield made
    finally:
        fnctl(made.env, "down", timeout=120)
        for name in list(made.nodes):
            made.kill(name)
        for log in made.logs:
            log.close()
        s3.stop()
        shutil.rmtree(base, ignore_errors=True)


def _wait_nodes(cluster: Cluster, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "status", f"--address={cluster.address}"],
                                env=cluster.env, capture_output=True, text=True, timeout=60, check=False)
        active = status.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
        if status.returncode == 0 and active.count("node_") >= count:
            return
        time.sleep(1)
    logs = "\n".join(f"--- {log.name}:\n" + Path(log.name).read_text(errors="replace")[-1500:] for log in cluster.logs)
    raise AssertionError(f"{count} Ray nodes did not come up within {timeout:g} s: {status.stdout[-800:]}"
                         f"{status.stderr[-800:]}\n{logs}")


def test_functions_run_on_their_pools_nodes_and_come_back_on_a_surviving_node_when_theirs_is_killed(
        cluster: Cluster, tmp_path: Path, report_figure: Callable[[str], None]) -> None:
    figures = run_scenario(cluster, tmp_path)
    report_figure(f"multinode: where-cpu back to 2 replicas {figures['recovered_s']:.1f} s after its node was killed "
                  f"({figures['failed_calls']} of {figures['calls']} calls meanwhile failed); all {figures['jobs']} jobs "
                  f"accepted before the kill succeeded {figures['jobs_done_s']:.1f} s after it")


def run_scenario(cluster: Cluster, workdir: Path) -> dict[str, Any]:
    """`fnctl up --ray-address`, deploy, then placement, service and a killed node (bench/multinode.py runs it too)."""
    env = cluster.env
    api_port, http_port = free_port(), free_port()
    up = fnctl(env, "up", "--ray-address", cluster.address, "--api-port", str(api_port), "--http-port", str(http_port),
               timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    project = workdir / "multinode"
    project.mkdir()
    (project / "main.py").write_text(textwrap.dedent(PROJECT))
    deploy = fnctl(env, "deploy", str(project), timeout=300)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    key = json.loads((Path(env["FN_HOME"]) / "credentials.json").read_text())["api_key"]
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", headers=headers, timeout=60) as client, \
            httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers=headers, timeout=30) as api:
        return placed_served_and_recovered(cluster, client, api)


def placed_served_and_recovered(cluster: Cluster, client: httpx.Client, api: httpx.Client) -> dict[str, Any]:
    # placement: the cpu function spreads over the two cpu nodes, the gpu function sits on the gpu worker
    assert replica_nodes(cluster, "where-cpu") == ["cpu-worker", "head"]
    gpu_answer = client.post("/where-gpu", json={})
    assert gpu_answer.status_code == 200, gpu_answer.text
    assert replica_nodes(cluster, "where-gpu") == ["gpu-worker"]
    assert client.post("/where-cpu", json={}).status_code == 200

    # jobs accepted before the kill, some running on the cpu worker when it dies
    jobs = []
    for x in range(12):
        spawned = client.post("/jobs/slow-square", json={"x": x})
        assert spawned.status_code == 202, spawned.text
        jobs.append(spawned.json()["id"])
    deadline = time.monotonic() + 60
    while "cpu-worker" not in replica_nodes(cluster, "slow-square") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "cpu-worker" in replica_nodes(cluster, "slow-square"), "slow-square never ran on the cpu worker"

    killed_at = time.monotonic()
    cluster.kill("cpu-worker")
    failures, calls, recovered_s = [], 0, None
    while time.monotonic() - killed_at < 180:
        try:
            status: int | str = client.post("/where-cpu", json={}).status_code
        except httpx.TransportError as exc:  # the killed node's replica, while the ingress still routes to it
            status = type(exc).__name__
        calls += 1
        if status != 200:
            failures.append(status)
        running = api.get("/v1/functions/where-cpu").json().get("running")
        # Recovered: both replicas back on the surviving node, and the ingress routes to them (this call answered).
        if replica_nodes(cluster, "where-cpu") == ["head", "head"] and running == 2 and status == 200:
            recovered_s = time.monotonic() - killed_at
            break
        time.sleep(0.25)
    assert recovered_s is not None, f"where-cpu did not come back to 2 replicas on the head, answering, within " \
                                    f"180 s: {replica_nodes(cluster, 'where-cpu')}; answers that failed: {failures}"
    for _ in range(20):
        assert client.post("/where-cpu", json={}).status_code == 200

    outcomes = {}
    deadline = time.monotonic() + 240
    while len(outcomes) < len(jobs) and time.monotonic() < deadline:
        for job in (j for j in jobs if j not in outcomes):
            record = client.get(f"/jobs/{job}").json()
            if record["status"] in {"succeeded", "failed", "cancelled"}:
                outcomes[job] = record
        time.sleep(0.5)
    assert len(outcomes) == len(jobs), f"jobs still unfinished: {set(jobs) - set(outcomes)}"
    assert sorted(r["result"] for r in outcomes.values() if r["status"] == "succeeded") == [x * x for x in range(12)], \
        [(r["status"], r.get("error")) for r in outcomes.values()]
    return {"recovered_s": recovered_s, "failed_calls": len(failures), "failed_statuses": sorted({str(f) for f in failures}),
            "calls": calls, "jobs": len(jobs), "jobs_done_s": time.monotonic() - killed_at}
