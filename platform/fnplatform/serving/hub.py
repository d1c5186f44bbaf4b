"""The hub: one detached, named Ray actor per cluster that replicas read shared state from.

It holds the hashes of valid API keys (pushed by the control plane, read by replicas to check
requests without a database round trip) and a bounded log buffer per function (pushed by
replicas in batches, read by ``fnctl logs``). It is cheap (no CPU reserved) and rebuilt by the
control plane when missing, so losing it loses at most buffered log lines.
"""

from __future__ import annotations

from collections import deque
from typing import Any

HUB_NAME = "fn-hub"
NAMESPACE = "fn"
MAX_LINES_PER_FUNCTION = 5000


class Hub:
    # async methods: one event loop, so no locks are needed around the buffers
    def __init__(self) -> None:
        self._key_hashes: frozenset[str] = frozenset()
        self._logs: dict[str, deque[tuple[int, str]]] = {}
        self._seq = 0

    async def set_key_hashes(self, hashes: list[str]) -> None:
        self._key_hashes = frozenset(hashes)

    async def key_hashes(self) -> frozenset[str]:
        return self._key_hashes

    async def push_logs(self, function: str, lines: list[str]) -> None:
        buffer = self._logs.setdefault(function, deque(maxlen=MAX_LINES_PER_FUNCTION))
        for line in lines:
            self._seq += 1
            buffer.append((self._seq, line))

    async def read_logs(self, function: str, after: int = 0, limit: int = 1000) -> tuple[int, list[str]]:
        """Lines with a sequence number above *after* (at most *limit*, the newest), and the last number."""
        buffer = self._logs.get(function, deque())
        lines = [(seq, line) for seq, line in buffer if seq > after][-limit:]
        return (lines[-1][0] if lines else after), [line for _, line in lines]

    async def forget(self, function: str) -> None:
        self._logs.pop(function, None)


def get_or_create_hub() -> Any:
    """The hub actor handle (creating it if missing); needs a connected Ray driver."""
    import ray

    actor_cls: Any = ray.remote(Hub)
    return actor_cls.options(num_cpus=0, max_restarts=-1, max_concurrency=64, name=HUB_NAME, namespace=NAMESPACE,
                             lifetime="detached", get_if_exists=True).remote()


def find_hub() -> Any:
    import ray

    return ray.get_actor(HUB_NAME, namespace=NAMESPACE)


def find_hub_or_none() -> Any:
    """The hub for a replica: None when it cannot be reached (keys are then refused, logs dropped)."""
    try:
        return find_hub()
    except Exception:  # noqa: BLE001 - without the hub every key is refused, which is safe
        return None
