"""Why a call was cold: the moments of one replica's start, and the phases between them.

A call that arrived before its replica was ready waited for it. Its wait is cut at the moments the
platform can see, all wall-clock seconds (``time.time()``), so the phases follow one another and add
up to the whole wait:

    arrived   the ingress took the request (HAProxy's or Serve's proxy's ``fn-arrived`` stamp, in ms)
    scheduled Serve's controller asked Ray for the replica's actor        scale: arrived -> scheduled
    process   the replica's worker process started (/proc)                place: scheduled -> process
    init      the replica's constructor began                             start: process -> init
    fetched   bundle, artifacts and secrets are on the node               fetch: init -> fetched
    imported  the entry point is imported                                 import: fetched -> imported
    set_up    the model is created and its setup() returned               setup: imported -> set_up
    routed    the call reached the replica                                route: set_up -> routed

A moment that is unknown (a handle call has no ingress stamp; the controller did not answer) or out of
order (a worker Ray had started before the replica was asked for) is taken as the one before it, so its
phase is 0 and the next phase holds the time.

Each replica start is measured once in ``fn_cold_start_seconds{function, phase}``: place to setup when
the replica is ready, and scale, route and total on the first call that waited for it (a replica a
handle call or a prewarm started has no ingress stamp: its startup phases only). Every call that
waited gets its own breakdown in its ``Fn-Cold-Start`` header and its log line.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .logs import LogShipper
    from .metrics import Recorder

PHASES = ("scale", "place", "start", "fetch", "import", "setup", "route")
STARTUP_PHASES = PHASES[1:-1]  # known when the replica is ready, whatever call (if any) is waiting
ARRIVED_HEADER = "fn-arrived"  # ms since the epoch, set by the ingress (serving.arrival, ingress_errors)
HEADER = "fn-cold-start"
LOG_MARK = "cold start:"  # in the request's log line; `fnctl describe` finds the last cold starts by it
# A stamp further in the past than this, or in the future, is not the ingress's: no breakdown from it.
MAX_WAIT_S = 3600.0
CLOCK_SKEW_S = 1.0


def process_started_at() -> float | None:
    """When this process started, in wall-clock seconds (None where /proc cannot tell)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        # Fields after the command name (which may hold spaces) start at field 3; starttime is field 22.
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return time.time() - age


def parse_arrived(value: str | None, now: float) -> float | None:
    """The ingress's ``fn-arrived`` stamp in seconds, or None when missing or not believable."""
    if not value or not value.isdigit() or len(value) > 16:
        return None
    arrived = int(value) / 1000
    return arrived if now - MAX_WAIT_S <= arrived <= now + CLOCK_SKEW_S else None


@dataclass
class Breakdown:
    """One wait, by phase; ``total`` is their sum (from arrival to the call reaching the replica)."""

    phases: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.phases.values())

    def header(self) -> str:
        """``total=1.21, scale=0.66, ...`` (seconds, two decimals): the ``Fn-Cold-Start`` header and log text."""
        return ", ".join(f"{name}={seconds:.2f}" for name, seconds in (("total", self.total), *self.phases.items()))


def parse_breakdown(text: str) -> dict[str, float]:
    """The seconds by name of a ``Breakdown.header()`` text (``total`` included); {} when it is not one."""
    values: dict[str, float] = {}
    for part in text.split(","):
        name, sep, number = part.strip().partition("=")
        try:
            values[name] = float(number)
        except ValueError:
            return {}
        if not sep or name not in ("total", *PHASES):
            return {}
    return values


@dataclass
class ReplicaStart:
    """The moments of one replica's start that the replica itself sees (see the module's text)."""

    init: float = field(default_factory=time.time)
    process: float | None = field(default_factory=process_started_at)
    scheduled: float | None = None  # asked of Serve's controller after start (ray_compat.replica_scheduled_at)
    fetched: float | None = None
    imported: float | None = None
    set_up: float | None = None
    ready: float | None = None  # the constructor returned: a call arriving before this waited for the replica

    def stamp(self, moment: str) -> None:
        setattr(self, moment, time.time())

    def _moments(self) -> list[float | None]:
        return [self.scheduled, self.process, self.init, self.fetched, self.imported, self.set_up]

    def waited(self, arrived: float | None) -> bool:
        return arrived is not None and self.ready is not None and arrived < self.ready

    def breakdown(self, arrived: float, routed: float) -> Breakdown:
        """The wait of a call that arrived at *arrived* and reached the replica at *routed*."""
        return Breakdown(_phases(PHASES, [arrived, *self._moments(), routed]))

    def startup(self) -> Breakdown:
        """The replica's own start (place to setup), from the controller's request, or from its process's
        start when the controller's time is unknown; what is known without a waiting call."""
        moments = self._moments()
        first = next((index for index, moment in enumerate(moments) if moment is not None), 2)
        phases = _phases(STARTUP_PHASES[first:], moments[first:])
        return Breakdown({name: phases.get(name, 0.0) for name in STARTUP_PHASES})


def _phases(names: tuple[str, ...], moments: list[float | None]) -> dict[str, float]:
    """Consecutive phases between *moments* (one more than *names*); the first and last must be known."""
    start = moments[0]
    assert start is not None
    end = moments[-1] if moments[-1] is not None else start
    phases: dict[str, float] = {}
    previous = start
    for name, moment in zip(names, moments[1:], strict=True):
        at = min(max(moment if moment is not None else previous, previous), max(end, previous))
        phases[name] = at - previous
        previous = at
    return phases


METRIC = "fn_cold_start_seconds"
SCHEDULE_WAIT_S = 2.0  # a waiting call's answer waits at most this long for the controller's start time


class ColdStarts:
    """One replica's start, and the breakdown of each call that waited for it."""

    def __init__(self, function: str, start: ReplicaStart, recorder: Recorder, shipper: LogShipper) -> None:
        self.function = function
        self.start = start
        self._recorder = recorder
        self._shipper = shipper
        self._scheduled_known = threading.Event()
        self._scheduled_known.set()  # until learn_schedule asks the controller
        self._first_call = True

    def learn_schedule(self, scheduled_at: Callable[[], float | None]) -> None:
        """Ask, off the constructor, when the replica was asked for; then record the startup phases."""
        self._scheduled_known.clear()
        threading.Thread(target=self._learn, args=(scheduled_at,), name="fn-cold-start", daemon=True).start()

    def _learn(self, scheduled_at: Callable[[], float | None]) -> None:
        try:
            self.start.scheduled = scheduled_at()
        except Exception:  # noqa: BLE001 - the controller busy or gone: the phases start at the process instead
            self.start.scheduled = None
        finally:
            self._scheduled_known.set()
        startup = self.start.startup()
        for phase, seconds in startup.phases.items():
            self._recorder.observe(METRIC, (self.function, phase), seconds)
        self._shipper.line("INFO", f"replica started: {', '.join(f'{k}={v:.2f}' for k, v in startup.phases.items())}")

    async def of_call(self, arrived_header: str | None) -> Breakdown | None:
        """The breakdown of a call the ingress stamped *arrived_header*, when it waited for this replica."""
        if arrived_header is None:
            return None
        routed = time.time()
        arrived = parse_arrived(arrived_header, routed)
        if not self.start.waited(arrived):
            return None
        assert arrived is not None
        if not self._scheduled_known.is_set():
            await asyncio.to_thread(self._scheduled_known.wait, SCHEDULE_WAIT_S)
        cold = self.start.breakdown(arrived, routed)
        if self._first_call:
            self._first_call = False
            for phase in ("scale", "route"):
                self._recorder.observe(METRIC, (self.function, phase), cold.phases[phase])
            self._recorder.observe(METRIC, (self.function, "total"), cold.total)
        return cold
