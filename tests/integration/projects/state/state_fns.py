"""Functions that share state through fn.Dict and fn.Queue (tests/integration/test_state.py)."""

from __future__ import annotations

from typing import Any

import fn


@fn.function(cpus=0.1, max_replicas=2, target_concurrency=1)
def bump(key: str, by: int = 1) -> int:
    return fn.Dict("counts").incr(key, by=by)


@fn.function(cpus=0.1)
async def abump(key: str) -> int:
    return await fn.Dict("counts").aincr(key)


@fn.function(cpus=0.1)
def remember(key: str, value: Any) -> bool:
    fn.Dict("notes")[key] = value
    return key in fn.Dict("notes")


@fn.function(cpus=0.1)
def enqueue(item: dict[str, Any]) -> int:
    queue = fn.Queue("work")
    queue.put(item)
    return len(queue)


@fn.function(cpus=0.1)
def dequeue(timeout: float = 1.0) -> Any:
    return fn.Queue("work").get(timeout=timeout)
