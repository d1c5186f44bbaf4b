"""When a version started for pinned calls stops: once no pinned call has reached it for ``idle_s``
(``FN_PIN_IDLE_HOURS``). Its replicas scale to zero sooner, like any version's; stopping it ends its Serve
application, which the controller otherwise keeps visiting. Calls are counted from the hub's metrics."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from fnplatform.serving.metrics import Delta
from fnplatform.storage.traffic import Traffic

from .rollout_gates import window

log = logging.getLogger("fnplatform")

CHECK_S = 10.0  # how often pinned versions' calls are counted


class PinExpiry:
    def __init__(self, idle_s: float, unpin: Callable[[str, int], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self.clock = clock
        self._unpin = unpin
        # (function, pinned version) -> (its calls counted by the hub, since when that count has not moved)
        self._calls: dict[tuple[str, int], tuple[int, float]] = {}
        self._checked = -math.inf

    def due(self) -> bool:
        return self.clock() - self._checked >= CHECK_S

    def started(self, name: str, number: int) -> None:
        """*number* was started again for a pinned call: its idle time starts now, not where it left off."""
        self._calls.pop((name, number), None)

    def check(self, pinned: list[Traffic], now: Delta) -> None:
        """Stop what has been idle long enough; each version on its own (one failing stops no other)."""
        at = self._checked = self.clock()
        for traffic in pinned:
            for number in traffic.pinned:
                key = (traffic.function, number)
                try:
                    calls = window(None, now, traffic.function, number).calls  # a hub restart: a new count
                    seen = self._calls.get(key)
                    if seen is None or seen[0] != calls:
                        self._calls[key] = (calls, at)
                    elif at - seen[1] >= self.idle_s:
                        self._unpin(traffic.function, number)
                        self._calls.pop(key, None)
                except Exception as exc:  # noqa: BLE001 - tried again at the next check
                    log.warning("could not stop pinned v%d of %s: %s: %s", number, traffic.function,
                                type(exc).__name__, exc)
        for key in set(self._calls) - {(t.function, n) for t in pinned for n in t.pinned}:
            del self._calls[key]  # unpinned meanwhile (a split change, a rollback, a deploy)
