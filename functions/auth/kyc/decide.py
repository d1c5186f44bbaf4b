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

from . import verify
from .config import CONFIG, Config

REJECT = frozenset({"mrz_invalid", "front_mrz_mismatch", "document_expired", "face_mismatch", "replay"})
POOR_SELFIE = frozenset({"selfie_blurry", "selfie_dark"})
DOCUMENT_FIELDS = ("surname", "given_names", "document_number", "birth_date", "expiry_date", "nationality", "sex")


def _step(result: Any, name: str, reasons: list[dict[str, str]]) -> dict[str, Any]:
    if not isinstance(result, dict):
        reasons.append({"code": "step_missing", "message": f"the {name} step gave no result"})
        return {}
    for item in result.get("problems") or []:
        if isinstance(item, dict) and "code" in item:
            reasons.append({"code": str(item["code"]), "message": str(item.get("message", ""))})
    return result


def _front_check(mrz: dict[str, str], mrz_valid: bool, front: dict[str, Any], config: Config,
                 reasons: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    """The MRZ's values looked for on the front (``verify``): shown otherwise is a reject, not found a review.
    Against an MRZ that failed its checks a difference proves nothing of the front (the MRZ may be what was
    misread): it is not found, a review; that MRZ gives its own reason."""
    text = [line for line in _list(front.get("text")) if isinstance(line, str)]
    claims = {k: v for k, v in _dict(front.get("fields")).items() if isinstance(v, str)}
    checks = verify.check_front(text, claims, mrz, max_name_edits=config.name_max_edit_distance)
    differ = {name: check for name, check in checks.items() if check.status == verify.DIFFERS and mrz_valid}
    missing = [name for name, check in checks.items() if check.status == verify.NOT_FOUND
               or (check.status == verify.DIFFERS and not mrz_valid)]
    if differ:
        detail = "; ".join(f"{n}: MRZ {mrz.get(n)!r} vs front {c.front!r}" for n, c in differ.items())
        reasons.append({"code": "front_mrz_mismatch", "message": f"the MRZ and the printed front disagree ({detail})"})
    if missing:
        reasons.append({"code": "front_values_not_found",
                        "message": f"the MRZ's {', '.join(n.replace('_', ' ') for n in missing)} could not be found "
                                   f"on the card front: photograph the whole front, sharp and without glare"})
    return {name: check.as_dict() for name, check in checks.items()}


def decide(front: Any, back: Any, face: Any, quality: Any, *, config: Config = CONFIG,
           today: dt.date | None = None) -> dict[str, Any]:
    """The output of the flow: decision, reasons, the document's data and the face distance."""
    today = today or dt.date.today()
    reasons: list[dict[str, str]] = []
    front_r = _step(front, "front", reasons)
    front_mrz = _dict(front_r.get("mrz")) or None
    back_mrz = _dict(back.get("mrz")) or None if isinstance(back, dict) else None
    # A passport page (TD3) or TD2 document carries its MRZ on the front: its back is not needed, so
    # whatever was or was not uploaded as a back does not count.
    back_r = _step(back, "back", reasons) if back_mrz or not front_mrz else back
    face_r, quality_r = _step(face, "face", reasons), _step(quality, "quality", reasons)
    printed = {k: v for k, v in _dict(front_r.get("fields")).items() if isinstance(v, str)}
    mrz = back_mrz or front_mrz
    if mrz is None and isinstance(back_r, dict) and back_r.get("given") is False:
        reasons.append({"code": "back_missing", "message": "this document's machine-readable zone is on its back, "
                                                           "which was not given: upload the back of the card too"})
    elif mrz is None:  # never approve unverified: the steps say why as a rule, this covers a result that does not
        reasons.append({"code": "mrz_not_found", "message": "no machine-readable zone was read, on the back or the "
                                                            "front: photograph it sharp and without glare"})
    mrz_fields = {k: v for k, v in _dict((mrz or {}).get("fields")).items() if isinstance(v, str)}
    if mrz is not None and not mrz.get("valid"):
        failed = [str(name) for name in _list(mrz.get("failed_checks"))] or ["format"]
        if failed == ["format"]:  # every check digit holds: a letter misread (a filler as C), not a changed document
            reasons.append({"code": "mrz_unclear", "message": "the MRZ's check digits hold but some of its letters "
                                                              "are not valid for its format: read unclearly"})
        elif mrz.get("misread_length"):  # a line read too long or short: the failed checks are the reading's
            reasons.append({"code": "mrz_unclear", "message": f"the MRZ was read with a line of the wrong length and "
                                                              f"fails check digit(s) {', '.join(failed)}: read "
                                                              f"unclearly; photograph it again, sharp and straight"})
        else:
            reasons.append({"code": "mrz_invalid", "message": f"the MRZ fails its check digit(s): {', '.join(failed)}"})
    front_check = (_front_check(mrz_fields, bool((mrz or {}).get("valid")), front_r, config, reasons)
                   if mrz_fields and front_r.get("card_found") else {})
    expiry = mrz_fields.get("expiry_date") if mrz and mrz.get("valid") else None
    expiry = expiry or printed.get("expiry_date")
    if expiry:
        try:
            if dt.date.fromisoformat(expiry) < today:
                reasons.append({"code": "document_expired", "message": f"the document expired on {expiry}"})
        except ValueError:
            reasons.append({"code": "expiry_unreadable", "message": f"the expiry date {expiry!r} is not a date"})
    distance = face_r.get("distance")
    # A face compared on a blurred or dark selfie is weak evidence: a large distance there is a review.
    poor_selfie = {str(p.get("code")) for p in quality_r.get("problems") or [] if isinstance(p, dict)} & POOR_SELFIE
    if isinstance(distance, int | float):
        if distance >= config.face_reject_min and not poor_selfie:
            reasons.append({"code": "face_mismatch", "message": f"the selfie does not show the card holder (face distance "
                                                                f"{distance:.2f} >= {config.face_reject_min:.2f})"})
        elif distance >= config.face_reject_min:
            poor = " and ".join(sorted(code.split("_")[1] for code in poor_selfie))
            reasons.append({"code": "face_uncertain", "message": f"the selfie may not show the card holder (face distance "
                                                                 f"{distance:.2f} >= {config.face_reject_min:.2f}, but "
                                                                 f"on a {poor} selfie)"})
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
            "mrz_format": (mrz or {}).get("format"), "mrz_from": "back" if back_mrz else "front" if front_mrz else None,
            "front_check": front_check,
            "thresholds": config.thresholds(), "thresholds_sha256": config.source_sha256}


def _dict(value: Any) -> dict[str, Any]:
    """A step's part that should be a dict, as one (a garbled or forged result never makes the decision raise)."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _unique(reasons: list[dict[str, str]]) -> list[dict[str, str]]:
    seen: set[str] = set()
    out = []
    for reason in reasons:
        if reason["code"] not in seen:
            seen.add(reason["code"])
            out.append(reason)
    return out
