"""Cold start, light: nothing to import or set up."""

import time

from coldtimes import replica_times

import fn

IMPORTED = time.time()


@fn.function(cpus=0.25, idle_timeout_s=3, max_replicas=1)
def cold_light(x: int) -> dict[str, object]:
    return {"x": x, "times": replica_times(IMPORTED, IMPORTED)}
