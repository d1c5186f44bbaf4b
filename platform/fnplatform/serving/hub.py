"""The hub: one detached, named Ray actor per cluster that replicas read shared state from. It holds
what the control plane publishes for the data plane, each topic with a version number (``keys``:
hashes of valid API keys; ``functions``: the active specs, for the catch-all gateway's table), read
by replicas and gateways through ``serving.pushed`` without a database round trip, and a bounded log
buffer per function (pushed by replicas in batches, read by ``fnctl logs``). Apart from the topics it
holds the decrypted secrets that deployed functions name, for their replicas to read at start
(``serving.secrets``; never a topic, so the gateways' reads never carry them). It is cheap (no CPU
reserved) and rebuilt by the control plane when missing, so losing it loses at most buffered log
lines.
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
        self._topics: dict[str, tuple[int, Any]] = {}
        self._version = 0
        self._logs: dict[str, deque[tuple[int, str]]] = {}
        self._seq = 0
        self._secrets: dict[str, dict[str, Any]] = {}

    async def publish(self, topic: str, value: Any) -> int:
        """Replace *topic*'s value; returns its version (a new one, higher than all before, unless the value is unchanged)."""
        current = self._topics.get(topic)
        if current is not None and current[1] == value:
            return current[0]
        self._version += 1
        self._topics[topic] = (self._version, value)
        return self._version

    async def read(self, topic: str, known: int = -1) -> tuple[int, Any]:
        """*topic*'s version and value; the value is None when the version is *known* (nothing new to send).
        Version 0 with None: nothing was published yet (a hub restarted since)."""
        version, value = self._topics.get(topic, (0, None))
        return version, (None if version == known else value)

    async def put_secrets(self, secrets: dict[str, dict[str, Any]]) -> None:
        """Replace every secret held: {name: {"revision": n, "values": {KEY: VALUE}}}; a secret no deployed
        function names any more is dropped."""
        self._secrets = secrets

    async def read_secrets(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """The held secrets among *names* (one that is missing is not published, or not yet after a restart)."""
        return {name: self._secrets[name] for name in names if name in self._secrets}

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


class HubClient:
    """The control plane's blocking view of the hub actor (tests hand the control plane an in-process one)."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor

    def publish(self, topics: dict[str, Any]) -> None:
        import ray

        ray.get([self._actor.publish.remote(topic, value) for topic, value in topics.items()])

    def put_secrets(self, secrets: dict[str, dict[str, Any]]) -> None:
        import ray

        ray.get(self._actor.put_secrets.remote(secrets))

    def read_logs(self, function: str, after: int, limit: int) -> tuple[int, list[str]]:
        import ray

        last, lines = ray.get(self._actor.read_logs.remote(function, after, limit))
        return int(last), list(lines)

    def forget(self, function: str) -> None:
        self._actor.forget.remote(function)  # a few buffered log lines; not worth waiting for


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
