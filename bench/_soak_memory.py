"""The soak's memory bookkeeping, with no platform in it: a stable role for each process (from its command
line or the title Ray gives it), one sample of RSS per role, and per role the least-squares slope over the
last part of the run, a verdict and the table."""

from __future__ import annotations

import os
import re
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

TOTAL = "platform total"
# Ray titles a worker "ray::<Class>" while its actor is idle and "ray::<Class>.<method>" while it runs one;
# a Serve replica is "ray::ServeReplica:<app>:<deployment>"; the method is not part of the role.
RAY_TITLE = re.compile(r"ray::([^\s.]+)")
DASHBOARD_MODULE = re.compile(r"ray-dashboard-(\w+?)-\d+")  # ray-dashboard-<Module>-<incarnation> (...)


def role(cmdline: list[str]) -> str:
    """A name that stays the same across restarts and replacements of a process of this kind."""
    title = " ".join(cmdline).strip()
    if not title:
        return "?"
    if match := RAY_TITLE.match(title):
        return f"ray::{match.group(1)}"
    if match := DASHBOARD_MODULE.match(title):
        return f"dashboard:{match.group(1)}"
    if "fnplatform.control.server" in title:
        return "control plane"
    exe = os.path.basename(title.split()[0])
    if "haproxy" in exe:
        return "haproxy"
    if exe.startswith("python"):
        args = title.split()[1:]
        if "-m" in args and args.index("-m") + 1 < len(args):
            return f"python -m {args[args.index('-m') + 1]}"
        script = next((a for a in args if a.endswith(".py")), None)  # Ray's dashboard.py, log_monitor.py, ...
        if script:
            return f"python {os.path.basename(script)}"
    return exe


@dataclass
class Sample:
    t_s: float  # seconds since the load started
    roles: dict[str, tuple[int, float]]  # role -> (processes, RSS in MiB summed over them)

    def total(self) -> tuple[int, float]:
        return sum(n for n, _ in self.roles.values()), sum(m for _, m in self.roles.values())


def add(roles: dict[str, tuple[int, float]], name: str, rss_bytes: int) -> None:
    n, mib = roles.get(name, (0, 0.0))
    roles[name] = (n + 1, mib + rss_bytes / 2**20)


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x; None with fewer than 2 distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


@dataclass(frozen=True)
class Threshold:
    """A role grows when its slope exceeds both: a share of its median per hour, and a floor."""

    share_per_hour: float = 0.05
    floor_mib_per_hour: float = 20.0
    fit_fraction: float = 2 / 3  # fit the last two thirds of the run: the first third is warm-up
    min_points: int = 3


@dataclass
class RoleSummary:
    role: str
    procs_min: int
    procs_max: int
    start_mib: float | None  # first sample (None: absent then)
    end_mib: float | None  # last sample
    max_mib: float
    median_mib: float  # over the fit window, absent samples as 0
    slope_mib_per_h: float | None = None  # only for a role present in every sample of the window
    verdict: str = ""
    # The slope (and its verdict's median) is of the RSS per process: the role's process count changed
    # within the window (replicas added by the autoscaler or a redeploy), which a sum's slope would measure.
    per_process: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def verdict(slope_mib_h: float | None, median_mib: float, points: int, th: Threshold) -> str:
    if slope_mib_h is None or points < th.min_points:
        return "too few samples"
    grows = slope_mib_h > th.share_per_hour * median_mib and slope_mib_h > th.floor_mib_per_hour
    return "GROWS" if grows else "flat"


def summarize(samples: list[Sample], th: Threshold = Threshold()) -> list[RoleSummary]:
    """Per role (and the platform's total): processes, RSS at start, end and max, and over the fit window
    the slope in MiB/hour with a verdict. A role absent from some sample of the window (a replica scaled to
    zero, a worker between tasks) comes and goes: its slope would measure the load, not a leak."""
    if not samples:
        return []
    ordered = sorted(samples, key=lambda s: s.t_s)
    first, last = ordered[0].t_s, ordered[-1].t_s
    window = [s for s in ordered if s.t_s >= first + (1 - th.fit_fraction) * (last - first)]
    series = {name for s in ordered for name in s.roles}
    out = []
    for name in [*sorted(series), TOTAL]:
        def at(s: Sample, name: str = name) -> tuple[int, float]:
            return s.total() if name == TOTAL else s.roles.get(name, (0, 0.0))

        counts = [at(s)[0] for s in ordered]
        row = RoleSummary(
            role=name, procs_min=min(counts), procs_max=max(counts),
            start_mib=at(ordered[0])[1] if counts[0] else None, end_mib=at(ordered[-1])[1] if counts[-1] else None,
            max_mib=max(at(s)[1] for s in ordered), median_mib=statistics.median(at(s)[1] for s in window))
        if all(at(s)[0] for s in window):
            row.per_process = per_process = name != TOTAL and len({at(s)[0] for s in window}) > 1

            def value(s: Sample, per_process: bool = per_process) -> float:
                procs, mib = at(s)
                return mib / procs if per_process else mib

            row.slope_mib_per_h = slope([(s.t_s / 3600, value(s)) for s in window])
            median = statistics.median(value(s) for s in window)
            row.verdict = verdict(row.slope_mib_per_h, median, len(window), th)
            if name == TOTAL and len({at(s)[0] for s in window}) > 1:
                row.verdict = "moves with the process count"  # the roles above say which grow
        else:
            row.verdict = "comes and goes"
        out.append(row)
    return out


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def table(rows: list[RoleSummary]) -> str:
    cells: list[tuple[str, ...]] = [("role", "procs", "start MiB", "end MiB", "max MiB", "slope MiB/h", "verdict")]
    for r in rows:
        procs = str(r.procs_min) if r.procs_min == r.procs_max else f"{r.procs_min}-{r.procs_max}"
        trend = "-" if r.slope_mib_per_h is None else f"{r.slope_mib_per_h:+,.1f}" + (" /proc" if r.per_process else "")
        cells.append((r.role, procs, _mib(r.start_mib), _mib(r.end_mib), _mib(r.max_mib), trend, r.verdict))
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) if i in (0, 6) else c[i].rjust(widths[i])
                               for i in range(len(c))).rstrip() for c in cells)


def growing(rows: list[RoleSummary]) -> list[str]:
    return [f"{r.role}: {r.slope_mib_per_h:+.1f} MiB/h{' per process' if r.per_process else ''} (median {r.median_mib:.0f} MiB)"
            for r in rows if r.verdict == "GROWS" and r.slope_mib_per_h is not None]


_GCS_MARKER = "Gcs Debug state:"
_LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d ")  # the next log line ends a debug-state block
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_CLOCKS = re.compile(r"uptime|time|timestamp|since", re.IGNORECASE)  # lines that grow with the clock alone


def gcs_debug_state(processes: list[psutil.Process]) -> str | None:
    """Ray's GCS logs its own counters (tables, caches, queues, task events) to ``gcs_server.out`` in its log
    folder every minute, each block after a "Gcs Debug state:" line: the latest block, what the soak compares
    when the GCS's RSS climbs."""
    for proc in processes:
        try:
            cmdline = proc.cmdline()
        except psutil.Error:
            continue
        if cmdline and cmdline[0].endswith("gcs_server"):
            log_dir = next((a.split("=", 1)[1] for a in cmdline if a.startswith("--log_dir=")), None)
            if log_dir is None:
                return None
            try:
                text = (Path(log_dir) / "gcs_server.out").read_text(errors="replace")
            except OSError:
                return None
            _, marker, block = text.rpartition(_GCS_MARKER)
            if not marker:
                return None
            lines = block.splitlines()[1:]
            end = next((i for i, line in enumerate(lines) if _LOG_LINE.match(line)), len(lines))
            return "\n".join(lines[:end])
    return None


def debug_growth(first: str, last: str, top: int = 15) -> list[str]:
    """The GCS's counter lines whose numbers grew most between two snapshots, as 'line: a -> b'.
    Lines are matched by their text with the numbers taken out (Ray's format has one counter per line)."""
    def index(text: str) -> dict[str, list[float]]:
        return {_NUMBER.sub("#", line.strip()): [float(n) for n in _NUMBER.findall(line)]
                for line in text.splitlines() if _NUMBER.search(line) and not _CLOCKS.search(line)}
    before, after = index(first), index(last)
    grew: list[tuple[float, str]] = []
    for key, values in after.items():
        old = before.get(key)
        if old is None or len(old) != len(values):
            continue
        delta = max((b - a for a, b in zip(old, values, strict=True)), default=0.0)
        if delta > 0:
            grew.append((delta, f"{key}: {old} -> {values}"))
    return [line for _, line in sorted(grew, reverse=True)[:top]]
