"""The chaos suite's short run (``bench/chaos.py --quick``): steady HTTP, SDK, flow and job load while a replica,
the hub and a flow run's actor are killed in turn. Nothing may fail otherwise than with fn's clean error,
nothing may hang, every flow run given its inputs finishes with the right output, and every job accepted ends
with the right result (however often the platform ran it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.mark.timeout(900)
def test_quick_chaos_run_fails_only_cleanly_hangs_nothing_and_loses_no_flow_input_or_job(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FN_", "RAY_"))}
    # --no-wait: the suite measures no speed, so it need not wait for another Ray cluster on this machine.
    run = subprocess.run([sys.executable, str(REPO / "bench" / "chaos.py"), "--quick", "--no-wait", "--json", str(out)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=840, check=False)
    report = run.stdout[-4000:] + run.stderr[-4000:]
    assert run.returncode == 0, report
    results = json.loads(out.read_text())
    rows = {row["fault"]: row for row in results["faults"]}
    assert list(rows) == ["replica", "hub", "flow-run"], report
    for name, row in rows.items():
        where = f"{name}: {row['note']}\n{json.dumps(row['examples'], indent=1)}\n{report}"
        assert not row["error"], where
        assert row["requests"]["ok"] > 0, where
        assert row["requests"]["other"] == 0 and row["requests"]["cut"] == 0, where
        assert row["requests"]["hung"] == 0, where
        assert row["flows"]["lost"] == 0, where
        assert row["flows"]["right"] == row["flows"]["runs"], where
        assert row["jobs"]["lost"] == 0, f"{where}\n{json.dumps(results['jobs_not_right'], indent=1)}"
        assert row["jobs"]["right"] == row["jobs"]["accepted"], f"{where}\n{json.dumps(results['jobs_not_right'], indent=1)}"
    assert sum(row["flows"]["runs"] for row in rows.values()) > 0, report
    assert sum(row["jobs"]["accepted"] for row in rows.values()) > 0, report
    assert results["missed"] == [], report
