"""Step 5: approve, review or reject, with every reason.

Reasons come from two places: the problems the steps reported (unreadable or missing input,
blur, faces) and the cross-checks made here (MRZ check digits, MRZ vs front text, expiry, face
distance, replay). Each reason code has a severity:

- ``reject``: evidence of a wrong or forged document or another person (MRZ check digits fail,
  MRZ and front disagree, document expired, face distance above the mismatch threshold, replay);
- ``review``: the case could not be verified automatically (bad or unreadable photos, no or
  several faces, face distance in the uncertain band, low quality, an internal error).

Any reject reason rejects; else any review reason sends to review; else approve. The decision
never raises: missing or malformed step results become review reasons.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .config import CONFIG, Config
from .front import canonical_number, edit_distance

REJECT = frozenset({"mrz_invalid", "front_mrz_mismatch", "document_expired", "face_mismatch", "replay"})
DOCUMENT_FIELDS = ("surname", "given_names", "document_number", "birth_date", "expiry_date", "nationality", "sex")


def _step(result: Any, name: str, reasons: list[dict[str, str]]) -> dict[str, Any]:
    if not isinstance(result, dict):
        reasons.append({"code": "step_missing", "message": f"the {name} step gave no result"})
        return {}
    for item in result.get("problems") or []:
        if isinstance(item, dict) and "code" in item:
            reasons.append({"code": str(item["code"]), "message": str(item.get("message", ""))})
    return result


def _compare(mrz: dict[str, str], printed: dict[str, str], config: Config) -> list[str]:
    """Names of the fields on which the MRZ and the printed front disagree (only fields both have)."""
    differ = []
    for name in ("surname", "given_names"):
        a, b = mrz.get(name, ""), printed.get(name, "")
        if a and b and edit_distance(a.replace(" ", ""), b.replace(" ", "")) > config.name_max_edit_distance:
            differ.append(name)
    for name in ("birth_date", "expiry_date"):
        if mrz.get(name) and printed.get(name) and mrz[name] != printed[name]:
            differ.append(name)
    a, b = mrz.get("document_number", ""), printed.get("document_number", "")
    if a and b and canonical_number(a) != canonical_number(b):
        differ.append("document_number")
    return differ


def decide(front: Any, back: Any, face: Any, quality: Any, *, config: Config = CONFIG,
           today: dt.date | None = None) -> dict[str, Any]:
    """The output of the flow: decision, reasons, the document's data and the face distance."""
    today = today or dt.date.today()
    reasons: list[dict[str, str]] = []
    front_r, back_r = _step(front, "front", reasons), _step(back, "back", reasons)
    face_r, quality_r = _step(face, "face", reasons), _step(quality, "quality", reasons)
    printed: dict[str, str] = front_r.get("fields") or {}
    mrz = back_r.get("mrz") or None
    mrz_fields: dict[str, str] = (mrz or {}).get("fields") or {}
    if mrz is not None and not mrz.get("valid"):
        failed = ", ".join(mrz.get("failed_checks") or ["format"])
        reasons.append({"code": "mrz_invalid", "message": f"the MRZ fails its check digit(s): {failed}"})
    if mrz_fields and printed:
        differ = _compare(mrz_fields, printed, config)
        if differ:
            detail = "; ".join(f"{n}: MRZ {mrz_fields.get(n)!r} vs front {printed.get(n)!r}" for n in differ)
            reasons.append({"code": "front_mrz_mismatch", "message": f"the MRZ and the printed front disagree ({detail})"})
    expiry = mrz_fields.get("expiry_date") if mrz and mrz.get("valid") else None
    expiry = expiry or printed.get("expiry_date")
    if expiry:
        try:
            if dt.date.fromisoformat(expiry) < today:
                reasons.append({"code": "document_expired", "message": f"the document expired on {expiry}"})
        except ValueError:
            reasons.append({"code": "expiry_unreadable", "message": f"the expiry date {expiry!r} is not a date"})
    distance = face_r.get("distance")
    if isinstance(distance, int | float):
        if distance >= config.face_reject_min:
            reasons.append({"code": "face_mismatch", "message": f"the selfie does not show the card holder (face distance "
                                                                f"{distance:.2f} >= {config.face_reject_min:.2f})"})
        elif distance > config.face_match_max:
            reasons.append({"code": "face_uncertain", "message": f"the selfie may not show the card holder (face distance "
                                                                 f"{distance:.2f} between {config.face_match_max:.2f} and "
                                                                 f"{config.face_reject_min:.2f})"})
    reasons = _unique(reasons)
    codes = {r["code"] for r in reasons}
    decision = "reject" if codes & REJECT else "review" if reasons else "approve"
    for reason in reasons:
        reason["severity"] = "reject" if reason["code"] in REJECT else "review"
    document = {name: (mrz_fields.get(name) if mrz_fields.get(name) else printed.get(name, "")) or None
                for name in DOCUMENT_FIELDS}
    return {"decision": decision, "reasons": reasons, "document": document,
            "face_distance": round(distance, 4) if isinstance(distance, int | float) else None,
            "replay_similarity": quality_r.get("replay_similarity"), "mrz_valid": bool(mrz and mrz.get("valid")),
            "thresholds": config.thresholds()}


def _unique(reasons: list[dict[str, str]]) -> list[dict[str, str]]:
    seen: set[str] = set()
    out = []
    for reason in reasons:
        if reason["code"] not in seen:
            seen.add(reason["code"])
            out.append(reason)
    return out
