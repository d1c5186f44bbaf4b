"""The smallest fn project: a function and a model class."""

import fn


@fn.function(pool="cpu", cpus=0.5, min_replicas=0, max_replicas=4)
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@fn.model(pool="gpu", gpus=0.5, idle_timeout_s=30)
class Reverser:
    """Reverse a string; setup() runs once per replica."""

    def setup(self) -> None:
        self.prefix = ">"

    def __call__(self, text: str) -> str:
        return self.prefix + text[::-1]
