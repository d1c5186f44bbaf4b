"""Functions for the jobs, schedules and streaming tests."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import fn


def _marks(name: str) -> Path:
    path = Path(os.environ["FN_HOME"]) / "job-marks"
    path.mkdir(exist_ok=True)
    return path / name


@fn.function(retries=2, retry_backoff_s=0.2)
def flaky(key: str, fail_times: int = 1) -> dict[str, int]:
    """Fails its first *fail_times* attempts for *key*, then answers which attempt it was."""
    marks = _marks(f"flaky-{key}")
    attempt = int(marks.read_text()) + 1 if marks.exists() else 1
    marks.write_text(str(attempt))
    if attempt <= fail_times:
        raise RuntimeError(f"attempt {attempt} fails on purpose")
    return {"attempt": attempt}


@fn.function(retries=1, retry_backoff_s=0.1)
def always_fails(reason: str = "nope") -> None:
    raise ValueError(reason)


@fn.function(job_concurrency=4)
def slow(seconds: float = 1.0, key: str = "") -> float:
    if key:
        _marks(f"slow-{key}").write_text(str(os.getpid()))
    time.sleep(seconds)
    return seconds


@fn.function(cpus=0.1, job_concurrency=64, max_concurrency=64)
def echo(x: int = 0) -> int:
    return x


@fn.function(schedule=fn.Period(seconds=2), cpus=0.1)
def ticker() -> float:
    with _marks("ticks").open("a") as handle:
        handle.write(f"{time.time()}\n")
    return time.time()


@fn.function(cpus=0.1)
def tokens(n: int = 5, pause_s: float = 0.3) -> Iterator[dict[str, int]]:
    for i in range(n):
        time.sleep(pause_s)
        yield {"i": i}


@fn.function(cpus=0.1)
async def atokens(n: int = 3, fail_at: int = -1):  # type: ignore[no-untyped-def]
    for i in range(n):
        await asyncio.sleep(0.05)
        if i == fail_at:
            raise KeyError(f"chunk {i} fails on purpose")
        yield f"token-{i}"


@fn.function(cpus=0.1)
def numbers(n: int, key: str) -> Iterator[int]:
    """0 .. n-1 as fast as it is read, writing how far it got."""
    progress = _marks(f"numbers-{key}")
    for i in range(n):
        progress.write_text(str(i))
        yield i


@fn.function(cpus=0.1, timeout_s=120)
def lagging_sum(numbers: Iterator[int], key: str, pause_s: float = 0.005, stop_after: int = -1) -> dict[str, int]:
    """Reads a stream slowly; how far the producer ran ahead of it at most."""
    progress = _marks(f"numbers-{key}")
    total = lag = read = 0
    for i, number in enumerate(numbers):
        time.sleep(pause_s)
        total, read = total + number, i + 1
        lag = max(lag, int(progress.read_text() or 0) - i)
        if read == stop_after:
            break
    return {"total": total, "max_lag": lag, "read": read}


@fn.function(cpus=0.1, timeout_s=120)
def sum_of_numbers(n: int, key: str, stop_after: int = -1) -> dict[str, int]:
    """Passes a stream from one function into another; it never sees a chunk."""
    return fn.call("lagging-sum", numbers=fn.ref("numbers").stream(n=n, key=key), key=key,  # type: ignore[no-any-return]
                   stop_after=stop_after)
