"""The warm-path functions of bench/suite.py: a no-op, and a function that calls it through the SDK."""

import time

import fn


@fn.function(cpus=0.25, min_replicas=1, max_replicas=1)
def noop(x: int) -> dict[str, int]:
    return {"x": x}


@fn.function(cpus=0.25, min_replicas=1, max_replicas=1)
def caller(n: int) -> list[float]:
    """Calls noop n times with fn.call (a Serve handle inside the cluster); each call's milliseconds."""
    fn.call("noop", x=1)  # resolves and caches the handle
    timings = []
    for _ in range(n):
        start = time.perf_counter()
        fn.call("noop", x=1)
        timings.append((time.perf_counter() - start) * 1000)
    return timings
