"""Flows for the retry tests: one step that fails once then works, one that always fails."""

from pathlib import Path

import fn


@fn.function(cpus=0.25)
def flaky(counter: str) -> int:
    path = Path(counter)
    attempts = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(attempts))
    if attempts < 2:
        raise ConnectionError(f"transient failure on attempt {attempts}")
    return attempts


@fn.function(cpus=0.25)
def hopeless(x: int) -> int:
    raise ValueError(f"cannot handle {x}")


retrying = fn.Flow("retrying", inputs=["counter"])
retrying.output("flaky", inputs=["counter"])

doomed = fn.Flow("doomed", inputs=["x"], retries=1)
doomed.output("hopeless", inputs=["x"])

limited = fn.Flow("limited", inputs=["blob"], max_input_mb=0.5)
limited.output("flaky", inputs={"counter": "blob"})

forgotten = fn.Flow("forgotten", inputs=["counter", "never"], ttl_s=2)
forgotten.output("flaky", inputs=["counter", "never"])
