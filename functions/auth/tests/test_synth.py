"""The test-data generator: deterministic per seed, and every kind of case carries its truth."""

from __future__ import annotations

from kyc import cases, synth
from kyc.mrz_read import parse


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = cases.make_case(7, "hard", "genuine")
    b = cases.make_case(7, "hard", "genuine")
    c = cases.make_case(8, "hard", "genuine")
    assert (a.front, a.back, a.selfie, a.identity) == (b.front, b.back, b.selfie, b.identity)
    assert a.front != c.front and a.identity != c.identity


def test_generated_mrz_is_valid_and_tampered_one_is_not() -> None:
    genuine = cases.make_case(3, "easy", "genuine")
    assert parse(list(genuine.mrz)).valid
    assert parse(synth.mrz_lines(genuine.identity)).fields["surname"] == genuine.identity.surname
    tampered = cases.make_case(3, "easy", "mrz_digit")
    assert not parse(list(tampered.mrz)).valid
    assert "tampered" in tampered.notes


def test_plan_mixes_kinds_and_levels() -> None:
    plan = cases.case_plan(range(28))
    assert {level for _, level, _ in plan} == set(synth.LEVELS)
    assert {kind for _, _, kind in plan} == set(synth.KINDS)
    assert sum(kind == "genuine" for _, _, kind in plan) == 14


def test_designs_differ_and_carry_their_issuer() -> None:
    fronts = {design: cases.make_case(7, "easy", "genuine", design) for design in synth.DESIGNS}
    assert len({case.front for case in fronts.values()}) == len(synth.DESIGNS)
    for design, case in fronts.items():
        assert case.design == design
        assert case.identity.nationality == synth.NATIONALITY[design]
        assert parse(list(case.mrz)).valid and parse(list(case.mrz)).fields["issuing_state"] == synth.NATIONALITY[design]
    assert fronts["C"].identity.issue_date is not None and fronts["A"].identity.issue_date is None
    assert "C" not in synth.TUNING_DESIGNS
