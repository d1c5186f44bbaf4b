"""The chaos suite's steady load: HTTP callers (httpx) and SDK callers (``fn.ref(...).call``) of two functions,
a flow driver that starts runs, gives their inputs and follows each to its end, and a job driver that spawns
slow-add jobs and follows each to its end, all at a fixed rate whatever the platform does. Every request's
outcome is recorded with its start time."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from _chaos_outcomes import (
    OK,
    JobRecord,
    Outcome,
    RunRecord,
    classify_response,
    classify_sdk_error,
    classify_transport,
)

import fn

FLOW = "chaos-flow"
JOB = "slow-add"
RUN_ENDED = frozenset({"succeeded", "failed"})
JOB_ENDED = frozenset({"succeeded", "failed", "cancelled"})
# A job's POST is sent again (with the same Idempotency-Key) after no answer or one of these: the platform did
# not say whether it wrote the job down, and the key makes a second POST answer with the job the first one made.
SPAWN_RETRIED = frozenset({502, 503, 504})
SPAWN_PAUSE_S = 0.5
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
    # Each job: one POST (sent again on no answer or a 502/503/504 for up to hang_s), then followed to its end.
    jobs: float = 1.0


class Load:
    """Callers on threads; ``start()``, then ``stop()`` and ``drain()`` at the end."""

    def __init__(self, http_url: str, key: str, hang_s: float, rates: Rates | None = None) -> None:
        self.http_url = http_url.rstrip("/")
        self.hang_s = hang_s  # a client gives up after this long: "hung"
        self.rates = rates or Rates()
        self.outcomes: list[Outcome] = []
        self.runs: list[RunRecord] = []
        self.jobs: list[JobRecord] = []
        self._client = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=hang_s,
                                    limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
        self._lock = threading.Lock()
        self._in_flight: dict[int, float] = {}
        self._ids = itertools.count()
        self._stop = threading.Event()
        self._give_up = threading.Event()  # followers stop waiting for runs and jobs
        self._threads: list[threading.Thread] = []
        # Each follower holds a thread through long polls of 10 s: enough for every run and job out at once.
        self._followers = ThreadPoolExecutor(max_workers=32, thread_name_prefix="chaos-follow")
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
        self._spawn("job driver", 1 / self.rates.jobs, 0.0, self._job)

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
        state = self._ended_state(f"flows/{FLOW}/runs/{run.run_id}", RUN_ENDED)
        if state is not None:
            run.output, run.error = state.get("output"), state.get("error")
            run.status = state["status"]  # last: the verdict reads it

    def _ended_state(self, path: str, ended: frozenset[str]) -> dict[str, Any] | None:
        """Long-poll GET *path* until its status is one of *ended*: that state; None once the load gives up."""
        url = f"{self.http_url}/{path}"
        while not self._give_up.is_set():
            try:
                response = self._client.get(url, params={"wait": 10}, timeout=self.hang_s + 10)
                state = response.json() if response.status_code == 200 else {}
            except (httpx.HTTPError, ValueError):
                state = {}
            if not isinstance(state, dict):
                state = {}
            if state.get("status") in ended:
                return state
            # Not answering (or answering early): ask again soon, never in a tight loop.
            self._give_up.wait(1.0 if not state else 0.2)
        return None

    # jobs ------------------------------------------------------------------------------------------
    def new_job(self, a: int) -> JobRecord | None:
        """Spawn slow-add(a, b=5) as a job under an Idempotency-Key of its own, sending the POST again with that key
        on no answer or a 502/503/504 for up to hang_s (one outcome in all); the job accepted, or None."""
        accepted: dict[str, Any] = {}

        def check(response: httpx.Response) -> bool:
            accepted.clear()
            body = response.json()
            accepted.update(body if isinstance(body, dict) else {})
            # 202: created; 200: a POST sent again found the job an earlier one created (its answer was lost)
            return response.status_code in {200, 202} and isinstance(accepted.get("id"), str) \
                and accepted.get("function") == JOB

        headers = {"Idempotency-Key": f"chaos-{uuid.uuid4().hex}"}
        start = time.monotonic()

        def send() -> tuple[str, str]:
            deadline, tries = start + self.hang_s, 0
            while True:
                tries += 1
                retry = True
                try:
                    response = self._client.post(f"{self.http_url}/jobs/{JOB}", json={"a": a, "b": 5}, headers=headers,
                                                 timeout=max(0.1, deadline - time.monotonic()))
                except httpx.TransportError as exc:
                    kind, detail = classify_transport(exc)
                else:
                    retry = response.status_code in SPAWN_RETRIED
                    try:
                        right = check(response)
                    except ValueError:  # a 2xx whose body is not the JSON it should be
                        right = False
                    kind, detail = classify_response(response, right)
                if not retry or time.monotonic() + SPAWN_PAUSE_S >= deadline:
                    again = tries > 1 and kind != OK
                    return kind, f"{detail} (after {tries} POSTs under one Idempotency-Key)" if again else detail
                time.sleep(SPAWN_PAUSE_S)

        kind = self.timed("job spawn", send)
        return JobRecord(str(accepted["id"]), start, a + 5) if kind == OK else None

    def _job(self) -> None:
        job = self.new_job(next(self._numbers))
        if job is not None:
            self.follow_job(job)

    def follow_job(self, job: JobRecord) -> None:
        """Wait for *job* to end (in the background), whatever the platform answers meanwhile."""
        with self._lock:
            self.jobs.append(job)
        self._followers.submit(self._follow_job, job)

    def _follow_job(self, job: JobRecord) -> None:
        state = self._ended_state(f"jobs/{job.job_id}", JOB_ENDED)
        if state is not None:
            attempts = state.get("attempts")
            job.result, job.error = state.get("result"), state.get("error")
            job.attempts = attempts if isinstance(attempts, int) else 0
            job.status = state["status"]  # last: the verdict reads it

    # the end ---------------------------------------------------------------------------------------
    def stop(self) -> None:
        """No new requests; the ones out finish (at most hang_s)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.hang_s * 2 + 30)  # an SDK call may retry (FN_RETRY_S) before its own timeout

    def drain(self, grace_s: float) -> None:
        """Wait up to *grace_s* for every followed run and job to end; those that do not are lost."""
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and (any(r.status is None for r in self.runs)
                                               or any(j.status is None for j in self.jobs)):
            time.sleep(0.5)
        self._give_up.set()
        self._followers.shutdown(wait=True)
        self._client.close()
