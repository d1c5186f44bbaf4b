"""Functions the integration tests deploy: one per behaviour under test."""

import asyncio
import logging
import time

import fn

log = logging.getLogger("basic")


@fn.function(pool="cpu", cpus=0.25, idle_timeout_s=1)
def add(a: int, b: int) -> int:
    log.info("adding %s and %s", a, b)
    return a + b


@fn.model(pool="gpu", gpus=0.5, cpus=0.25, idle_timeout_s=5)
class Reverser:
    def setup(self) -> None:
        self.prefix = ">"

    def __call__(self, text: str) -> str:
        return self.prefix + text[::-1]


@fn.function(cpus=0.25, idle_timeout_s=5)
def boom(key: str = "x") -> None:
    raise KeyError(key)


@fn.function(cpus=0.25, timeout_s=1, idle_timeout_s=5)
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


@fn.function(cpus=0.25, idle_timeout_s=5)
def size(data: bytes) -> int:
    return len(data)


@fn.function(cpus=0.25, public=True, idle_timeout_s=5)
def hello(name: str = "world") -> dict[str, str]:
    print(f"greeting {name}")
    return {"greeting": f"hello {name}"}


@fn.function(pool="cpu", cpus=0.25, idle_timeout_s=5)
def node_cpu() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


@fn.function(pool="gpu", gpus=0.5, cpus=0.25, idle_timeout_s=5)
def node_gpu() -> dict[str, object]:
    import os

    import ray

    return {"node": str(ray.get_runtime_context().get_node_id()), "gpu_ids": ray.get_gpu_ids(),
            "threads": os.environ.get("OMP_NUM_THREADS"), "at": time.time()}
