"""Functions the benchmarks deploy."""

import fn


@fn.function(cpus=0.25, idle_timeout_s=2, max_replicas=2)
def add(a: int, b: int) -> int:
    return a + b


@fn.function(cpus=0.25, idle_timeout_s=2, max_replicas=2)
def cold(a: int, b: int) -> int:
    return a + b
