"""The burst function: 0.2 s of (async) waiting per call, scales from zero up to 4 replicas."""

import asyncio

import fn


@fn.function(cpus=0.25, idle_timeout_s=2, max_replicas=4)
async def burst(x: int) -> dict[str, int]:
    await asyncio.sleep(0.2)
    return {"x": x}
