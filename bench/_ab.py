"""A B rounds of one measurement: this checkout against a baseline (another revision, other settings, or
both), for bench/warm_vs.py and bench/cpu_per_call.py. Rounds alternate A B so drift on the machine falls
on both sides."""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
from _procs import LocalPlatform
from _wrk import ensure_wrk, run_wrk
from first_call import export

HERE = Path(__file__).resolve().parent
T = TypeVar("T")
# Both sides run Ray as `fnctl up` now starts it (control/local.py), so only the code or the settings differ.
SAME_RAY = {"RAY_enable_metrics_collection": "0"}


def add_baseline_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", default=None,
                        help="git revision to compare with (e.g. the commit before a change); default: this checkout")
    parser.add_argument("--baseline-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting of the baseline's platform only (repeatable), e.g. FN_TRACE_SAMPLE=0")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds (default 2)")
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run (default 10)")


def ab_rounds(parser: argparse.ArgumentParser, args: argparse.Namespace,
              measure: Callable[[dict[str, str]], T]) -> tuple[str, dict[str, list[T]]]:
    """*measure* once per side and round, given the extra environment of that side's platform (the baseline
    revision's code first on PYTHONPATH, exported with ``git archive``); the baseline's label and the runs."""
    baseline_env = dict(_setting(parser, text) for text in args.baseline_env)
    if args.baseline is None and not baseline_env:
        parser.error("give --baseline REV, --baseline-env NAME=VALUE, or both")
    ensure_wrk()
    old = export(args.baseline) if args.baseline else None
    if old is not None:
        baseline_env["PYTHONPATH"] = os.pathsep.join(str(old / p) for p in ("sdk", "cli", "platform"))
    runs: dict[str, list[T]] = {"this": [], "baseline": []}
    try:
        for round_no in range(1, args.rounds + 1):
            for which, env in (("this", {}), ("baseline", baseline_env)):
                print(f"round {round_no}: {which}", flush=True)
                runs[which].append(measure({**SAME_RAY, **env}))
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return " ".join([args.baseline or "this", *args.baseline_env]), runs


def _setting(parser: argparse.ArgumentParser, text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith(("FN_", "RAY_")):
        parser.error(f"--baseline-env {text!r}: use NAME=VALUE with a FN_ or RAY_ variable (e.g. FN_TRACE_SAMPLE=0)")
    return name, value


def warm_noop(platform: LocalPlatform) -> tuple[str, httpx.Response]:
    """Deploy bench/projects/warm's no-op, check one answer and warm it up: its URL and that answer."""
    platform.deploy(HERE / "projects" / "warm")
    url = f"{platform.http_url}/noop"
    answer = httpx.post(url, json={"x": 1}, headers={"Authorization": f"Bearer {platform.key}"}, timeout=60)
    if answer.status_code != 200 or answer.json() != {"x": 1}:
        raise RuntimeError(f"{url} answered {answer.status_code} {answer.text[:200]}")
    run_wrk(url, platform.key, 4, 3)  # warm-up, discarded
    return url, answer
