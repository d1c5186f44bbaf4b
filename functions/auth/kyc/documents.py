"""Steps 1 and 2: read the card's front (fields + portrait) and back (TD1 MRZ).

Both start the same way: decode the upload safely, find and straighten the card. The front is
then OCR'd whole and its fields found by label; the portrait is cut from the issuer's portrait
box. The back is OCR'd on its lower part, where TD1 puts the MRZ; if no MRZ is there the card
may be upside down, so the straightened card is turned 180 degrees and read again.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from . import card, front, mrz_read, ocr
from .config import CARD_HEIGHT_MM, CARD_WIDTH_MM, CONFIG, PORTRAIT_BOX_MM, Config
from .imaging import BadImage, decode, encode_jpeg_b64
from .result import guarded, problem

FIELDS = ("surname", "given_names", "birth_date", "document_number", "expiry_date")


def _load_card(data: bytes | None, side: str, config: Config) -> tuple[card.FoundCard | None, list[dict[str, str]]]:
    try:
        image = decode(data, what=f"card {side}", config=config)
    except BadImage as exc:
        return None, [problem(f"{side}_image_{exc.code}", exc.message)]
    found = card.find_card(image, config)
    if found is None:
        return None, [problem(f"{side}_card_not_found", f"no ID card was found in the {side} photo: photograph the whole "
                                                          f"card flat, on a darker background, filling most of the frame")]
    return found, []


@guarded("kyc-front")
def read_front(data: bytes | None, config: Config = CONFIG) -> dict[str, Any]:
    """Card front -> printed fields, the portrait (JPEG, base64) and problems."""
    found, problems = _load_card(data, "front", config)
    if found is None:
        return {"card_found": False, "fields": {}, "portrait_jpeg_b64": None, "problems": problems}
    lines = ocr.read(found.image, min_score=config.ocr_min_score)
    fields = front.read_fields(lines)
    if sum(not fields.get(name) for name in FIELDS) >= 3:  # most labels unread: maybe the card is upside down
        turned = _rotated(found)
        turned_lines = ocr.read(turned.image, min_score=config.ocr_min_score)
        turned_fields = front.read_fields(turned_lines)
        if sum(bool(turned_fields.get(n)) for n in FIELDS) > sum(bool(fields.get(n)) for n in FIELDS):
            found, lines, fields = turned, turned_lines, turned_fields
    missing = [name for name in FIELDS if not fields.get(name)]
    if missing:
        problems.append(problem("front_fields_unreadable", f"could not read {', '.join(missing)} on the card front"))
    sharp = card.sharpness(found.image)
    if sharp < config.card_blur_min:
        problems.append(problem("front_blurry", f"the card front photo is blurred "
                                                f"(sharpness {sharp:.0f} < {config.card_blur_min:.0f})"))
    portrait = _portrait(found.image)
    return {"card_found": True, "fields": fields, "portrait_jpeg_b64": encode_jpeg_b64(portrait),
            "card_corners": found.corners.round(1).tolist(), "card_sharpness": sharp,
            "text": [line.text for line in lines], "problems": problems}


def _portrait(card_image: np.ndarray) -> np.ndarray:
    """The portrait box with a 1.5 mm margin (straightening is never exact)."""
    x, y, w, h = PORTRAIT_BOX_MM
    return card.crop_mm(card_image, (max(0.0, x - 1.5), max(0.0, y - 1.5), w + 3, h + 3))


def _rotated(found: card.FoundCard) -> card.FoundCard:
    return card.FoundCard(image=cv2.rotate(found.image, cv2.ROTATE_180), corners=np.roll(found.corners, 2, axis=0),
                          area_fraction=found.area_fraction, aspect_error=found.aspect_error)


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
    """Card back -> the MRZ (fixed lines, fields, which check digits failed) and problems."""
    found, problems = _load_card(data, "back", config)
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
    raw = [text for text, _ in rows]
    result = mrz_read.parse(raw)
    if not result.valid:  # a second opinion: each line recognised alone, from a padded crop
        second = [mrz_read.clean(ocr.read_line(_padded(band, box))[0]) for _, box in rows]
        retry = mrz_read.parse(second)
        if retry.valid or len(retry.failed_checks) < len(result.failed_checks):
            raw, result = second, retry
            result.corrections.append("read again line by line")
    return {"card_found": True, "problems": problems,
            "mrz": {"raw": raw, "lines": result.lines, "valid": result.valid, "failed_checks": result.failed_checks,
                    "fields": result.fields, "corrections": result.corrections}}
