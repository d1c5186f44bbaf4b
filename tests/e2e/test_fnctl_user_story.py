"""fnctl as a user runs it, as subprocesses, from `up` to `down`, on a fresh FN_HOME."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from e2e_cli import fnctl, free_port

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "cli" / "fnctl" / "examples" / "hello"
AUTH = REPO / "functions" / "auth"

pytestmark = pytest.mark.slow


def test_user_story_from_up_to_down() -> None:
    from fnplatform.control.local import ray_processes
    from fnplatform.control.settings import PlatformSettings

    # A home of 30 characters, as ordinary as /home/alexandra/.fn-staging (test_first_run covers 18 and 120).
    base = Path(tempfile.mkdtemp(prefix="fne", dir="/tmp"))
    home = base / ("h" * (30 - len(str(base)) - 1))
    assert len(str(home)) == 30, home
    api_port, http_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FN_", "RAY_"))}
    env["FN_HOME"] = str(home)
    # No --cpus: the identity flow below must run on the defaults of a 2-core machine (CI's).
    up = fnctl(env, "up", "--api-port", str(api_port), "--http-port", str(http_port), "--gpus", "1")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"127.0.0.1:{api_port}" in up.stdout and f"127.0.0.1:{http_port}" in up.stdout
        assert (home / "credentials.json").stat().st_mode & 0o077 == 0, "credentials must be private"

        again = fnctl(env, "up", "--api-port", str(api_port), "--http-port", str(http_port))
        assert again.returncode == 0 and "already running" in again.stdout

        key = fnctl(env, "keys", "create", "ci")
        assert key.returncode == 0
        api_key = key.stdout.strip()
        assert api_key.startswith("fn_") and "\n" not in api_key

        deploy = fnctl(env, "deploy", str(HELLO))
        # The instant "deployed" is printed, /add answers over HTTP (it once got a 404 until the ingress caught up).
        with ThreadPoolExecutor(max_workers=50) as pool:
            codes = list(pool.map(lambda _: httpx.post(f"http://127.0.0.1:{http_port}/add", json={"a": 2, "b": 3},
                                                       headers={"Authorization": f"Bearer {api_key}"}, timeout=120),
                                  range(50)))
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        assert [(r.status_code, r.text) for r in codes] == [(200, "5")] * 50
        assert "add" in deploy.stdout and "reverser" in deploy.stdout

        listed = json.loads(fnctl(env, "ls", "--json").stdout)
        assert {row["name"]: row["pool"] for row in listed} == {"add": "cpu", "reverser": "gpu"}

        invoke = fnctl(env, "invoke", "add", "--data", '{"a": 2, "b": 3}')
        assert invoke.returncode == 0 and invoke.stdout.strip() == "5"

        curl = httpx.post(f"http://127.0.0.1:{http_port}/add", content=b'{"a":2,"b":3}', timeout=60,
                          headers={"Authorization": f"Bearer {api_key}",
                                   "content-type": "application/x-www-form-urlencoded"})
        assert curl.status_code == 200 and curl.json() == 5

        sdk = subprocess.run([sys.executable, "-c", "import fn; print(fn.call('add', a=2, b=3))"], env=env,
                             capture_output=True, text=True, timeout=120, check=False)
        assert sdk.stdout.strip() == "5", sdk.stderr

        assert fnctl(env, "invoke", "reverser", "--data", '{"text": "abc"}').stdout.strip() == '">cba"'

        described = json.loads(fnctl(env, "describe", "add", "--json").stdout)
        assert len(described["bundle_sha256"]) == 64 and described["active_version"] == 1

        logs = fnctl(env, "logs", "add")
        assert logs.returncode == 0 and "request=" in logs.stdout and "POST /add -> 200" in logs.stdout

        # The registry is the desired state: a restarted platform serves the same functions again.
        assert fnctl(env, "down", timeout=120).returncode == 0
        restarted = fnctl(env, "up", "--api-port", str(api_port), "--http-port", str(http_port), "--gpus", "1")
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        assert json.loads(fnctl(env, "ls", "--json").stdout) and {
            row["name"]: row["version"] for row in json.loads(fnctl(env, "ls", "--json").stdout)} == {"add": 1, "reverser": 1}
        # add (min_replicas=0) came back with no replica: its first call over HTTP (HAProxy) waited for one, and says why.
        assert json.loads(fnctl(env, "describe", "add", "--json").stdout)["running"] == 0
        first = httpx.post(f"http://127.0.0.1:{http_port}/add", json={"a": 20, "b": 22}, timeout=120,
                           headers={"Authorization": f"Bearer {api_key}"})
        assert first.status_code == 200 and first.json() == 42, first.text
        phases = dict(part.split("=") for part in first.headers["fn-cold-start"].split(", "))
        assert list(phases) == ["total", "scale", "place", "start", "fetch", "import", "setup", "route"]
        assert abs(sum(float(v) for k, v in phases.items() if k != "total") - float(phases["total"])) <= 0.1 * float(
            phases["total"]) + 0.02
        assert "cold start: total=" in fnctl(env, "logs", "add").stdout
        assert fnctl(env, "invoke", "add", "--data", '{"a": 20, "b": 22}').stdout.strip() == "42"

        # The shipped identity flow, while hello's add replica is up and idle, holding its CPUs: with the
        # old default (CPUs = cores) its steps waited minutes for those to time out.
        _identity_case_is_approved(env)

        assert fnctl(env, "rm", "add").returncode == 0
        missing = fnctl(env, "describe", "add")
        assert missing.returncode == 1 and "no function named 'add'" in missing.stderr
        assert "Traceback" not in missing.stderr
    finally:
        down = fnctl(env, "down", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not (home / "platform.json").exists()
    leftovers = ray_processes(PlatformSettings(home=home).runtime_dir)
    assert leftovers == [], f"processes left running after down: {[p.pid for p in leftovers]}"
    for port in (api_port, http_port):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers after down"
    shutil.rmtree(base, ignore_errors=True)


def _identity_case_is_approved(env: dict[str, str]) -> None:
    deploy = fnctl(env, "deploy", str(AUTH), timeout=600)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    # A case right after the deploy: every step starts from zero. 240 s bounds a hang, not a speed: a
    # case takes seconds once its steps are placed, and about 4 minutes when they wait for idle replicas.
    code = (f"import sys; sys.path.insert(0, {str(AUTH)!r})\n"
            "import fn\nfrom kyc.cases import make_case\n"
            "case = make_case(1, 'easy', 'genuine')\n"
            "run = fn.flows.start('kyc')\n"
            "run.put('selfie', case.selfie); run.put('back', case.back); run.put('front', case.front)\n"
            "out = run.result(timeout=240)\n"
            "print(out['decision'], out['document'] == case.identity.document())\n")
    case = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert case.returncode == 0, case.stderr
    assert case.stdout.split() == ["approve", "True"], case.stdout + case.stderr
