"""Online learning: a contextual bandit picks one of three models per request and learns from live feedback.

``recommend`` scores a request's context with LinUCB over three arms, the models ``ranker-a``, ``ranker-b`` and
``ranker-c``, and calls the one it picks. Callers report how it went with ``feedback`` (``fn.call`` or HTTP),
which queues the observation in ``fn.Queue("bandit-feedback")``. ``learner`` runs every 2 s (a schedule, one
run at a time) and folds everything queued into the weights kept in ``fn.Dict("bandit")``. Serving replicas
re-read the weights when their copy is older than ``BANDIT_STALENESS_S`` (env, default 1 s), so a new policy
reaches every replica within about staleness + 2 s, without a redeploy; the weights outlive every replica
(scale to zero and back) because they live in the platform's shared state, not in a process.

    fnctl deploy functions/examples/bandit
    fnctl invoke recommend --json '{"context": [0.2, 0.7]}'
    fnctl invoke feedback --json '{"arm": "ranker-b", "context": [0.2, 0.7], "reward": 1}'
"""

from __future__ import annotations

import os
import time
from typing import Any

import fn

ARMS = ("ranker-a", "ranker-b", "ranker-c")
DIMS = 3  # a bias, then the two context features
ALPHA = 0.6  # exploration: the width of the confidence bound
LEARN_FOR_S = 1.5  # one learner run keeps folding feedback in for this long


def _features(context: list[float]) -> list[float]:
    if len(context) != DIMS - 1 or not all(isinstance(v, int | float) and -10 <= v <= 10 for v in context):
        raise fn.BadRequest(f"context must be {DIMS - 1} numbers from -10 to 10, e.g. [0.2, 0.7]", status=400)
    return [1.0, *map(float, context)]


def _prior() -> dict[str, Any]:
    identity = [[1.0 if i == j else 0.0 for j in range(DIMS)] for i in range(DIMS)]
    return {"version": 0, "observations": 0, "arms": {arm: {"A": identity, "b": [0.0] * DIMS} for arm in ARMS}}


def _ranker(weights: list[float], items: list[str], context: list[float]) -> list[str]:
    score = {item: sum(w * c for w, c in zip(weights, [len(item), *context], strict=False)) for item in items}
    return sorted(items, key=lambda item: (-score[item], item))


@fn.function(cpus=0.1, name="ranker-a")
def ranker_a(items: list[str], context: list[float]) -> list[str]:
    return _ranker([1.0, 0.5, -0.5], items, context)


@fn.function(cpus=0.1, name="ranker-b")
def ranker_b(items: list[str], context: list[float]) -> list[str]:
    return _ranker([-1.0, 0.2, 0.9], items, context)


@fn.function(cpus=0.1, name="ranker-c")
def ranker_c(items: list[str], context: list[float]) -> list[str]:
    return _ranker([0.3, -0.8, 0.1], items, context)


class _Policy:
    """This replica's copy of the weights, re-read once older than the staleness bound."""

    def __init__(self) -> None:
        self.staleness_s = float(os.environ.get("BANDIT_STALENESS_S", "1"))
        self.read_at = -1e9
        self.weights: dict[str, Any] = _prior()

    def current(self) -> dict[str, Any]:
        if time.monotonic() - self.read_at >= self.staleness_s:
            self.weights = fn.Dict("bandit").get("weights") or _prior()
            self.read_at = time.monotonic()
        return self.weights


_policy = _Policy()


def _choose(weights: dict[str, Any], x: list[float]) -> tuple[str, dict[str, float]]:
    import numpy as np

    vector = np.array(x)
    bounds = {}
    for arm in ARMS:
        inverse = np.linalg.inv(np.array(weights["arms"][arm]["A"]))
        theta = inverse @ np.array(weights["arms"][arm]["b"])
        bounds[arm] = float(theta @ vector + ALPHA * np.sqrt(vector @ inverse @ vector))
    return max(ARMS, key=lambda arm: (bounds[arm], arm)), bounds


@fn.function(cpus=0.1, idle_timeout_s=5, env={"BANDIT_STALENESS_S": "1"})
def recommend(context: list[float], items: list[str] | None = None) -> dict[str, Any]:
    """Pick a model for this context and answer with its ranking; report the outcome with ``feedback``."""
    x = _features(context)
    weights = _policy.current()
    arm, bounds = _choose(weights, x)
    ranking = fn.call(arm, items=items or ["lamp", "desk", "chair"], context=context)
    return {"arm": arm, "ranking": ranking, "policy_version": weights["version"],
            "bounds": {k: round(v, 4) for k, v in bounds.items()}}


@fn.function(cpus=0.1)
def feedback(arm: str, context: list[float], reward: float) -> dict[str, Any]:
    """Report how a recommendation went: *reward* from 0 (bad) to 1 (good) for *arm* in *context*."""
    if arm not in ARMS:
        raise fn.BadRequest(f"arm must be one of {', '.join(ARMS)}, not {arm!r}", status=400)
    if not isinstance(reward, int | float) or not 0 <= reward <= 1:
        raise fn.BadRequest(f"reward must be a number from 0 to 1, not {reward!r}", status=400)
    queue = fn.Queue("bandit-feedback", maxsize=100_000)
    queue.put({"arm": arm, "x": _features(context), "reward": float(reward)})
    return {"queued": len(queue)}


@fn.function(cpus=0.1, schedule=fn.Period(seconds=2), job_concurrency=1, timeout_s=30)
def learner() -> dict[str, Any]:
    """Fold the queued feedback into the weights, publishing after each batch; runs every 2 s, one at a time."""
    queue, state = fn.Queue("bandit-feedback", maxsize=100_000), fn.Dict("bandit")
    weights = state.get("weights") or _prior()
    learned = skipped = 0
    until = time.monotonic() + LEARN_FOR_S
    while time.monotonic() < until:
        batch = queue.get_many(500, timeout=max(0.0, min(0.5, until - time.monotonic())))
        if not batch:
            continue
        usable = [seen for seen in batch if _observation(seen)]
        skipped += len(batch) - len(usable)  # the queue is writable through /v1/state too: never trust its items
        for seen in usable:
            arm, x, reward = weights["arms"][seen["arm"]], seen["x"], seen["reward"]
            arm["A"] = [[arm["A"][i][j] + x[i] * x[j] for j in range(DIMS)] for i in range(DIMS)]
            arm["b"] = [arm["b"][i] + reward * x[i] for i in range(DIMS)]
        weights["version"] += 1
        weights["observations"] += len(usable)
        try:
            state["weights"] = weights  # what serving replicas read next
        except fn.FnError:
            for seen in usable:  # taken but not learned: back for the next run (at worst learned twice, never lost)
                queue.put(seen)
            raise
        learned += len(usable)
    return {"learned": learned, "skipped": skipped, "version": weights["version"]}


def _observation(seen: Any) -> bool:
    return (isinstance(seen, dict) and seen.get("arm") in ARMS and isinstance(seen.get("reward"), int | float)
            and isinstance(seen.get("x"), list) and len(seen["x"]) == DIMS
            and all(isinstance(v, int | float) for v in seen["x"]))
