"""Which version of a function a call goes to: pinned, split by weight, or the active one; and shadow copies.

The active version runs as the Serve application ``<name>`` at ``/<name>`` (as every function always has);
any other version that must run (a canary, a shadow, one started for pinned calls) is the application
``<name>@v<N>``, reached by handles only. The control plane publishes the table of versions through the
hub (topic ``traffic``): per function, its active version, the versions that exist, those running beside
it, the weights of a split and the shadow. The active version's replicas route (HTTP and handle calls
alike) and handle callers choose directly, so a function with no split pays one dict lookup per call.

A pinned call to a version that is not running asks the control plane to start it (``Hub.want``) and
waits until the table says it runs.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from fn import BadRequest, NotFound, Timeout

VERSION_HEADER = "fn-version"
VERSION_ARGUMENT = "_fn_version"  # a handle call's pin, popped by the replica before the function sees it
SHADOW_ARGUMENT = "_fn_shadow"  # set on the copy of a call sent to a shadow version
FORWARDED_ARGUMENT = "_fn_forwarded"  # a handle call one replica passed on: never passed on again
FORWARDED_HEADER = "fn-forwarded"  # the same for an HTTP call
TOPIC = "traffic"
REFRESH_S = 2.0  # how old the copy may get before a call starts a re-read in the background
START_WAIT_S = 120.0  # a pinned call waits at most this long (and its timeout) for its version to start


def app_name(function: str, version: int | None = None) -> str:
    """The Serve application running *version* of *function*: ``<name>`` for the active one, else ``<name>@v<N>``."""
    return function if version is None else f"{function}@v{version}"


def parse_version(text: str | None, source: str = "the Fn-Version header") -> int | None:
    if text is None or text == "":
        return None
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1 or str(number) != text.strip():
        raise BadRequest(f"{source} must be a version number (1, 2, ...), not {text[:40]!r}; "
                         f"'fnctl versions NAME' lists them", status=400)
    return number


@dataclass(frozen=True)
class Entry:
    """One function's row of the published table."""

    active: int
    versions: tuple[int, ...]  # every version that can be called (not failed, not collected)
    running: frozenset[int]  # versions besides the active one that run in Serve
    split: tuple[tuple[int, ...], tuple[float, ...]] = ((), ())  # versions, cumulative weights (empty: no split)
    shadow: tuple[int, float] | None = None  # (version, share of calls 0..1)
    timeouts: tuple[tuple[int, float], ...] = ()  # (version, its timeout_s) for the active and running versions

    @classmethod
    def of(cls, data: dict[str, Any]) -> Entry:
        weights = sorted((int(v), float(w)) for v, w in (data.get("weights") or {}).items() if float(w) > 0)
        total, cumulative = 0.0, []
        for _, weight in weights:
            total += weight
            cumulative.append(total)
        shadow = data.get("shadow")
        return cls(active=int(data["active"]), versions=tuple(int(v) for v in data.get("versions", ())),
                   running=frozenset(int(v) for v in data.get("running", ())),
                   split=(tuple(v for v, _ in weights), tuple(cumulative)) if weights else ((), ()),
                   shadow=(int(shadow[0]), float(shadow[1])) if shadow else None,
                   timeouts=tuple((int(v), float(t)) for v, t in (data.get("timeouts") or {}).items()))

    def timeout_of(self, version: int, default: float) -> float:
        """*version*'s timeout_s, as published; *default* when the table does not say."""
        return next((t for v, t in self.timeouts if v == version), default)

    def pick(self) -> int:
        """A version drawn by the split's weights; the active one when there is no split."""
        versions, cumulative = self.split
        if not versions:
            return self.active
        return versions[min(bisect.bisect_right(cumulative, random.random() * cumulative[-1]), len(versions) - 1)]

    def shadowed(self) -> int | None:
        """The shadow version when this call is to be copied to it (drawn by its share), else None."""
        if self.shadow is None or random.random() >= self.shadow[1]:
            return None
        return self.shadow[0]

    def unknown(self, function: str, version: int) -> NotFound:
        listed = ", ".join(str(v) for v in self.versions) or "none"
        return NotFound(f"{function} has no version {version} that can be called; its versions: {listed} "
                        f"('fnctl versions {function}')", status=404, detail={"versions": list(self.versions)})


class TrafficTable:
    """This process's copy of the ``traffic`` topic. The first call after it is REFRESH_S old reads it again
    before it is routed (calls meanwhile use the copy as it is), so a change reaches every caller within
    REFRESH_S of being published; while the hub does not answer, re-reads go to the background and calls
    keep routing by the last copy."""

    def __init__(self, hub: Any) -> None:
        self._hub = hub
        self._entries: dict[str, Entry] = {}
        self._version = -1
        self._read_at = -float("inf")
        self._reading = False
        self._healthy = True  # the last read answered: the next stale caller may wait for one
        self._background: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()

    def _claim(self) -> bool:
        """Whether this caller reads (the copy is stale and no read is in flight)."""
        if time.monotonic() - self._read_at <= REFRESH_S:
            return False
        with self._lock:
            if self._reading:
                return False
            self._reading = True
            return True

    def get(self, function: str) -> Entry | None:
        """The entry of *function* (None: one version, no split), for a caller outside the event loop."""
        if self._claim():
            if self._healthy:
                self._read(lambda: self._hub.call("read", TOPIC, self._version))
            else:
                threading.Thread(target=self._read, args=(lambda: self._hub.call("read", TOPIC, self._version),),
                                 name="fn-traffic", daemon=True).start()
        return self._entries.get(function)

    async def aget(self, function: str) -> Entry | None:
        """``get`` for a caller on the event loop."""
        if self._claim():
            if self._healthy:
                await self._aread()
            else:
                task = asyncio.get_running_loop().create_task(self._aread())
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        return self._entries.get(function)

    async def _aread(self) -> None:
        started = time.monotonic()
        try:
            answer = await self._hub.read.remote(TOPIC, self._version)
        except Exception:  # noqa: BLE001 - the hub is away: keep routing by the last copy
            answer = None
        self._settle(started, answer)

    def _read(self, read: Any) -> None:
        started = time.monotonic()
        try:
            answer = read()
        except Exception:  # noqa: BLE001 - the hub is away: keep routing by the last copy
            answer = None
        self._settle(started, answer)

    def _settle(self, started: float, answer: tuple[int, Any] | None) -> None:
        self._healthy = answer is not None
        with self._lock:
            self._reading = False
            self._read_at = started
        if answer is not None:
            self._take(*answer)

    def _take(self, version: int, value: Any) -> None:
        if value is not None and version != self._version:
            self._entries = {name: Entry.of(data) for name, data in value.items()}
            self._version = version

    def refresh(self) -> None:
        """Read the table now (a caller that needs a version the copy does not show running)."""
        with self._lock:
            self._reading = True
        self._read(lambda: self._hub.call("read", TOPIC, self._version))

    async def running(self, function: str, version: int, timeout: float) -> Entry:
        """The entry once *version* of *function* runs (the active one, or its own application): asks the control
        plane to start it and waits; NotFound naming the versions when there is no such version."""
        deadline = time.monotonic() + min(timeout, START_WAIT_S)
        asked = False
        while True:
            entry = self._entries.get(function)
            if entry is not None and (version == entry.active or version in entry.running):
                return entry
            if entry is not None and version not in entry.versions and asked:
                raise entry.unknown(function, version)
            if time.monotonic() > deadline:
                raise Timeout(f"version {version} of {function} did not start within {min(timeout, START_WAIT_S):g} s",
                              status=504)
            if not asked or entry is None or version in entry.versions:
                with contextlib.suppress(Exception):  # the hub is restarting: ask again on the next turn
                    await self._hub.want.remote(function, version)
                asked = True
            await asyncio.sleep(0.25)
            await asyncio.to_thread(self.refresh)


_table: TrafficTable | None = None
_table_lock = threading.Lock()


def table(hub: Any) -> TrafficTable:
    """The process's one table (replicas and the handles in them share it)."""
    global _table
    with _table_lock:
        if _table is None:
            _table = TrafficTable(hub)
        return _table


def choose(name: str, version: int | None, arguments: dict[str, Any]) -> tuple[str, int | None]:
    """Where a handle call to *name* goes, and the version chosen (None: the active one, not known here): the pinned
    *version*, else one drawn by the split. A pin travels in *arguments* (VERSION_ARGUMENT): the replica that
    receives it answers only as that version, and passes the call on once (starting the version if it is not
    running) when the table it was chosen by was a moment old."""
    if version is not None:  # pinned: the replica that answers checks it is that version
        arguments[VERSION_ARGUMENT] = version
    entry = table_of_process().get(name)
    if entry is None:
        return name, version
    if version is None:
        version = entry.pick()
    if version == entry.active or version not in entry.running:
        return name, version
    return app_name(name, version), version


def table_of_process() -> TrafficTable:
    """The process's table, on the hub found by name (a flow host or gateway that started no replica)."""
    if _table is not None:
        return _table
    from .hub import lazy_hub

    return table(lazy_hub())
