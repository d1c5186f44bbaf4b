"""Shadow traffic on the identity flow's decision: a candidate version of kyc-decide with other thresholds
sees every live case beside the active one, and ``fnctl shadow report kyc-decide`` compares them.

    python3 functions/auth/bench/shadow.py                       # 28 cases: every kind, designs in turn
    python3 functions/auth/bench/shadow.py --cases 14 --face-match-max 0.5

A fresh FN_HOME and `fnctl up --gpus 1`; `fnctl deploy functions/auth` (version 1 of each step); a copy of the
project whose thresholds.json sets ``face_match_max`` (and ``face_reject_min`` just above it) to the candidate's
value, deployed with ``--canary 1`` (every step gets a version 2 beside its version 1); every step's split set
back to version 1 alone and kyc-decide's version 2 made its shadow at 100 %; then generated cases of every
kind (genuine, tampered MRZ, mismatching front, another person, expired, replayed selfie, low quality) through
the flow over HTTP. Callers get version 1's decisions; the report compares version 2's with them, by the
project's ``@fn.comparator`` (same decision). Prints the report and writes it to bench/results/kyc_shadow.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from on_defaults import DESIGNS, PROJECT, _fnctl, _free_port

KINDS = ("genuine", "mrz_digit", "front_mismatch", "other_person", "expired", "replay", "low_quality")
STEPS = ("kyc-front", "kyc-back", "kyc-face", "kyc-quality", "kyc-decide")
RESULTS = PROJECT / "bench" / "results" / "kyc_shadow.json"


def candidate(folder: Path, face_match_max: float) -> Path:
    copy = folder / "auth"
    shutil.copytree(PROJECT, copy, ignore=shutil.ignore_patterns("tests", "bench", "__pycache__", ".*"))
    path = copy / "kyc" / "thresholds.json"
    thresholds = json.loads(path.read_text())
    thresholds["values"]["face_match_max"] = face_match_max
    thresholds["values"]["face_reject_min"] = max(thresholds["values"]["face_reject_min"], face_match_max + 0.02)
    thresholds["generated_by"] = "functions/auth/bench/shadow.py: a candidate for shadow traffic"
    path.write_text(json.dumps(thresholds, indent=1))
    return copy


def cases(env: dict[str, str], count: int) -> list[dict[str, object]]:
    plan = [(seed, KINDS[seed % len(KINDS)], DESIGNS[seed % len(DESIGNS)]) for seed in range(count)]
    code = f"""
import json, sys
sys.path.insert(0, {str(PROJECT)!r})
import fn
from kyc.cases import make_case
rows = []
for seed, kind, design in {plan!r}:
    case = make_case(seed, "easy", kind, design)
    run = fn.flows.start("kyc")
    run.put("selfie", case.selfie)
    if case.back is not None:
        run.put("back", case.back)
    run.put("front", case.front)
    if case.back is None:
        run.close_inputs()
    rows.append({{"seed": seed, "kind": kind, "design": design, "decision": run.result(timeout=900)["decision"]}})
print(json.dumps(rows))
"""
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the cases failed:\n{done.stderr}")
    rows: list[dict[str, object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=28, help="generated cases, every kind in turn (default 28)")
    parser.add_argument("--face-match-max", type=float, default=0.45,
                        help="the candidate's face_match_max (version 1's: thresholds.json's, 0.6)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="fnk"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FN_", "RAY_"))}
    env["FN_HOME"] = str(home / ".fn")
    try:
        _fnctl(env, "up", "--gpus", "1", "--api-port", str(_free_port()), "--http-port", str(_free_port()))
        _fnctl(env, "deploy", str(PROJECT))
        _fnctl(env, "deploy", str(candidate(home, args.face_match_max)), "--canary", "1")
        for step in STEPS:
            _fnctl(env, "traffic", step, "--split", "1=100")
        _fnctl(env, "traffic", "kyc-decide", "--shadow", "2=100")
        time.sleep(3)  # the flow hosts re-read the traffic table every 2 s
        rows = cases(env, args.cases)
        time.sleep(5)  # the last comparisons reach the stored logs (shipped every 0.5 s, stored every second)
        report = json.loads(_fnctl(env, "shadow", "report", "kyc-decide", "--json", "--examples", "10"))
        text = _fnctl(env, "shadow", "report", "kyc-decide", "--examples", "5")
    finally:
        subprocess.run([sys.executable, "-m", "fnctl.main", "down"], env=env, capture_output=True, timeout=300, check=False)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"face_match_max": args.face_match_max, "cases": rows, "report": report}, indent=1))
    served = {}
    for row in rows:
        served[row["decision"]] = served.get(row["decision"], 0) + 1
    print(f"{len(rows)} cases answered by kyc-decide v1: {served}")
    print(f"candidate v2: face_match_max {args.face_match_max} (v1: thresholds.json)\n")
    print(text)
    print(f"every number: {RESULTS}")


if __name__ == "__main__":
    main()
