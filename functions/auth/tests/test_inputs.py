"""Safe decoding of untrusted uploads and the label-based reading of the card front."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest
from kyc import cases, front, imaging
from kyc.ocr import TextLine


@pytest.mark.parametrize(("data", "code"), [
    (b"", "empty"),
    (None, "empty"),
    (b"hello, not an image", "not_an_image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not_an_image"),  # a truncated PNG
    (cases.png_header_only(40_000, 30_000), "too_large"),   # a 1.2 gigapixel header in a tiny file
    (cases.png_header_only(20, 20), "too_small"),
])
def test_bad_uploads_are_refused_with_a_reason(data: bytes | None, code: str) -> None:
    with pytest.raises(imaging.BadImage) as info:
        imaging.decode(data, what="selfie")
    assert info.value.code == code
    assert "selfie" in info.value.message


def test_gif_is_refused() -> None:
    import io

    from PIL import Image
    buffer = io.BytesIO()
    Image.new("RGB", (100, 100)).save(buffer, format="GIF")
    with pytest.raises(imaging.BadImage, match="GIF"):
        imaging.decode(buffer.getvalue(), what="front")


def test_large_images_are_downscaled_for_work() -> None:
    _, data = cv2.imencode(".png", np.zeros((2400, 3200, 3), np.uint8))
    image = imaging.decode(data.tobytes(), what="front")
    assert max(image.shape[:2]) == 1600


def _line(text: str, x: float, y: float, h: float = 20) -> TextLine:
    return TextLine(text=text, score=0.99, box=(x, y, x + 12 * len(text), y + h))


def test_front_fields_are_read_below_their_labels() -> None:
    lines = [_line("Surname", 380, 130, 18), _line("ERIKSSON", 380, 160), _line("Given names", 380, 210, 18),
             _line("ANNA MARIA", 380, 240), _line("Date of birth", 380, 290, 18), _line("Sex", 720, 290, 18),
             _line("12.O8.1974", 380, 320), _line("F", 720, 320), _line("Document No.", 380, 370, 18),
             _line("Date of expiry", 690, 370, 18), _line("D23145890", 380, 400), _line("15.04.2031", 690, 400)]
    fields = front.read_fields(lines)
    assert fields["surname"] == "ERIKSSON"
    assert fields["given_names"] == "ANNA MARIA"
    assert fields["birth_date"] == "1974-08-12"  # 'O' read for '0' in a date is fixed
    assert fields["sex"] == "F"
    assert fields["document_number"] == "D23145890"
    assert fields["expiry_date"] == "2031-04-15"
    assert fields["nationality"] == ""  # no label: not guessed


def test_front_value_merged_with_its_label() -> None:
    fields = front.read_fields([_line("Surname ERIKSSON", 380, 130)])
    assert fields["surname"] == "ERIKSSON"


def test_dates_and_names_normalise() -> None:
    assert front.parse_date("31.02.1990") == ""
    assert front.parse_date("O1.I2.2O30") == "2030-12-01"
    assert front.normalise("surname", "er1ksson") == "ERIKSSON"
    assert front.canonical_number("D2314589O") == front.canonical_number("023145890")
    assert front.edit_distance("ERIKSSON", "ERIKSON") == 1


def test_a_base64_image_is_refused_from_its_length_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    from kyc.config import Config
    small = Config(max_upload_bytes=10)
    for size in range(12):  # the decoded size is exact from the text's length, with or without padding
        text = base64.b64encode(b"x" * size).decode()
        assert imaging.decoded_size(text) == size
    with pytest.raises(imaging.BadImage, match="11 bytes once decoded, over the limit of 10") as info:
        imaging.decode_b64(base64.b64encode(b"x" * 11).decode(), what="card portrait", config=small)
    assert info.value.code == "too_large"

    def no_decoding(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("an oversized image must be refused before its base64 is decoded")

    monkeypatch.setattr(imaging.base64, "b64decode", no_decoding)
    with pytest.raises(imaging.BadImage, match="over the limit of 20,971,520"):
        imaging.decode_b64("A" * 28_000_000, what="card portrait")


@pytest.mark.parametrize(("data", "code"), [
    (cases.png_header_only(40_000, 30_000), "too_large"),   # a 1.2 gigapixel header: refused before the pixels
    (cases.png_header_only(20, 20), "too_small"),
    (b"hello, not an image", "not_an_image"),
])
def test_a_base64_image_gets_an_uploads_checks(data: bytes, code: str) -> None:
    with pytest.raises(imaging.BadImage) as info:
        imaging.decode_b64(base64.b64encode(data).decode(), what="card portrait")
    assert info.value.code == code
    assert "card portrait" in info.value.message


def test_a_good_base64_image_round_trips() -> None:
    image = np.full((400, 300, 3), 128, np.uint8)
    assert imaging.decode_b64(imaging.encode_jpeg_b64(image), what="card portrait").shape == (400, 300, 3)
    with pytest.raises(imaging.BadImage, match="not valid base64"):
        imaging.decode_b64("not base64!", what="card portrait")


def test_a_forged_portrait_becomes_a_problem_not_a_decode() -> None:
    from kyc import selfie
    bomb = base64.b64encode(cases.png_header_only(40_000, 30_000)).decode()
    portrait, problems = selfie._portrait({"portrait_jpeg_b64": bomb}, imaging.CONFIG)
    assert portrait is None
    assert [p["code"] for p in problems] == ["portrait_image_too_large"]
    assert selfie._portrait({"portrait_jpeg_b64": None}, imaging.CONFIG)[1][0]["code"] == "portrait_missing"


def test_dates_in_any_common_format_with_every_reading() -> None:
    from kyc.dates import find_dates
    readings = {text: [d.readings for d in find_dates(text)] for text in (
        "12.O8.1974", "Date of birth 12 08 1974", "1985-03-07", "07 MAR/MARS 1985", "07 Mär 1985", "3 avril 1990",
        "12081974", "31.02.1990", "D23145890", "VYDANO / ISSUED: 09 01 2025  PLATNOST DO / EXPIRY: 09 01 2035")}
    assert readings["12.O8.1974"] == [("1974-08-12", "1974-12-08")]  # day first, else month first
    assert readings["Date of birth 12 08 1974"] == [("1974-08-12", "1974-12-08")]
    assert readings["1985-03-07"] == [("1985-03-07",)]
    assert readings["07 MAR/MARS 1985"] == [("1985-03-07",)]
    assert readings["07 Mär 1985"] == [("1985-03-07",)]
    assert readings["3 avril 1990"] == [("1990-04-03",)]
    assert readings["12081974"] == [("1974-08-12", "1974-12-08")]
    assert readings["31.02.1990"] == [] and readings["D23145890"] == []
    assert readings["VYDANO / ISSUED: 09 01 2025  PLATNOST DO / EXPIRY: 09 01 2035"] == [
        ("2025-01-09", "2025-09-01"), ("2035-01-09", "2035-09-01")]
    # Halves meaning different months (MEI: May in Dutch, June in Irish) keep both readings; the MRZ decides.
    assert [d.readings for d in find_dates("30 MEI/JUN 1980")] == [("1980-05-30", "1980-06-30")]
    assert [d.readings for d in find_dates("19 IUIL/JUL 1990")] == [("1990-07-19",)]  # Irish: not listed


def test_bilingual_captions_are_never_taken_for_the_value() -> None:
    lines = [_line("Surname / Nom", 380, 130, 18), _line("VANDERMEER", 380, 160),
             _line("Given names / Prénoms", 380, 210, 18), _line("Jan Pieter", 380, 240),
             _line("PRIJMENI / SURNAME: NOVAK", 380, 500), _line("Date of birth / Date de naissance", 380, 290, 18),
             _line("12 MAR/MARS 1985", 380, 320)]
    fields = front.read_fields(lines[:4] + lines[5:])
    assert fields["surname"] == "VANDERMEER" and fields["given_names"] == "JAN PIETER"
    assert fields["birth_date"] == "1985-03-12"
    assert front.read_fields([lines[4]])["surname"] == "NOVAK"  # a caption in an unlisted language, then English
    assert front.read_fields([_line("Surname / Nom", 380, 130, 18)])["surname"] == ""
    assert front.is_caption("Surname / Nom") and not front.is_caption("VANDERMEER")
