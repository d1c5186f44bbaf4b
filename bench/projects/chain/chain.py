"""The flows the suite's composition scenario deploys: the same 3-step chain with and without prewarm.
(The cost of a handle hop is the warm scenario's: fn.call inside a function against a plain Serve handle.)"""

import time

import fn

STEP_S = 0.2


def _step(x: int) -> int:
    time.sleep(STEP_S)
    return x + 1


@fn.function(cpus=0.25, idle_timeout_s=2)
def p1(x: int) -> int:
    return _step(x)


@fn.function(cpus=0.25, idle_timeout_s=2)
def p2(p1: int) -> int:
    return _step(p1)


@fn.function(cpus=0.25, idle_timeout_s=2)
def p3(p2: int) -> int:
    return _step(p2)


@fn.function(cpus=0.25, idle_timeout_s=2)
def q1(x: int) -> int:
    return _step(x)


@fn.function(cpus=0.25, idle_timeout_s=2)
def q2(q1: int) -> int:
    return _step(q1)


@fn.function(cpus=0.25, idle_timeout_s=2)
def q3(q2: int) -> int:
    return _step(q2)


prewarmed = fn.Flow("prewarmed", inputs=["x"])
prewarmed.output("p3", inputs=[prewarmed.step("p2", inputs=[prewarmed.step("p1", inputs=["x"])])])

plain = fn.Flow("plain", inputs=["x"], prewarm=False)
plain.output("q3", inputs=[plain.step("q2", inputs=[plain.step("q1", inputs=["x"])])])
