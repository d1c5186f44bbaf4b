"""The deploy scenario's new function: a no-op at zero replicas."""

import fn


@fn.function(cpus=0.25)
def fresh(x: int) -> dict[str, int]:
    return {"x": x}
