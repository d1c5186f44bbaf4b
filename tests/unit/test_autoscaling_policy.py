"""The functions' autoscaling policy: Serve's delays kept by the policy, and idle replicas giving way to waiting work.

Ray's view (pending demands, nodes) is set on the board directly; the integration test
test_lifecycle::test_an_idle_function_gives_its_cpus_to_one_waiting_for_room runs it in Serve's controller.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from ray.serve.config import AutoscalingConfig

from fnplatform.pools import pool_resource
from fnplatform.serving import autoscaling
from fnplatform.serving.autoscaling import DRAINING_ENV, MIN_IDLE_S, WAIT_S, Board, IdleYields

NODES = [{"CPU": 4.0, pool_resource("cpu"): 1000.0, pool_resource("api"): 1000.0},
         {"CPU": 2.0, "GPU": 1.0, pool_resource("gpu"): 1000.0}]
WAITING = {"CPU": 1.0, pool_resource("cpu"): 0.001}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(autoscaling.time, "time", clock)
    return clock


@pytest.fixture
def board(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> Board:
    board = Board()
    board.reported: list[dict[str, float]] = []  # type: ignore[attr-defined]
    monkeypatch.setattr(autoscaling, "BOARD", board)
    monkeypatch.setattr("fnplatform.serving.ray_compat.pending_demands", lambda timeout_s=5: board.reported)  # type: ignore[attr-defined]
    monkeypatch.setenv(DRAINING_ENV, "5")
    monkeypatch.setenv("RAY_SERVE_ENABLE_HA_PROXY", "1")  # a stopping replica stays reachable 5 s
    board._nodes = (float("inf"), NODES)
    return board


def see(board: Board, clock: Clock, demands: list[dict[str, float]]) -> None:
    """What Ray reports from now on, read by the board at once (its cache expired)."""
    board.reported = demands  # type: ignore[attr-defined]
    board._demands = (-float("inf"), [])
    board.demands(clock.now)


def idle_for(clock: Clock, seconds: float, *deployments: Deployment) -> None:
    """*seconds* pass with every deployment idle, each asked every second as Serve's loop would."""
    for _ in range(int(seconds)):
        clock.now += 1
        for deployment in deployments:
            deployment.step()


class Deployment:
    def __init__(self, name: str, pool: str = "cpu", idle_timeout_s: float = 60.0, min_replicas: int = 0,
                 give_way: bool = True) -> None:
        self.name = name
        self.policy = IdleYields(pool, downscale_delay_s=min(idle_timeout_s, 10.0), idle_timeout_s=idle_timeout_s,
                                 give_way=give_way)
        self.config = AutoscalingConfig(min_replicas=min_replicas, max_replicas=4, target_ongoing_requests=1)
        self.min_replicas = min_replicas
        self.state: dict[str, Any] = {}
        self.target = self.running = 1

    def step(self, requests: float = 0.0) -> int:
        ctx = SimpleNamespace(app_name=self.name, deployment_name=self.name, target_num_replicas=self.target,
                              current_num_replicas=self.running, total_num_requests=requests, config=self.config,
                              capacity_adjusted_min_replicas=self.min_replicas, policy_state=self.state)
        desired, self.state = self.policy(ctx)
        return int(desired if desired == int(desired) else int(desired) + 1)


def test_an_idle_replica_is_kept_for_idle_timeout_s_then_stopped(board: Board, clock: Clock) -> None:
    add = Deployment("add", idle_timeout_s=30)
    assert add.step(requests=1) == 1
    held = []
    for _ in range(30):  # idle from the first step without requests
        clock.now += 1
        held.append(add.step())
    assert held == [1] * 30
    clock.now += 1
    assert add.step() == 0


def test_a_second_replica_goes_after_the_downscale_delay_and_a_call_resets_the_wait(board: Board, clock: Clock) -> None:
    add = Deployment("add", idle_timeout_s=30)
    add.target = add.running = 2
    assert add.step(requests=0.5) == 2  # wants 1: held
    clock.now += 9
    assert add.step(requests=0.5) == 2
    clock.now += 1
    assert add.step(requests=0.5) == 1  # the downscale delay, min(idle_timeout_s, 10)
    add.target = add.running = 2
    assert add.step(requests=0.5) == 2
    clock.now += 5
    assert add.step(requests=2) == 2  # busy again: the wait starts over
    clock.now += 9
    assert add.step(requests=0.5) == 2


def test_replicas_asked_for_and_no_longer_wanted_are_dropped_before_they_run(board: Board, clock: Clock) -> None:
    back = Deployment("kyc-back")
    back.target, back.running = 3, 1
    assert back.step(requests=0.5) == 1


def test_the_function_idle_longest_gives_way_to_a_demand_waiting_for_room(board: Board, clock: Clock) -> None:
    older, newer = Deployment("older"), Deployment("newer", pool="api")
    older.step()
    clock.now += 1
    newer.step()
    idle_for(clock, MIN_IDLE_S, older, newer)
    see(board, clock, [WAITING])
    clock.now += WAIT_S - 0.5
    assert (older.step(), newer.step()) == (1, 1), "a demand waits WAIT_S first: it may just be starting"
    clock.now += 1
    assert newer.step() == 1, "the older one gives way first"
    assert older.step() == 0
    clock.now += 1
    see(board, clock, [WAITING])
    assert newer.step() == 1, "the next one waits for the first one's replicas to drain"
    clock.now += 5 + WAIT_S
    see(board, clock, [WAITING])
    assert newer.step() == 0, "the demand still waits after the drain: the next one gives way"


@pytest.mark.parametrize(("demand", "why"), [
    ({"CPU": 1.0, "GPU": 1.0, pool_resource("gpu"): 0.001}, "on a node of another pool"),
    ({"CPU": 8.0, pool_resource("cpu"): 0.001}, "more than any node has"),
    ({"CPU": 1.0}, "not a function's (no pool)"),
])
def test_no_function_gives_way_to_a_demand_it_cannot_help(board: Board, clock: Clock, demand: dict[str, float],
                                                          why: str) -> None:
    add = Deployment("add")
    add.step()
    see(board, clock, [demand])
    clock.now += WAIT_S + 1
    assert add.step() == 1, why


def test_busy_functions_and_those_at_min_replicas_never_give_way(board: Board, clock: Clock) -> None:
    busy, floor = Deployment("busy"), Deployment("floor", min_replicas=1)
    see(board, clock, [WAITING])
    clock.now += WAIT_S + 1
    assert busy.step(requests=0.4) == 1
    assert floor.step() == 1
    assert board.waiting_since, "the demand is still unserved"


def test_giving_way_goes_on_down_to_min_replicas(board: Board, clock: Clock) -> None:
    wide, other = Deployment("wide"), Deployment("other")
    wide.target = wide.running = 3
    wide.policy.downscale_delay_s = 60.0  # its extra replicas held longer than MIN_IDLE_S
    wide.step()
    clock.now += 1
    other.step()
    idle_for(clock, MIN_IDLE_S, wide, other)
    see(board, clock, [WAITING])
    clock.now += WAIT_S + 1
    assert wide.step() == 0
    wide.target = wide.running = 1  # Serve stops all but one replica first
    clock.now += 0.1
    assert other.step() == 1, "the demand was served: the other function keeps its replica"
    assert wide.step() == 0, "the one giving way goes on to min_replicas, not back to the end of the queue"


def test_without_give_way_an_idle_function_keeps_its_replicas(board: Board, clock: Clock) -> None:
    add = Deployment("add", give_way=False)
    add.step()
    see(board, clock, [WAITING])
    clock.now += WAIT_S + 1
    assert add.step() == 1


def test_behind_serves_python_proxy_the_next_one_gives_way_after_wait_s(board: Board, clock: Clock,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_SERVE_ENABLE_HA_PROXY")  # a stopping replica keeps nothing once its calls end
    first, second = Deployment("first"), Deployment("second")
    first.step()
    clock.now += 1
    second.step()
    idle_for(clock, MIN_IDLE_S, first, second)
    see(board, clock, [WAITING])
    clock.now += WAIT_S + 1
    assert (first.step(), second.step()) == (0, 1)
    clock.now += WAIT_S + 0.1
    see(board, clock, [WAITING])
    assert second.step() == 0


def test_ray_unreadable_or_no_board_keeps_the_replica(board: Board, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(timeout_s: int = 5) -> list[dict[str, float]]:
        raise ConnectionError("GCS unreachable")

    add = Deployment("add")
    add.step()
    monkeypatch.setattr("fnplatform.serving.ray_compat.pending_demands", fails)
    board._demands = (-float("inf"), [])
    clock.now += WAIT_S + 1
    assert add.step() == 1
    monkeypatch.setattr(autoscaling, "board", lambda: None)
    clock.now += 1
    assert add.step() == 1
    clock.now += 60
    assert add.step() == 0, "idle_timeout_s still applies"


def test_the_policy_is_named_in_each_functions_autoscaling_config() -> None:
    from fn import FunctionSpec
    from fnplatform.control.deployer import autoscaling_config

    config = AutoscalingConfig(**autoscaling_config(FunctionSpec(name="add", idle_timeout_s=30), give_way=False))
    assert config.policy.policy_function == autoscaling.POLICY_PATH
    assert config.policy.policy_kwargs == {"pool": "cpu", "downscale_delay_s": 10.0, "idle_timeout_s": 30.0,
                                           "give_way": False}
    assert config.downscale_delay_s == 0 and config.downscale_to_zero_delay_s == 0


def test_a_function_idle_for_less_than_min_idle_s_keeps_its_replica(board: Board, clock: Clock) -> None:
    # A flow's step between two cases, while another step of it asks for a second replica (a prewarm and a call at
    # once): it keeps its only replica, or the next case waits for its cold start.
    decide = Deployment("kyc-decide")
    decide.step(requests=1)
    decide.step()
    see(board, clock, [WAITING])
    held = []
    for _ in range(int(MIN_IDLE_S) - 1):
        clock.now += 1
        held.append(decide.step())
    assert held == [1] * (int(MIN_IDLE_S) - 1)
    clock.now += 1
    assert decide.step() == 0, "idle for MIN_IDLE_S with the demand still waiting: it gives way"
