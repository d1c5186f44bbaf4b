"""The chaos suite's steady load: HTTP callers (httpx) and SDK callers (``fn.ref(...).call``) of two functions,
and a flow driver that starts runs, gives their inputs and follows each to its end, all at a fixed rate
whatever the platform does. Every request's outcome is recorded with its start time."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from _chaos_outcomes import (
    OK,
    Outcome,
    RunRecord,
    classify_response,
    classify_sdk_error,
    classify_transport,
)

import fn

FLOW = "chaos-flow"
PROJECT = '''"""The chaos suite's project (written and deployed by bench/chaos.py): two functions and a flow over them."""

import time

import fn


@fn.function(min_replicas=1, timeout_s=20)
def echo(x: int, pad: bytes = b"") -> int:
    return x + len(pad)


@fn.function(min_replicas=1, timeout_s=20)
def slow_add(a: int, b: int) -> int:
    time.sleep(0.2)
    return a + b


flow = fn.Flow("chaos-flow", inputs=["x", "pad"])
first = flow.step("echo", inputs=["x", "pad"])
flow.output("slow-add", inputs={"a": first, "b": "x"})
'''


def flow_output(x: int, pad: bytes) -> int:
    """What a chaos-flow run must answer: echo gives x + len(pad), slow-add adds x."""
    return 2 * x + len(pad)


@dataclass(frozen=True)
class Rates:
    http_echo: float = 5.0  # requests per second
    http_slow_add: float = 4.0
    sdk_echo: float = 4.0
    sdk_slow_add: float = 3.0
    # Each run: start, two inputs (3 requests), then followed to its end. Each run is an actor (a process,
    # about 1 s of CPU to start, kept 30 s after the run ends): more would take half of a 2-core machine.
    flow_runs: float = 0.25


class Load:
    """Callers on threads; ``start()``, then ``stop()`` and ``drain()`` at the end."""

    def __init__(self, http_url: str, key: str, hang_s: float, rates: Rates | None = None) -> None:
        self.http_url = http_url.rstrip("/")
        self.hang_s = hang_s  # a client gives up after this long: "hung"
        self.rates = rates or Rates()
        self.outcomes: list[Outcome] = []
        self.runs: list[RunRecord] = []
        self._client = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=hang_s,
                                    limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
        self._lock = threading.Lock()
        self._in_flight: dict[int, float] = {}
        self._ids = itertools.count()
        self._stop = threading.Event()
        self._give_up = threading.Event()  # followers stop waiting for runs
        self._threads: list[threading.Thread] = []
        self._followers = ThreadPoolExecutor(max_workers=16, thread_name_prefix="chaos-follow")
        self._numbers = itertools.count(1)

    # recording ---------------------------------------------------------------------------------
    def timed(self, caller: str, send: Callable[[], tuple[str, str]]) -> str:
        """Send one request through *send* (which returns its (kind, detail)) and record it."""
        ticket = next(self._ids)
        start = time.monotonic()
        with self._lock:
            self._in_flight[ticket] = start
        try:
            kind, detail = send()
        except Exception as exc:  # noqa: BLE001 - a caller's own bug must show up in the table, not end the load
            kind, detail = "other", f"load bug: {type(exc).__name__}: {exc}"
        with self._lock:
            self._in_flight.pop(ticket, None)
            self.outcomes.append(Outcome(caller, start, time.monotonic(), kind, detail))
        return kind

    def snapshot(self) -> tuple[list[Outcome], list[float]]:
        with self._lock:
            return list(self.outcomes), list(self._in_flight.values())

    # callers -------------------------------------------------------------------------------------
    def http(self, method: str, path: str, check: Callable[[httpx.Response], bool], **kwargs: Any) -> tuple[str, str]:
        try:
            response = self._client.request(method, f"{self.http_url}/{path}", **kwargs)
        except httpx.TransportError as exc:
            return classify_transport(exc)
        try:
            right = check(response)
        except ValueError:  # a 2xx whose body is not the JSON it should be
            right = False
        return classify_response(response, right)

    def _http_call(self, name: str, arguments: dict[str, int], expected: int) -> Callable[[], tuple[str, str]]:
        return lambda: self.http("POST", name, lambda r: r.json() == expected, json=arguments)

    def _sdk_call(self, name: str, arguments: dict[str, int], expected: int) -> Callable[[], tuple[str, str]]:
        def send() -> tuple[str, str]:
            try:
                result = fn.ref(name, timeout=self.hang_s).call(**arguments)
            except Exception as exc:  # noqa: BLE001 - every exception is classified: an fn error or not
                return classify_sdk_error(exc)
            return (OK, "") if result == expected else ("other", f"wrong answer {result!r}, expected {expected!r}")
        return send

    def _callers(self) -> list[tuple[str, float, int, Callable[[int], Callable[[], tuple[str, str]]]]]:
        r = self.rates
        return [  # (name, requests per second, threads, request for the n-th call)
            ("http echo", r.http_echo, 2, lambda n: self._http_call("echo", {"x": n}, n)),
            ("http slow-add", r.http_slow_add, 3, lambda n: self._http_call("slow-add", {"a": n, "b": 7}, n + 7)),
            ("sdk echo", r.sdk_echo, 2, lambda n: self._sdk_call("echo", {"x": n}, n)),
            ("sdk slow-add", r.sdk_slow_add, 3, lambda n: self._sdk_call("slow-add", {"a": n, "b": 3}, n + 3)),
        ]

    def _paced(self, period_s: float, offset_s: float, one: Callable[[], None]) -> None:
        """Call *one* every *period_s* (a late call is not made up for by a burst)."""
        due = time.monotonic() + offset_s
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            one()
            due = max(due + period_s, time.monotonic())

    def start(self) -> None:
        for name, rate, threads, request in self._callers():
            period = threads / rate  # each thread's; the threads are spread evenly over it
            for i in range(threads):
                self._spawn(name, period, i * period / threads, self._caller(name, request))
        self._spawn("flow driver", 1 / self.rates.flow_runs, 0.0, self._flow_run)

    def _caller(self, name: str, request: Callable[[int], Callable[[], tuple[str, str]]]) -> Callable[[], None]:
        def one() -> None:
            self.timed(name, request(next(self._numbers)))
        return one

    def _spawn(self, name: str, period_s: float, offset_s: float, one: Callable[[], None]) -> None:
        thread = threading.Thread(target=self._paced, args=(period_s, offset_s, one), name=f"chaos {name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    # flows -----------------------------------------------------------------------------------------
    def new_run(self) -> str | None:
        """Start a run; its id, or None if the platform did not start one."""
        created: dict[str, Any] = {}

        def check(response: httpx.Response) -> bool:
            body = response.json()
            created.update(body if isinstance(body, dict) else {})
            return response.status_code == 201 and isinstance(created.get("id"), str)

        kind = self.timed("flow start", lambda: self.http("POST", f"flows/{FLOW}/runs", check))
        return str(created["id"]) if kind == OK else None

    def put(self, run_id: str, name: str, value: int | bytes) -> bool:
        """Give input *name*; True when the platform accepted it (202)."""
        body = {"content": value, "headers": {"content-type": "application/octet-stream"}} if isinstance(value, bytes) \
            else {"json": value}
        return self.timed("flow put", lambda: self.http(
            "PUT", f"flows/{FLOW}/runs/{run_id}/inputs/{name}", lambda r: r.status_code == 202, **body)) == OK

    def _flow_run(self) -> None:
        n = next(self._numbers)
        pad = b"p" * (n % 50 + 1)  # bytes: checkpointed in the store, not the registry
        start = time.monotonic()
        run_id = self.new_run()
        if run_id is None:
            return
        if self.put(run_id, "x", n) and self.put(run_id, "pad", pad):
            self.follow(RunRecord(run_id, start, flow_output(n, pad)))

    def follow(self, run: RunRecord) -> None:
        """Wait for *run* to end (in the background), whatever the platform answers meanwhile."""
        with self._lock:
            self.runs.append(run)
        self._followers.submit(self._follow, run)

    def _follow(self, run: RunRecord) -> None:
        url = f"{self.http_url}/flows/{FLOW}/runs/{run.run_id}"
        while not self._give_up.is_set():
            try:
                response = self._client.get(url, params={"wait": 10}, timeout=self.hang_s + 10)
                state = response.json() if response.status_code == 200 else {}
            except (httpx.HTTPError, ValueError):
                state = {}
            if not isinstance(state, dict):
                state = {}
            if state.get("status") in {"succeeded", "failed"}:
                run.output, run.error = state.get("output"), state.get("error")
                run.status = state["status"]  # last: the verdict reads it
                return
            # Not answering (or answering early): ask again soon, never in a tight loop.
            self._give_up.wait(1.0 if not state else 0.2)

    # the end ---------------------------------------------------------------------------------------
    def stop(self) -> None:
        """No new requests; the ones out finish (at most hang_s)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.hang_s * 2 + 30)  # an SDK call may retry (FN_RETRY_S) before its own timeout

    def drain(self, grace_s: float) -> None:
        """Wait up to *grace_s* for every followed run to end; those that do not are lost."""
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(r.status is None for r in self.runs):
            time.sleep(0.5)
        self._give_up.set()
        self._followers.shutdown(wait=True)
        self._client.close()
