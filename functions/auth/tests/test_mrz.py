"""MRZ reading: check digits, position-aware fixes, line-length repair, validation of every check digit."""

from __future__ import annotations

import pytest
from kyc import mrz_read
from kyc.mrz_read import LAYOUT, check_digit, fix_positions, parse

# ICAO 9303 part 5's TD1 specimen (the 'mrz' package generates the same lines).
SPECIMEN = ["I<UTOD231458907<<<<<<<<<<<<<<<", "7408122F1204159UTO<<<<<<<<<<<6", "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"]


def test_check_digits_of_the_icao_examples() -> None:
    assert check_digit("L898902C3") == "6"
    assert check_digit("740812") == "2"
    assert check_digit("120415") == "9"
    assert check_digit("D23145890") == "7"


def test_specimen_is_valid_and_fields_are_read() -> None:
    result = parse(SPECIMEN)
    assert result.valid and result.failed_checks == []
    assert result.fields["surname"] == "ERIKSSON"
    assert result.fields["given_names"] == "ANNA MARIA"
    assert result.fields["document_number"] == "D23145890"
    assert result.fields["birth_date"] == "1974-08-12"
    assert result.fields["expiry_date"] == "2012-04-15"
    assert result.fields["sex"] == "F" and result.fields["nationality"] == "UTO"


@pytest.mark.parametrize(("row", "pos", "failed"), [
    (1, 3, "birth_date"),       # a birth date digit
    (1, 10, "expiry_date"),     # an expiry digit
    (0, 8, "document_number"),  # a document number digit
])
def test_a_changed_digit_fails_its_check_digit(row: int, pos: int, failed: str) -> None:
    lines = list(SPECIMEN)
    old = lines[row][pos]
    lines[row] = lines[row][:pos] + str((int(old) + 1) % 10) + lines[row][pos + 1:]
    result = parse(lines)
    assert not result.valid
    assert failed in result.failed_checks
    assert "composite" in result.failed_checks


def test_a_changed_composite_digit_fails() -> None:
    lines = list(SPECIMEN)
    lines[1] = lines[1][:29] + "7"
    result = parse(lines)
    assert not result.valid and result.failed_checks == ["composite"]


def test_position_aware_fixes_map_o_to_zero_in_digit_fields_and_zero_to_o_in_letter_fields() -> None:
    line2, notes = fix_positions("74O8122F12O4159UT0<<<<<<<<<<<6", LAYOUT[1])
    assert line2 == "7408122F1204159UTO<<<<<<<<<<<6"  # birth date and expiry digits: O -> 0; nationality: 0 -> O
    assert len(notes) == 3
    line3, _ = fix_positions("ER1KSS0N<<ANNA<MAR1A<<<<<<<<<<", LAYOUT[2])
    assert line3 == "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"  # the name field holds letters only


def test_ocr_confusions_are_repaired_to_a_valid_mrz() -> None:
    raw = ["IDUT0D231458907<<<<<<<<<<<<<<<", "74O8l22F12O4159UT0<<<<<<<<<<<6", "ERIKSS0N<<ANNA<MARIA<<<<<<<<<<"]
    raw[0] = "I<" + raw[0][2:]
    result = parse([mrz_read.clean(line) for line in raw])
    assert result.lines == SPECIMEN
    assert result.valid
    assert result.corrections


def test_a_dropped_filler_before_the_composite_digit_is_restored() -> None:
    short = SPECIMEN[1][:20] + SPECIMEN[1][21:]  # OCR dropped one '<' of the run
    assert len(short) == 29
    assert parse([SPECIMEN[0], short, SPECIMEN[2]]).valid


def test_filler_lookalikes_are_cleaned() -> None:
    assert mrz_read.clean("ANNA\u00abMARIA \u2039<") == "ANNA<<MARIA<<"
    fixed, _ = fix_positions("ERIKSSON<<ANNA<MARIA<<<K<<<<<<", LAYOUT[2])
    assert fixed == "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"
    fixed, _ = fix_positions("DIRK<<ANNA<<<<<<<<<<<<<<<<<<<<", LAYOUT[2])
    assert fixed.startswith("DIRK<<")  # a K inside a name stays


def test_an_ambiguous_document_number_is_resolved_by_its_check_digit() -> None:
    lines = list(SPECIMEN)
    lines[0] = lines[0][:5] + "D2314589O" + lines[0][14:]  # O for 0 in a mixed letters/digits field
    result = parse(lines)
    assert result.valid and result.fields["document_number"] == "D23145890"


def test_dates_get_their_century() -> None:
    import datetime as dt
    today = dt.date(2026, 6, 1)
    assert mrz_read._date("740812", past=True, today=today) == "1974-08-12"
    assert mrz_read._date("150101", past=True, today=today) == "2015-01-01"
    assert mrz_read._date("350101", past=False, today=today) == "2035-01-01"
    assert mrz_read._date("991301", past=False, today=today) == ""


# ICAO 9303 part 4's TD3 specimen (a passport) and a TD2 document of the same person, from 'mrz''s generator.
TD3 = ["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10"]
TD2 = ["I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", "D231458907UTO7408122F3104150<<<<<<<2"]


def test_td3_and_td2_are_read_and_checked() -> None:
    for lines, fmt, number in ((TD3, "TD3", "L898902C3"), (TD2, "TD2", "D23145890")):
        result = parse(lines)
        assert result.valid and result.format == fmt, (fmt, result.failed_checks)
        assert result.fields["surname"] == "ERIKSSON" and result.fields["given_names"] == "ANNA MARIA"
        assert result.fields["document_number"] == number and result.fields["birth_date"] == "1974-08-12"
        assert result.fields["sex"] == "F" and result.fields["nationality"] == "UTO"
    changed = parse([TD3[0], TD3[1][:13] + "7508122" + TD3[1][20:]])  # a birth year changed, its digit kept
    assert not changed.valid and changed.failed_checks == ["birth_date", "composite"]


def test_td3_misreads_are_repaired_by_position_and_length() -> None:
    # O for 0 in a digit field, 0 for O in a letter field, a filler dropped in the long run, the filler run after
    # the names read as C and E.
    misread = ["P<UTOERIKSSON<<ANNA<MARIA<<<<CE<<<<<EC<<<<", "L898902C36UT07408122F1204159ZE184226B<<<<10"]
    result = parse(misread)
    assert result.valid, (result.failed_checks, result.lines)
    assert result.lines == TD3
    assert mrz_read.format_of(TD2) is mrz_read.TD2 and mrz_read.format_of(SPECIMEN) is mrz_read.TD1


def test_a_character_read_twice_on_a_passports_data_line_is_removed_only_if_every_check_then_holds() -> None:
    doubled = [TD3[0], TD3[1][:13] + "77" + TD3[1][14:]]  # the birth date's 7 read twice: every field after it shifts
    result = parse(doubled)
    assert result.valid and result.lines == TD3 and "read twice, removed" in result.corrections[-1]
    # The check digit read twice: removing it gives TD3, but removing the number's 8 gives another number whose
    # check digit holds (L98902C36 ... 6). Two readings: unclear, never a guess.
    ambiguous = parse([TD3[0], TD3[1][:9] + "66" + TD3[1][10:]])
    assert not ambiguous.valid and ambiguous.misread_length and "2 readings without one hold" in ambiguous.corrections[-1]
    tampered = TD3[1][:13] + "8" + TD3[1][14:]  # the birth year changed, its check digit kept
    changed = [TD3[0], tampered[:38] + "<" + tampered[38:]]  # ... and a filler read twice: no reading passes
    assert not parse(changed).valid and parse(changed).misread_length
    assert not parse(TD3).misread_length and not parse([TD3[0], TD3[1][:14] + "5" + TD3[1][15:]]).misread_length
