"""Serve's autoscaling policy for fn functions: idle_timeout_s, and idle replicas that yield to work waiting for room.

Serve keeps an idle replica for its deployment's downscale delay whatever else waits. On a full node a flow's
steps then queued behind replicas of other functions that had finished their calls long before, until those
passed idle_timeout_s (on 2 cores the identity flow's case took 64-77 s with hello's two functions idle, 15 s
without). This policy keeps the same delays itself (the deployment's own Serve delays are 0) and cuts them short
when Ray has had a replica or task waiting for room for WAIT_S on a node an idle function's replicas could
free: then the function idle longest, if idle for MIN_IDLE_S at least, gives back its replicas down to
min_replicas, and the next one may give way only once those have drained (a stopping replica holds its
resources while it drains) and the demand still waits.

Serve's controller runs this: it imports the class named in each deployment's autoscaling config, pickled by
value, and instantiates it per deployment. What the deployments share (the Board) is this module as that
process imports it by name, never the pickled class's own globals.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fnplatform.pools import POOL_RESOURCE_PREFIX, pool_resource

if TYPE_CHECKING:  # the controller imports this module: not the SDK
    from fn import FunctionSpec

log = logging.getLogger("ray.serve")

POLICY_PATH = "fnplatform.serving.autoscaling:IdleYields"
# How long a demand must wait for room before an idle function gives way: Ray reports a waiting replica within
# about a second, and room being freed anyway (a replica finishing its drain) should get there first.
WAIT_S = 3.0
# How long a function must have been idle before it may give way. A flow's steps are idle for seconds between its
# cases while one of them asks for a second replica (a prewarm and a call at once): giving way to that, they took
# each other's only replicas and every case waited for cold starts (on 2 cores a warm identity case went from
# 1.8 s to a 3.8 s median, p90 18.6 s). A function idle this long is not in the middle of a run of calls.
MIN_IDLE_S = 15.0
IDLE_SEEN_S = 2.0  # an idle entry not refreshed for this long: each deployment's policy runs every control-loop step
DEMANDS_TTL_S = 1.0
NODES_TTL_S = 30.0
DRAINING_ENV = "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"  # how long a stopping replica keeps its resources
SINCE_KEY = "fn_downscale_wanted_since"
YIELDING_KEY = "fn_giving_way"


def _shape(bundle: dict[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(bundle.items()))


@dataclass
class Board:
    """What every deployment's policy in this process shares: idle functions, and the demands Ray cannot place."""

    idle: dict[str, tuple[str, float, float]] = field(default_factory=dict)  # key: (pool, idle since, seen)
    waiting_since: dict[tuple[tuple[str, float], ...], float] = field(default_factory=dict)
    _demands: tuple[float, list[dict[str, float]]] = (-math.inf, [])
    _nodes: tuple[float, list[dict[str, float]]] = (-math.inf, [])

    def busy(self, key: str) -> None:
        self.idle.pop(key, None)

    def yield_to(self, key: str, pool: str, idle_since: float, now: float) -> dict[str, float] | None:
        """The demand that *key*, idle on *pool* since *idle_since*, should give its replicas to now, if any: one
        waiting for WAIT_S on a node *key*'s replicas could free, when no function idle longer could give way."""
        self.idle[key] = (pool, idle_since, now)
        if now - idle_since < MIN_IDLE_S:
            return None
        for bundle in self.demands(now):
            since = self.waiting_since.get(_shape(bundle), now)
            if now - since < WAIT_S or not self.could_free(pool, bundle, now):
                continue
            if self._longer_idle(key, idle_since, bundle, now):
                return None
            # Served: the next function gives way only once these replicas have drained and the demand still waits.
            self.waiting_since[_shape(bundle)] = now + draining_s()
            self.idle.pop(key, None)
            return bundle
        return None

    def demands(self, now: float) -> list[dict[str, float]]:
        from . import ray_compat

        stamp, demands = self._demands
        if now - stamp > DEMANDS_TTL_S:
            self._demands = (now, demands)  # first: a failing call is not retried on every step of the control loop
            demands = ray_compat.pending_demands(timeout_s=1)
            self._demands = (now, demands)
            shapes = {_shape(bundle) for bundle in demands}
            self.waiting_since = {shape: self.waiting_since.get(shape, now) for shape in shapes}
        return demands

    def could_free(self, pool: str, bundle: dict[str, float], now: float) -> bool:
        """Whether a node of *pool* also serves *bundle*'s pool and could hold it at all (an impossible demand, such
        as a GPU no node has, is not served by taking replicas away)."""
        import ray

        stamp, nodes = self._nodes
        if now - stamp > NODES_TTL_S:
            self._nodes = (now, nodes)
            listed = ray.nodes()  # type: ignore[no-untyped-call]
            nodes = [dict(node.get("Resources", {})) for node in listed if node.get("Alive")]
            self._nodes = (now, nodes)
        pools = {name for name in bundle if name.startswith(POOL_RESOURCE_PREFIX)}
        return bool(pools) and any(
            pool_resource(pool) in node and all(node.get(name, 0.0) + 1e-9 >= amount for name, amount in bundle.items())
            for node in nodes)

    def _longer_idle(self, key: str, since: float, bundle: dict[str, float], now: float) -> bool:
        for name, (other_pool, other_since, seen) in list(self.idle.items()):
            if now - seen > IDLE_SEEN_S:
                del self.idle[name]
            elif (other_since, name) < (since, key) and self.could_free(other_pool, bundle, now):
                return True
        return False


def draining_s() -> float:
    """How long a stopping replica keeps its resources: behind HAProxy it stays reachable while HAProxy drops it;
    behind Serve's Python proxy it stops as soon as its calls end."""
    return float(os.environ.get(DRAINING_ENV, "30")) if os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") == "1" else 0.0


BOARD = Board()
_WARNED: list[bool] = []


def board() -> Board | None:
    """This process's one board, imported by name so that every deployment's unpickled policy class finds it; None
    when it cannot be had (fnplatform missing on the controller's node, or another version of it there)."""
    try:
        import fnplatform.serving.autoscaling as this

        shared: Board = this.BOARD
        return shared
    except Exception:  # raised into Serve's control loop, it would stop the autoscaling of every application
        if not _WARNED:
            _WARNED.append(True)
            log.exception("fn's autoscaling board is unavailable: idle functions keep their replicas to idle_timeout_s")
        return None


class IdleYields:
    """One deployment's policy: Serve's queue-length policy, holding a downscale as Serve's delays would."""

    def __init__(self, pool: str, downscale_delay_s: float, idle_timeout_s: float, give_way: bool = True) -> None:
        self.pool = pool
        self.downscale_delay_s = downscale_delay_s
        self.idle_timeout_s = idle_timeout_s
        self.give_way = give_way

    def __call__(self, ctx: Any) -> tuple[float, dict[str, Any]]:
        from ray.serve.autoscaling_policy import replica_queue_length_autoscaling_policy

        now = time.time()
        key = f"{ctx.app_name}/{ctx.deployment_name}"
        state = dict(ctx.policy_state)
        target, running = ctx.target_num_replicas, ctx.current_num_replicas
        desired, _ = replica_queue_length_autoscaling_policy(ctx)
        wanted = math.ceil(desired)
        if wanted >= target:
            self._board_call("busy", key)
            state.pop(SINCE_KEY, None)
            state.pop(YIELDING_KEY, None)
            return desired, state
        if running < target:  # replicas asked for, not running yet and no longer wanted: no warmth to keep
            return max(wanted, running), state
        since = state.setdefault(SINCE_KEY, now)
        if state.get(YIELDING_KEY) and not ctx.total_num_requests:
            return desired, state  # giving way goes on down to min_replicas (Serve takes one step to 1, then 0)
        hold_s = self.idle_timeout_s if target == 1 else self.downscale_delay_s
        if now - since >= hold_s:
            self._board_call("busy", key)
            state.pop(SINCE_KEY, None)
            return desired, state
        if self._yields(ctx, key, since, now):
            state[YIELDING_KEY] = True
            return desired, state
        return target, state

    def _yields(self, ctx: Any, key: str, since: float, now: float) -> bool:
        if not self.give_way or ctx.total_num_requests or ctx.current_num_replicas <= ctx.capacity_adjusted_min_replicas:
            self._board_call("busy", key)
            return False
        return self._board_call("yield_to", key, self.pool, since, now) is not None

    @staticmethod
    def _board_call(method: str, *args: Any) -> Any:
        shared = board()
        if shared is None:
            return None
        try:
            return getattr(shared, method)(*args)
        except Exception:  # noqa: BLE001 - Ray's state unreadable: keep the replica, as Serve alone would
            return None


def policy(spec: FunctionSpec, give_way: bool = True) -> dict[str, Any]:
    """The ``policy`` entry of a function's autoscaling config. *give_way* only where the cluster cannot grow: on
    one that can, a waiting demand is what makes Ray's autoscaler add a node, and idle replicas keep their warmth."""
    return {"policy_function": POLICY_PATH, "policy_kwargs": {
        "pool": spec.pool, "downscale_delay_s": max(1.0, min(spec.idle_timeout_s, 10.0)),
        "idle_timeout_s": max(spec.idle_timeout_s, 0.1), "give_way": give_way}}


__all__ = ["BOARD", "POLICY_PATH", "Board", "IdleYields", "policy"]
