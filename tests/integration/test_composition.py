"""Functions calling functions through Serve handles: pipeline, ensemble with voting, dynamic selection."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import Platform, wait_for

import fn

EXAMPLES = Path(__file__).resolve().parents[2] / "functions" / "examples"


@pytest.fixture(scope="module")
def composed(platform: Platform) -> Platform:
    for project in ("pipeline", "ensemble", "routing"):
        job = platform.deploy(EXAMPLES / project)
        assert job["exit_code"] == 0, job["output"]
    return platform


def test_pipeline_chains_three_functions_and_carries_the_request_id(composed: Platform) -> None:
    request_id = "req-pipeline-1"
    with composed.client() as client:
        response = client.post("/analyze", json={"text": "Great service, thanks! Fast too."},
                               headers={"x-request-id": request_id})
    assert response.status_code == 200, response.text
    assert response.json() == {"label": "positive", "evidence": {"positive": ["great", "thanks", "fast"], "negative": []}}
    for name in ("analyze", "preprocess", "detect", "classify"):
        wait_for(lambda name=name: any(f"request={request_id}" in line
                                       for line in composed.fnctl("logs", name).output.splitlines()), timeout=20)


def test_ensemble_votes(composed: Platform) -> None:
    spam = fn.call("vote", text="FREE PRIZE!!! click http://a http://b")
    assert spam["label"] == "spam" and spam["agreement"] == 1.0
    ham = fn.call("vote", text="see you at lunch")
    assert ham == {"label": "ham", "votes": {"by-words": "ham", "by-shouting": "ham", "by-links": "ham"},
                   "agreement": 1.0}
    split = fn.call("vote", text="you are a winner")
    assert split["label"] == "ham" and split["votes"]["by-words"] == "spam"


def test_dynamic_selection_and_errors_keep_their_meaning_across_the_hop(composed: Platform) -> None:
    assert fn.call("route", text="6 * 7") == {"model": "arithmetic", "result": 42.0}
    assert fn.call("route", text="hello") == {"model": "shout", "result": "HELLO!"}
    with composed.client() as client:
        response = client.post("/route", json={"text": "1 / 0"}, headers={"x-request-id": "req-route-err"})
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "ZeroDivisionError"
    assert error["message"] == "division by zero"
    assert error["request_id"] == "req-route-err"


def test_validation_errors_cross_the_hop(composed: Platform, tmp_path: Path) -> None:
    project = tmp_path / "caller"
    project.mkdir()
    (project / "main.py").write_text(
        "import fn\n\n@fn.function(cpus=0.25)\ndef bad_caller() -> object:\n"
        "    return fn.call('arithmetic', expression=1, unexpected=2)\n\n"
        "@fn.function(cpus=0.25)\ndef missing_caller() -> object:\n    return fn.call('no-such-function')\n"
    )
    assert composed.deploy(project)["exit_code"] == 0
    with composed.client() as client:
        bad = client.post("/bad-caller", json={})
        missing = client.post("/missing-caller", json={})
    assert bad.status_code == 422 and "unexpected" in bad.json()["error"]["message"]
    assert missing.status_code == 404 and "no-such-function" in missing.json()["error"]["message"]
