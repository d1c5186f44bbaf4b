"""Sequential calls from a Python client outside the platform; prints each call's milliseconds as JSON.

``python bench/sdk_client.py sdk NAME N``: ``fn.call(NAME, x=1)`` (the SDK finds the platform through
FN_HOME); ``python bench/sdk_client.py httpx URL KEY N``: the same POST with plain httpx, the baseline.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

WARMUP = 10


def timed(call: Callable[[], Any], n: int) -> list[float]:
    for _ in range(WARMUP):
        call()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    if sys.argv[1] == "sdk":
        import fn

        name, n = sys.argv[2], int(sys.argv[3])

        def call() -> Any:
            result = fn.call(name, x=1)
            assert result == {"x": 1}, result
            return result
    else:
        import httpx

        url, key, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
        client = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60)

        def call() -> Any:
            response = client.post(url, json={"x": 1})
            response.raise_for_status()
            return response.json()
    print(json.dumps(timed(call, n)))


if __name__ == "__main__":
    main()
