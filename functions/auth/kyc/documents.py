"""Steps 1 and 2: read the card's front (text, dates, captioned values, portrait) and back (TD1 MRZ).

Both start the same way: decode the upload safely, find and straighten the card. The front is
then OCR'd whole, with no assumption about its layout: its text lines and the values under the
captions it has go to the decision, which looks for the MRZ's values anywhere in
them (``verify``); the portrait is the surest face a face detector finds on the straightened card.
The back is OCR'd on its lower part, where TD1 puts the MRZ; if no MRZ is there the card may be
upside down, so the straightened card is turned 180 degrees and read again.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from . import card, dates, front, mrz_read, ocr
from .config import CARD_HEIGHT_MM, CARD_WIDTH_MM, CONFIG, Config
from .face import detect_yuface
from .imaging import BadImage, decode, encode_jpeg_b64
from .result import guarded, problem


def _load_card(data: bytes | None, side: str, config: Config, aspects: tuple[float, ...] = (card.ID1_ASPECT,),
               ) -> tuple[card.FoundCard | None, list[dict[str, str]], np.ndarray | None]:
    """The straightened card (or page) and the decoded photo it came from, or the problems why not."""
    try:
        image = decode(data, what=f"card {side}", config=config)
    except BadImage as exc:
        return None, [problem(f"{side}_image_{exc.code}", exc.message)], None
    found = card.find_card(image, config, aspects)
    if found is None:
        what = "ID card or passport data page" if card.ID3_ASPECT in aspects else "ID card"
        return None, [problem(f"{side}_card_not_found", f"no {what} was found in the {side} photo: photograph the whole "
                                                          f"document flat, on a darker background, filling most of the "
                                                          f"frame")], image
    return found, [], image


@guarded("kyc-front")
def read_front(data: bytes | None, config: Config = CONFIG) -> dict[str, Any]:
    """Card front -> its text lines, the values under its captions, the portrait (JPEG, base64) and problems."""
    found, problems, image = _load_card(data, "front", config, (card.ID1_ASPECT, card.ID3_ASPECT))
    if found is None or image is None:
        return {"card_found": False, "fields": {}, "text": [], "mrz": None, "portrait_jpeg_b64": None,
                "problems": problems}
    found, face_box = _upright(found)
    lines = ocr.read(found.image, min_score=config.ocr_min_score)
    if face_box is None:  # no face either way up to tell the orientation: keep the way with more to read
        turned = _rotated(found)
        turned_lines = ocr.read(turned.image, min_score=config.ocr_min_score)
        if _legible(turned_lines) > _legible(lines):
            found, lines = turned, turned_lines
    sharp = card.sharpness(found.image)
    if sharp < config.card_blur_min:
        problems.append(problem("front_blurry", f"the card front photo is blurred "
                                                f"(sharpness {sharp:.0f} < {config.card_blur_min:.0f})"))
    portrait = None
    if face_box is None:
        problems.append(problem("front_portrait_not_found", "no portrait (face) was found on the card front: "
                                                            "photograph the whole front, sharp and without glare"))
    else:
        portrait = encode_jpeg_b64(_portrait(found.image, face_box))
    text = [line.text for line in lines]
    mrz = None
    rows = mrz_read.find_mrz_rows(lines)
    if rows is not None and len(rows) == 2:  # a passport page (TD3) or a TD2 document: its MRZ is on the front
        mrz = _parse_mrz(found.image, rows)
        if not mrz["valid"]:  # read again at full resolution from the bottom of the page straightened to its shape
            page = found if found.aspect == card.ID3_ASPECT else card.as_shape(image, found, card.ID3_ASPECT, config)
            mrz = _front_mrz(page.image, config) or mrz
    return {"card_found": True, "fields": front.read_fields(lines), "text": text, "mrz": mrz,
            "portrait_jpeg_b64": portrait,
            "portrait_box": list(face_box) if face_box else None,
            "card_corners": found.corners.round(1).tolist(), "card_sharpness": sharp, "problems": problems}


def _upright(found: card.FoundCard) -> tuple[card.FoundCard, tuple[int, int, int, int] | None]:
    """The card the right way up, and its portrait's box: a face detector is far surer of an upright face
    (about 90 of 100) than of one upside down (50 to 80), whatever the card's layout."""
    best: tuple[float, card.FoundCard, tuple[int, int, int, int] | None] = (-1.0, found, None)
    for side in (found, _rotated(found)):
        faces = detect_yuface(side.image, min_score=PORTRAIT_MIN_SCORE, side=PORTRAIT_DETECT_SIDE)
        if faces:
            # The surest face: the portrait, not a fainter ghost image of it nor a large pattern taken for a face.
            face = max(faces, key=lambda f: (f.score, f.area))
            if face.score > best[0]:
                best = (face.score, side, face.box)
    return best[1], best[2]


def _legible(lines: list[ocr.TextLine]) -> int:
    """How much of a side reads as a card: captions and dates found."""
    return sum(bool(front.caption_of(line)[0]) + len(dates.find_dates(line.text)) for line in lines)


PORTRAIT_MIN_SCORE = 50.0  # yuface's confidence (0-100); a printed portrait scores about 90 upright
# A portrait is a fifth of a document's width or more: found at 400 px as surely as at 640, in a third of the time.
PORTRAIT_DETECT_SIDE = 400


def _portrait(card_image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The detected face with the margin of a passport photo (head and shoulders), within the card."""
    x, y, w, h = box
    height, width = card_image.shape[:2]
    x0, y0 = max(0, int(x - 0.45 * w)), max(0, int(y - 0.6 * h))
    x1, y1 = min(width, int(x + 1.45 * w)), min(height, int(y + 1.6 * h))
    return card_image[y0:y1, x0:x1]


def _rotated(found: card.FoundCard) -> card.FoundCard:
    return card.FoundCard(image=cv2.rotate(found.image, cv2.ROTATE_180), corners=np.roll(found.corners, 2, axis=0),
                          area_fraction=found.area_fraction, aspect_error=found.aspect_error, aspect=found.aspect)


def _padded(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The box grown by a quarter of its height on every side: the detector's tight crops can cut glyphs."""
    x0, y0, x1, y1 = box
    pad = 0.25 * (y1 - y0)
    h, w = image.shape[:2]
    return image[max(0, int(y0 - pad)):min(h, int(y1 + pad)), max(0, int(x0 - pad)):min(w, int(x1 + pad))]


# The MRZ of a TD1 card sits in the bottom 17.9 mm (ICAO 9303-5); read a little more.
MRZ_BAND_MM = (0.0, CARD_HEIGHT_MM - 22.0, CARD_WIDTH_MM, 22.0)


@guarded("kyc-back")
def read_back(data: bytes | None, config: Config = CONFIG) -> dict[str, Any]:
    """Card back -> the MRZ (fixed lines, fields, which check digits failed) and problems. No back at
    all (``None``: a passport has none) is not a problem here; the decision says whether one was needed."""
    if data is None:
        return {"given": False, "card_found": False, "mrz": None, "problems": []}
    found, problems, _ = _load_card(data, "back", config)
    if found is None:
        return {"card_found": False, "mrz": None, "problems": problems}
    rows, band = None, None
    for image in (found.image, cv2.rotate(found.image, cv2.ROTATE_180)):
        band = card.crop_mm(image, MRZ_BAND_MM)
        rows = mrz_read.find_mrz_rows(ocr.read(band, min_score=config.ocr_min_score))
        if rows is not None:
            break
    if rows is None or band is None:
        problems.append(problem("mrz_not_found", "no machine-readable zone (3 lines of 30 characters) could be read on "
                                                 "the card back: photograph the back, sharp and without glare"))
        return {"card_found": True, "mrz": None, "problems": problems}
    return {"card_found": True, "problems": problems, "mrz": _parse_mrz(band, rows)}


def _parse_mrz(band: np.ndarray, rows: list[tuple[str, tuple[float, float, float, float]]]) -> dict[str, Any]:
    """The MRZ of OCR'd *rows* (in *band*'s pixels): parsed, and read again line by line if it fails a check."""
    raw = [text for text, _ in rows]
    result = mrz_read.parse(raw)
    if not result.valid:  # a second opinion: each line recognised alone, from a padded crop
        second = [mrz_read.clean(ocr.read_line(_padded(band, box))[0]) for _, box in rows]
        retry = mrz_read.parse(second)
        if retry.valid or len(retry.failed_checks) < len(result.failed_checks):
            raw, result = second, retry
            result.corrections.append("read again line by line")
    return {"raw": raw, "lines": result.lines, "valid": result.valid, "failed_checks": result.failed_checks,
            "fields": result.fields, "corrections": result.corrections, "format": result.format,
            "misread_length": result.misread_length}


def _front_mrz(page: np.ndarray, config: Config) -> dict[str, Any] | None:
    """The MRZ at the bottom of a passport page (or TD2 document) straightened to its shape, read at full
    resolution: its zone is the bottom 23.2 mm of 88 (ICAO 9303-4); read a little more."""
    band = page[int(page.shape[0] * 0.66):, :]
    rows = mrz_read.find_mrz_rows(ocr.read(band, min_score=config.ocr_min_score))
    if rows is None or len(rows) != 2:
        return None
    return _parse_mrz(band, rows)
