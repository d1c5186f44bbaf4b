"""Online learning on a real cluster (functions/examples/bandit): a contextual bandit choosing among three models
converges to the best one on synthetic feedback reported through fn.call, its scheduled learner publishing new
weights that serving replicas pick up without a redeploy, and the weights survive the serving function scaling to
zero and back."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Platform, wait_for

import fn

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).resolve().parents[2] / "functions" / "examples" / "bandit"
REWARD = {"ranker-a": 0.25, "ranker-b": 0.8, "ranker-c": 0.15}  # ranker-b is the best model everywhere


@pytest.fixture(scope="module")
def bandit(platform: Platform) -> Iterator[Platform]:
    job = platform.deploy(EXAMPLE)
    assert job["exit_code"] == 0 and job["state"] == "succeeded", job["output"]
    yield platform
    for name in ("learner", "recommend", "feedback", "ranker-a", "ranker-b", "ranker-c"):
        # The learner's schedule fires every 2 s: left deployed, it would take CPU from every later test.
        assert platform.fnctl("rm", name).exit_code == 0


def _running(platform: Platform, name: str) -> int:
    with httpx_client(platform) as client:
        return int(client.get(f"/v1/functions/{name}").json()["running"])


def httpx_client(platform: Platform) -> Any:
    import httpx

    return httpx.Client(base_url=platform.api_url, headers={"Authorization": f"Bearer {platform.key}"}, timeout=30)


def test_the_bandit_converges_and_its_weights_outlive_its_replicas(bandit: Platform) -> None:
    rng = random.Random(7)
    chosen: list[str] = []
    versions: list[int] = []
    with bandit.client() as client:
        for _ in range(160):
            context = [round(rng.random(), 3), round(rng.random(), 3)]
            answer = client.post("/recommend", json={"context": context})
            assert answer.status_code == 200, answer.text
            decision = answer.json()
            chosen.append(decision["arm"])
            versions.append(decision["policy_version"])
            reward = 1.0 if rng.random() < REWARD[decision["arm"]] else 0.0
            fn.call("feedback", arm=decision["arm"], context=context, reward=reward)
            time.sleep(0.02)
    late = chosen[-50:]
    assert late.count("ranker-b") >= 35, (late, versions[-1])  # converged to the best model
    assert versions[-1] > versions[0], versions  # replicas picked up new weights while serving, with no redeploy
    weights = fn.Dict("bandit")["weights"]
    assert weights["observations"] >= 100 and set(weights["arms"]) == set(REWARD)
    with pytest.raises(fn.BadRequest, match="reward must be a number from 0 to 1"):
        fn.call("feedback", arm="ranker-b", context=[0.1, 0.2], reward=3)

    wait_for(lambda: _running(bandit, "recommend") == 0, timeout=120, interval=1)  # idle_timeout_s=5: scaled to zero
    after = [fn.call("recommend", context=[rng.random(), rng.random()]) for _ in range(10)]
    assert after[0]["policy_version"] >= weights["version"]  # a fresh replica starts from the learned weights
    assert sum(a["arm"] == "ranker-b" for a in after) >= 8, after
