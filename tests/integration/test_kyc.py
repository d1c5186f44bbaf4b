"""The identity-verification flow deployed with fnctl and run through the platform on generated cases."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from harness import Platform

import fn

AUTH = Path(__file__).resolve().parents[2] / "functions" / "auth"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kyc(platform: Platform) -> Platform:
    job = platform.deploy(AUTH)
    assert job["exit_code"] == 0, job["output"]
    assert job["results"]["flow:kyc"]["status"] == "deployed"
    return platform


def _case(seed: int, kind: str, design: str = "A") -> Any:
    sys.path.insert(0, str(AUTH))
    try:
        from kyc.cases import make_case
    finally:
        sys.path.remove(str(AUTH))
    return make_case(seed, "easy", kind, design)


def _run(front: bytes, back: bytes | None, selfie: bytes) -> dict[str, Any]:
    run = fn.flows.start("kyc")
    run.put("selfie", selfie)  # any order: each step starts when its own inputs are in
    if back is None:
        run.put("front", front)
        run.close_inputs()  # a passport page has no back: the run goes on without it
    else:
        run.put("back", back)
        run.put("front", front)
    output: dict[str, Any] = run.result(timeout=600)
    return output


def test_genuine_case_is_approved_with_the_document_read(kyc: Platform) -> None:
    case = _case(1, "genuine")
    output = _run(case.front, case.back, case.selfie)
    assert output["decision"] == "approve", output
    assert output["document"] == case.identity.document()
    assert output["face_distance"] < 0.6


def test_a_passport_page_is_approved_without_a_back(kyc: Platform) -> None:
    case = _case(4, "genuine", "P")
    output = _run(case.front, None, case.selfie)
    assert output["decision"] == "approve", output
    assert output["document"] == case.identity.document()
    assert output["mrz_from"] == "front" and output["mrz_format"] == "TD3"


def test_a_decision_keeps_its_evidence_for_admins(kyc: Platform) -> None:
    import hashlib
    case = _case(6, "genuine", "P")
    run = fn.flows.start("kyc")
    run.put("front", case.front)
    run.put("selfie", case.selfie)
    run.close_inputs()
    output = run.result(timeout=600)
    evidence = run.evidence()  # the harness's key is an admin key
    assert evidence["output"] == output and evidence["status"] == "succeeded"
    assert evidence["inputs"]["front"]["sha256"] == hashlib.sha256(case.front).hexdigest()
    assert evidence["inputs"]["back"]["given"] is False
    decide = evidence["steps"]["kyc-decide"]
    assert decide["version"] >= 1 and decide["result"]["thresholds_sha256"] == output["thresholds_sha256"]
    assert all(step["version"] >= 1 and step["started_at"] for step in evidence["steps"].values())
    assert len(evidence["bundle_sha256"]) == 64


def test_a_card_of_another_design_is_approved(kyc: Platform) -> None:
    case = _case(5, "genuine", "B")
    output = _run(case.front, case.back, case.selfie)
    assert output["decision"] == "approve", output
    assert {check["status"] for check in output["front_check"].values()} == {"found"}


@pytest.mark.parametrize("kind", ["mrz_digit", "other_person"])
def test_tampered_cases_are_rejected_with_their_reason(kyc: Platform, kind: str) -> None:
    case = _case(2, kind)
    output = _run(case.front, case.back, case.selfie)
    assert output["decision"] == case.expected_decision
    codes = {reason["code"] for reason in output["reasons"]}
    assert set(case.expected_reasons) <= codes, output


def test_not_an_image_gives_a_reason_not_a_crash(kyc: Platform) -> None:
    case = _case(3, "genuine")
    output = _run(b"this is not an image", case.back, case.selfie)
    assert output["decision"] in {"review", "reject"}
    assert output["reasons"], output


def test_the_steps_are_not_on_http_only_the_flow_is(kyc: Platform) -> None:
    forged = {"kyc_front": {"fields": {}, "problems": []}, "kyc_back": {"mrz": {"valid": True}, "problems": []},
              "kyc_face": {"distance": 0.1, "problems": []}, "kyc_quality": {"problems": []}}
    with kyc.client() as client:
        missing = client.post("/no-such-function", json={})
        for name, body in (("kyc-decide", forged), ("kyc-face", {"selfie": "", "kyc_front": {}}),
                           ("kyc-front", {}), ("kyc-back", {}), ("kyc-quality", {})):
            response = client.post(f"/{name}", json=body)
            assert response.status_code == 404, (name, response.text)
            assert response.json()["error"]["message"] == missing.json()["error"]["message"].replace(
                "no-such-function", name)
    listed = {row["name"]: row for row in json.loads(kyc.fnctl("ls", "--json").output)}
    assert all(listed[name]["internal"] for name in ("kyc-front", "kyc-back", "kyc-face", "kyc-quality", "kyc-decide"))
