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


def printed(fields: dict[str, str]) -> list[str]:
    """The OCR lines of a front printing *fields* (ISO dates printed DD.MM.YYYY), captions included."""
    def day_first(iso: str) -> str:
        return ".".join(reversed(iso.split("-")))
    return ["UTOPIA", "IDENTITY CARD", "Surname", fields["surname"], "Given names", fields["given_names"],
            "Date of birth", "Sex", "Nationality", day_first(fields["birth_date"]), fields["sex"], fields["nationality"],
            "Document No.", "Date of expiry", fields["document_number"], day_first(fields["expiry_date"])]


def results(**change: Any) -> dict[str, Any]:
    front = {"ok": True, "problems": [], "card_found": True, "fields": dict(FIELDS), "text": printed(FIELDS)}
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
    shown = dict(FIELDS, surname="MARTIN", expiry_date="2020-01-01")
    mrz = {"valid": False, "failed_checks": ["birth_date", "composite"], "fields": dict(FIELDS, expiry_date="2020-01-01")}
    out = run(front__fields=shown, front__text=printed(shown), back__mrz=mrz)
    assert out["decision"] == "reject"
    # Against an MRZ that fails its checks a different front proves nothing more: not found, a review reason.
    assert {"mrz_invalid", "front_values_not_found", "document_expired"} <= set(codes(out))
    assert "front_mrz_mismatch" not in codes(out)
    assert "birth_date" in next(r["message"] for r in out["reasons"] if r["code"] == "mrz_invalid")
    out = run(front__fields=shown, front__text=printed(shown), back__mrz=dict(mrz, valid=True, failed_checks=[]))
    assert "surname: MRZ 'ERIKSSON' vs front 'MARTIN'" in next(r["message"] for r in out["reasons"]
                                                               if r["code"] == "front_mrz_mismatch")
    assert out["front_check"]["surname"] == {"status": "differs", "front": "MARTIN"}


def test_garbled_step_results_never_make_the_decision_raise() -> None:
    for change in ({"front__mrz": "garbage"}, {"back__mrz": "x"}, {"back__mrz": {"valid": False, "fields": ["x"]}},
                   {"back__mrz": {"valid": False, "failed_checks": 3, "fields": {"surname": 7}}},
                   {"front__fields": ["x"]}, {"front__text": "not a list"},
                   {"back__mrz": {"valid": True, "fields": dict(FIELDS, birth_date="1985")}}):
        out = run(**change)  # never raises
        garbled_mrz = "back__mrz" in change
        assert out["decision"] in ({"review", "reject"} if garbled_mrz else {"approve", "review"}), (change, out)


def test_an_ocr_slip_in_a_name_is_tolerated_but_a_different_name_is_not() -> None:
    for slip in ("ERIKSS0N", "ERIKSON", "Eriksson"):
        shown = dict(FIELDS, surname=slip)
        assert run(front__fields=shown, front__text=printed(shown))["decision"] == "approve", slip
    shown = dict(FIELDS, surname="MARTIN")
    assert run(front__fields=shown, front__text=printed(shown))["decision"] == "reject"


def test_values_are_found_anywhere_whatever_the_caption_reading() -> None:
    # A bilingual caption read as the value ("Surname / Nom" -> "NOM") must not reject a genuine card:
    # the MRZ's surname is on the front, so it is found.
    text = ["REPUBLIC OF ARCADIA", "Surname / Nom", "ERIKSSON", "Given names / Prenoms", "ANNA MARIA",
            "Date of birth / Date de naissance 12 AUG/AOUT 1974", "D231 45890", "Expiry / Expiration 2031-04-15"]
    out = run(front__fields={"surname": "NOM", "birth_date": "1974-08-12"}, front__text=text)
    assert out["decision"] == "approve", out["reasons"]
    assert {c["status"] for c in out["front_check"].values()} == {"found"}


def test_values_not_found_are_a_review_naming_them_never_a_reject() -> None:
    text = [line for line in printed(FIELDS) if line not in ("12.08.1974", "ERIKSSON")]
    out = run(front__fields={}, front__text=text)
    assert out["decision"] == "review" and codes(out) == ["front_values_not_found"]
    message = out["reasons"][0]["message"]
    assert "surname" in message and "birth date" in message and "given names" not in message
    # A date under its caption one digit away from the MRZ's is a misreading as likely as a change: review.
    shown = dict(FIELDS, birth_date="1974-08-13")
    assert codes(run(front__fields=shown, front__text=printed(shown))) == ["front_values_not_found"]
    # ... two digits away, it shows another date: reject.
    shown = dict(FIELDS, birth_date="1974-09-21")
    assert "front_mrz_mismatch" in codes(run(front__fields=shown, front__text=printed(shown)))


def test_a_changed_document_number_is_caught_without_its_caption() -> None:
    text = [line.replace("D23145890", "D29145850") for line in printed(FIELDS)]
    out = run(front__fields={}, front__text=text)
    assert out["decision"] == "reject" and out["front_check"]["document_number"]["status"] == "differs"
    # One character off is an OCR slip as likely as a change: review.
    text = [line.replace("D23145890", "D23145850") for line in printed(FIELDS)]
    assert run(front__fields={}, front__text=text)["decision"] == "review"


def test_an_mrz_line_on_the_front_is_not_taken_for_the_printed_values() -> None:
    text = ["Surname", "Given names", "IDUTOD23145890<<<<<<<<<<<<<<<<", "7408122F3104159UTO<<<<<<<<<<<4",
            "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"]
    out = run(front__fields={}, front__text=text)
    assert out["decision"] == "review"
    assert {c["status"] for c in out["front_check"].values()} == {"not_found"}


def test_step_problems_become_review_reasons_and_missing_steps_never_crash() -> None:
    out = run(quality__problems=[{"code": "selfie_blurry", "message": "blurred"}])
    assert out["decision"] == "review" and codes(out) == ["selfie_blurry"]
    out = decide(None, "garbage", {}, [], config=CONFIG, today=TODAY)
    assert out["decision"] == "review"
    assert "step_missing" in codes(out)


def test_a_face_far_off_on_a_blurred_selfie_is_a_review_not_a_reject() -> None:
    out = run(face__distance=0.7, quality__problems=[{"code": "selfie_blurry", "message": "blurred"}])
    assert out["decision"] == "review" and set(codes(out)) == {"selfie_blurry", "face_uncertain"}
    assert "blurry selfie" in next(r["message"] for r in out["reasons"] if r["code"] == "face_uncertain")
    assert run(face__distance=0.7)["decision"] == "reject"


def test_an_mrz_whose_check_digits_hold_but_letters_do_not_is_a_review() -> None:
    mrz = {"valid": False, "failed_checks": ["format"], "fields": dict(FIELDS)}
    out = run(back__mrz=mrz)
    assert out["decision"] == "review" and codes(out) == ["mrz_unclear"]
    # A line read too long or short: its failed check digits say more of the reading than of the document.
    mrz = {"valid": False, "failed_checks": ["birth_date"], "misread_length": True, "fields": dict(FIELDS)}
    assert codes(run(back__mrz=mrz)) == ["mrz_unclear"]
    assert codes(run(back__mrz={**mrz, "misread_length": False})) == ["mrz_invalid"]


def test_a_name_is_found_in_its_national_spelling_and_only_as_whole_words() -> None:
    from kyc.verify import DIFFERS, FOUND, NOT_FOUND, check_front

    mrz = {"surname": "MUELLER", "given_names": "JOERG"}
    # ICAO 9303 writes Ü as UE in the MRZ: the front's MÜLLER and JÖRG are the same names
    checks = check_front(["Name / Nom", "MÜLLER", "Vornamen", "JÖRG"], {}, mrz)
    assert (checks["surname"].status, checks["given_names"].status) == (FOUND, FOUND)
    # MARTIN is not inside MARTINEZ, nor LI inside the caption NATIONALITY
    checks = check_front(["Surname", "MARTINEZ", "Nationality", "ESP"], {"surname": "MARTINEZ"},
                         {"surname": "MARTIN", "given_names": "LI"})
    assert checks["surname"].status == DIFFERS and checks["surname"].front == "MARTINEZ"
    assert checks["given_names"].status == NOT_FOUND
    # a name that wrapped onto the next line is still found
    assert check_front(["VAN DER", "MEER"], {}, {"surname": "VANDERMEER"})["surname"].status == FOUND
