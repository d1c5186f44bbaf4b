"""The hub: one detached, named Ray actor per cluster that replicas read shared state from. It holds
what the control plane publishes for the data plane, each topic with a version number (``keys``:
hashes of valid API keys; ``functions``: the active specs, for the catch-all gateway's table), read
by replicas and gateways through ``serving.pushed`` without a database round trip, and a bounded log
buffer per function (pushed by replicas in batches, copied every second by the control plane into
the registry database, where ``fnctl logs`` reads them: ``control.logbook``), and the sums of the data
plane's metrics (``serving.metrics``: pushed by replicas and run hosts, read by the control plane's
``/metrics``). Apart from the topics it holds the decrypted secrets that deployed functions name, for
their replicas to read at start (``serving.secrets``; never a topic, so the gateways' reads never carry
them). It is cheap (no CPU reserved) and rebuilt by the control plane when missing, so losing it loses
at most buffered log lines and the metrics' sums (Prometheus takes counters that start again from zero
as a reset).

A restarted hub (Ray restarts it when its process dies) comes back empty, with a new ``start_id``.
Until the control plane has filled it again, it answers every topic "nothing published" (version 0,
no value) and no secrets, which the data plane's copies take as "keep what you have", never as
"there are no keys". The control plane watches ``status()`` every second and refills a hub whose
``start_id`` changed at once (``control.plane.ControlPlane.refill_hub``). The hub does not read the
registry itself: it would need the database's credentials and the secrets' master key, which only
the control plane holds, and SQLAlchemy in a process of the data plane.

Replicas and gateways reach it through a ``HubRef``: looked up by name when first needed, and again
after a failed call, so a replica started while the hub was away, or one holding a handle to a hub
that was replaced, finds the current one without restarting.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from fnplatform.deadlines import HUB_CALL_TIMEOUT_S, HUB_READ_TIMEOUT_S, ray_get

from .metrics import Delta, Totals

HUB_NAME = "fn-hub"
NAMESPACE = "fn"
MAX_LINES_PER_FUNCTION = 5000
MAX_LINE_CHARS = 64 * 1024  # a longer log line is cut: the buffer's bound is lines times this
MAX_WANTS = 1000  # versions asked for between two of the control plane's takes; more wait for the next
LOOKUP_RETRY_S = 1.0  # a replica looks the hub up by name at most this often while it is missing


class Hub:
    # async methods: one event loop, so no locks are needed around the buffers
    def __init__(self) -> None:
        self.start_id = uuid.uuid4().hex[:12]  # new on every (re)start: how the control plane sees it came back empty
        self._topics: dict[str, tuple[int, Any]] = {}
        # Versions continue from the clock, so a restarted hub never hands out a version a reader already
        # holds for older content (it would answer "nothing new" and the reader would keep a stale copy).
        self._version = time.time_ns() // 1000
        self._secrets_filled = False
        self._logs: dict[str, deque[tuple[int, str]]] = {}
        self._seq = 0
        self._secrets: dict[str, dict[str, Any]] = {}
        self._metrics = Totals()
        self._wants: set[tuple[str, int]] = set()

    async def publish(self, topic: str, value: Any) -> int:
        """Replace *topic*'s value; returns its version (a new one, higher than all before, unless the value is unchanged)."""
        current = self._topics.get(topic)
        if current is not None and current[1] == value:
            return current[0]
        self._version += 1
        self._topics[topic] = (self._version, value)
        return self._version

    async def read(self, topic: str, known: int = -1) -> tuple[int, Any]:
        """*topic*'s version and value; the value is None when the version is *known* (nothing new to send).
        Version 0 with None: not ready, nothing was published since this hub started (a reader keeps its copy)."""
        version, value = self._topics.get(topic, (0, None))
        return version, (None if version == known else value)

    async def status(self) -> dict[str, Any]:
        """This hub's start id and what it holds: the control plane refills it when either says it is empty."""
        return {"start_id": self.start_id, "topics": sorted(self._topics), "secrets": self._secrets_filled}

    async def put_secrets(self, secrets: dict[str, dict[str, Any]]) -> None:
        """Replace every secret held: {name: {"revision": n, "values": {KEY: VALUE}}}; a secret no deployed
        function names any more is dropped."""
        self._secrets = secrets
        self._secrets_filled = True

    async def read_secrets(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """The held secrets among *names* (one that is missing is not published, or not yet after a restart)."""
        return {name: self._secrets[name] for name in names if name in self._secrets}

    async def push_logs(self, function: str, lines: list[str]) -> None:
        buffer = self._logs.setdefault(function, deque(maxlen=MAX_LINES_PER_FUNCTION))
        for line in lines:
            self._seq += 1
            buffer.append((self._seq, line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " [cut]"))

    async def read_logs(self, function: str, after: int = 0, limit: int = 1000) -> tuple[int, list[str]]:
        """Lines with a sequence number above *after* (at most *limit*, the newest), and the last number."""
        buffer = self._logs.get(function, deque())
        lines = [(seq, line) for seq, line in buffer if seq > after][-limit:]
        return (lines[-1][0] if lines else after), [line for _, line in lines]

    async def log_heads(self) -> tuple[str, dict[str, int]]:
        """This hub's start id and each function's last sequence number: the control plane's drain asks
        this once a second and reads only the functions that moved (sequence numbers restart with the hub)."""
        return self.start_id, {function: buffer[-1][0] for function, buffer in self._logs.items() if buffer}

    async def logs_after(self, function: str, after: int, limit: int) -> tuple[str, int, list[str]]:
        """The *oldest* lines above *after* (at most *limit*; read_logs gives the newest), the last number
        read, and this hub's start id: a drain pages through in order and sees when the hub restarted."""
        lines = [(seq, line) for seq, line in self._logs.get(function, ()) if seq > after][:limit]
        return self.start_id, (lines[-1][0] if lines else after), [line for _, line in lines]

    async def forget(self, function: str) -> None:
        self._logs.pop(function, None)

    async def want(self, function: str, version: int) -> None:
        """A pinned call waits for *version* of *function*, which is not running: the control plane starts it."""
        if len(self._wants) < MAX_WANTS:
            self._wants.add((function, version))

    async def wants(self) -> list[tuple[str, int]]:
        """The versions asked for since the last call (the control plane takes them every second)."""
        wanted, self._wants = sorted(self._wants), set()
        return wanted

    async def add_metrics(self, source: str, seq: int, delta: Delta) -> bool:
        """One process's counts since its last push; a push already applied (a retry) is ignored: False."""
        return self._metrics.add(source, seq, delta)

    async def metrics(self) -> Delta:
        """Every process's counts summed since this hub started, and the live processes' gauges."""
        return self._metrics.snapshot()


class HubClient:
    """The control plane's blocking view of the hub actor (tests hand the control plane an in-process one)."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor

    # Every wait has a deadline (fnplatform.deadlines): a hung or restarting hub is a 503, never a held thread.
    def publish(self, topics: dict[str, Any]) -> None:
        ray_get([self._actor.publish.remote(topic, value) for topic, value in topics.items()], "the hub actor")

    def put_secrets(self, secrets: dict[str, dict[str, Any]]) -> None:
        ray_get(self._actor.put_secrets.remote(secrets), "the hub actor")

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = ray_get(self._actor.status.remote(), "the hub actor")
        return status

    def read_logs(self, function: str, after: int, limit: int) -> tuple[int, list[str]]:
        last, lines = ray_get(self._actor.read_logs.remote(function, after, limit), "the hub actor")
        return int(last), list(lines)

    def forget(self, function: str) -> None:
        self._actor.forget.remote(function)  # a few buffered log lines; not worth waiting for

    def metrics(self) -> Delta:
        totals: Delta = ray_get(self._actor.metrics.remote(), "the hub actor")
        return totals

    def wants(self) -> list[tuple[str, int]]:
        return [(str(f), int(v)) for f, v in ray_get(self._actor.wants.remote(), "the hub actor")]

    def log_heads(self) -> tuple[str, dict[str, int]]:
        start_id, heads = ray_get(self._actor.log_heads.remote(), "the hub actor")
        return str(start_id), dict(heads)

    def logs_after(self, function: str, after: int, limit: int) -> tuple[str, int, list[str]]:
        start_id, last, lines = ray_get(self._actor.logs_after.remote(function, after, limit), "the hub actor")
        return str(start_id), int(last), list(lines)


def get_or_create_hub() -> Any:
    """The hub actor handle (creating it if missing); needs a connected Ray driver."""
    import ray

    actor_cls: Any = ray.remote(Hub)
    # Task events off: every replica's reads would otherwise leave a record each in the GCS.
    return actor_cls.options(num_cpus=0, max_restarts=-1, max_concurrency=64, name=HUB_NAME, namespace=NAMESPACE,
                             lifetime="detached", get_if_exists=True, enable_task_events=False).remote()


def find_hub() -> Any:
    import ray

    # ray.get_actor would otherwise start a whole local Ray in a process that has none
    if not ray.is_initialized():
        raise HubUnavailable("this process is not connected to Ray")
    return ray.get_actor(HUB_NAME, namespace=NAMESPACE)


class HubUnavailable(Exception):
    """The hub could not be looked up (not created yet, or Ray's control store unreachable)."""


class HubRef:
    """The data plane's handle on the hub, shaped like an actor handle (``await hub.read.remote(...)``).

    The handle is looked up by name on first use and dropped after any failed or timed-out call, so the
    next call looks it up again (at most once per ``retry_s`` while it cannot be found): a replica never
    holds a dead handle, nor gives up because the hub was missing when it started. Awaited calls have a
    deadline; ``push_logs`` is sent without waiting (log lines are best effort)."""

    def __init__(self, find: Callable[[], Any] = find_hub, *, retry_s: float = LOOKUP_RETRY_S,
                 timeout_s: float = HUB_READ_TIMEOUT_S) -> None:
        self._find = find
        self._retry_s = retry_s
        self.timeout_s = timeout_s
        self._handle: Any = None
        self._looked_at = -math.inf
        self._lock = threading.Lock()  # the log shipper's thread and the event loop both call

    def handle(self) -> Any:
        """The actor handle, looked up now if none is held (HubUnavailable when that fails)."""
        with self._lock:
            if self._handle is not None:
                return self._handle
            if time.monotonic() - self._looked_at < self._retry_s:
                raise HubUnavailable("the hub actor was not found a moment ago; not asking again yet")
            self._looked_at = time.monotonic()
            try:
                self._handle = self._find()
            except Exception as exc:  # noqa: BLE001 - missing or unreachable alike: try again later
                raise HubUnavailable(f"the hub actor {HUB_NAME!r} was not found: {type(exc).__name__}: {exc}") from None
            return self._handle

    def drop(self, handle: Any) -> None:
        """Forget *handle* after it failed (unless another lookup already replaced it)."""
        with self._lock:
            if self._handle is handle:
                self._handle = None

    def call(self, method: str, *args: Any) -> Any:
        """A blocking call with the hub's deadline, for a thread outside the event loop (the metrics shipper)."""
        handle = self.handle()
        try:
            return ray_get(getattr(handle, method).remote(*args), "the hub actor", HUB_CALL_TIMEOUT_S)
        except Exception:
            self.drop(handle)
            raise

    @property
    def read(self) -> _Method:
        return _Method(self, "read")

    @property
    def read_secrets(self) -> _Method:
        return _Method(self, "read_secrets")

    @property
    def push_logs(self) -> _Method:
        return _Method(self, "push_logs")

    @property
    def want(self) -> _Method:
        return _Method(self, "want")


class _Method:
    def __init__(self, ref: HubRef, name: str) -> None:
        self._ref = ref
        self._name = name

    def remote(self, *args: Any) -> _Call:
        handle = self._ref.handle()
        try:
            pending = getattr(handle, self._name).remote(*args)
        except Exception:
            self._ref.drop(handle)
            raise
        return _Call(self._ref, handle, pending)


class _Call:
    """A call's result, awaited with the hub's deadline; not a coroutine, so one never awaited warns of nothing."""

    def __init__(self, ref: HubRef, handle: Any, pending: Awaitable[Any]) -> None:
        self._ref = ref
        self._handle = handle
        self._pending = pending

    def __await__(self) -> Generator[Any, None, Any]:
        return self._result().__await__()

    async def _result(self) -> Any:
        try:
            return await asyncio.wait_for(self._pending, self._ref.timeout_s)
        except Exception:  # the actor died, was replaced, or hangs: look it up again next time
            self._ref.drop(self._handle)
            raise


def lazy_hub() -> HubRef:
    """The hub for a replica or gateway, found by name when first used (Serve builds them with no arguments)."""
    return HubRef()
