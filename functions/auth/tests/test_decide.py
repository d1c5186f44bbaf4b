"""The decision rules on hand-made step results (no images)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kyc.config import Config
from kyc.decide import decide

FIELDS = {"surname": "ERIKSSON", "given_names": "ANNA MARIA", "document_number": "D23145890",
          "birth_date": "1974-08-12", "expiry_date": "2031-04-15", "nationality": "UTO", "sex": "F"}
TODAY = dt.date(2026, 6, 1)
CONFIG = Config(face_match_max=0.5, face_reject_min=0.62)


def results(**change: Any) -> dict[str, Any]:
    front = {"ok": True, "problems": [], "fields": dict(FIELDS)}
    back = {"ok": True, "problems": [], "mrz": {"valid": True, "failed_checks": [], "fields": dict(FIELDS)}}
    face = {"ok": True, "problems": [], "distance": 0.3}
    quality = {"ok": True, "problems": [], "replay_similarity": 0.5}
    out = {"front": front, "back": back, "face": face, "quality": quality}
    for key, value in change.items():
        step, _, field = key.partition("__")
        out[step][field] = value
    return out


def codes(out: dict[str, Any]) -> list[str]:
    return [r["code"] for r in out["reasons"]]


def run(**change: Any) -> dict[str, Any]:
    r = results(**change)
    return decide(r["front"], r["back"], r["face"], r["quality"], config=CONFIG, today=TODAY)


def test_all_good_approves_and_reports_the_document() -> None:
    out = run()
    assert out["decision"] == "approve" and out["reasons"] == []
    assert out["document"] == FIELDS
    assert out["face_distance"] == 0.3


def test_face_bands() -> None:
    assert run(face__distance=0.55)["decision"] == "review"
    assert codes(run(face__distance=0.55)) == ["face_uncertain"]
    assert run(face__distance=0.7)["decision"] == "reject"
    assert codes(run(face__distance=0.7)) == ["face_mismatch"]


def test_expired_and_mismatch_and_invalid_mrz_reject_with_every_reason() -> None:
    front_fields = dict(FIELDS, surname="MARTIN", expiry_date="2020-01-01")
    mrz = {"valid": False, "failed_checks": ["birth_date", "composite"], "fields": dict(FIELDS, expiry_date="2020-01-01")}
    out = run(front__fields=front_fields, back__mrz=mrz)
    assert out["decision"] == "reject"
    assert {"mrz_invalid", "front_mrz_mismatch", "document_expired"} <= set(codes(out))
    assert "birth_date" in next(r["message"] for r in out["reasons"] if r["code"] == "mrz_invalid")


def test_an_ocr_slip_in_a_name_is_tolerated_but_a_different_name_is_not() -> None:
    assert run(front__fields=dict(FIELDS, surname="ERIKSS0N"))["decision"] == "approve"
    assert run(front__fields=dict(FIELDS, surname="ERIKSON"))["decision"] == "approve"
    assert run(front__fields=dict(FIELDS, surname="MARTIN"))["decision"] == "reject"


def test_step_problems_become_review_reasons_and_missing_steps_never_crash() -> None:
    out = run(quality__problems=[{"code": "selfie_blurry", "message": "blurred"}])
    assert out["decision"] == "review" and codes(out) == ["selfie_blurry"]
    out = decide(None, "garbage", {}, [], config=CONFIG, today=TODAY)
    assert out["decision"] == "review"
    assert "step_missing" in codes(out)
