"""The functions of bench/jobs.py: a no-op run as jobs and as calls, one that holds its job queue, and a stream."""

import time
from collections.abc import Iterator

import fn


@fn.function(cpus=0.1, job_concurrency=64, max_concurrency=64, min_replicas=1, max_replicas=1)
def noop(x: int = 0) -> int:
    return x


@fn.function(cpus=0.1, job_concurrency=1, min_replicas=1, timeout_s=900)
def parked(x: int = 0, sleep_s: float = 0) -> int:
    """bench/jobs.py spawns one with sleep_s=600 first: with job_concurrency=1 every later job stays queued."""
    time.sleep(sleep_s)
    return x


@fn.function(cpus=0.1, min_replicas=1)
def tokens(n: int = 20, pause_s: float = 0.05) -> Iterator[dict[str, int]]:
    for i in range(n):
        time.sleep(pause_s)
        yield {"i": i}
