"""What bench/apps.py deploys to time shared state from inside the cluster: fn.Dict / fn.Queue operations in a
replica, each against a bare Ray actor call made from the same replica in the same run."""

import asyncio
import statistics
import time
from typing import Any

import fn


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": statistics.median(ordered) * 1000, "p99_ms": ordered[round(0.99 * (len(ordered) - 1))] * 1000,
            "n": float(len(ordered))}


async def _timed(n: int, call: Any) -> dict[str, float]:
    for _ in range(min(20, n)):  # warm: the actor's handle, the dict read from the database once
        await call()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return _stats(samples)


async def _rate(total: int, concurrency: int, call: Any) -> float:
    left = [total]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - start)


@fn.function(cpus=0.25, timeout_s=900, max_replicas=1, name="state-probe")
async def state_probe(n: int = 500, concurrency: int = 16) -> dict[str, Any]:
    import ray

    from fnplatform.state.server import server_options

    class Bare:  # the baseline: an actor that answers at once; defined here so Ray ships it by value
        async def op(self, *args: Any) -> None:
            return None

    options = {k: v for k, v in server_options().items() if k not in {"lifetime", "namespace", "max_restarts"}}
    bare = ray.remote(Bare).options(**options).remote()
    d, q = fn.Dict("bench-state"), fn.Queue("bench-queue", maxsize=100_000)
    await d.aput("hot", {"w": [0.1, 0.2, 0.3]})
    out: dict[str, Any] = {
        "bare actor call": await _timed(n, lambda: bare.op.remote("bench-state", "hot")),
        "Dict.aget": await _timed(n, lambda: d.aget("hot")),
        "Dict.aput": await _timed(n, lambda: d.aput("hot", {"w": [0.1, 0.2, 0.3]})),
        "Dict.aincr": await _timed(n, lambda: d.aincr("count")),
        "Queue.aput": await _timed(n, lambda: q.aput({"r": 1})),
        "Queue.aget": await _timed(n, lambda: q.aget(timeout=1)),
    }
    total = n * 4
    out["rate"] = {"bare actor call": await _rate(total, concurrency, lambda: bare.op.remote("bench-state", "hot")),
                   "Dict.aget": await _rate(total, concurrency, lambda: d.aget("hot")),
                   "Dict.aincr": await _rate(total, concurrency, lambda: d.aincr("count")),
                   "concurrency": concurrency, "calls": total}
    ray.kill(bare)
    return out
