"""Configuration of the KYC flow: input limits, image geometry and decision thresholds.

The defaults live here; ``thresholds.json`` beside this file overrides the decision thresholds
with the values tuned by ``python3 functions/auth/bench/kyc.py --tune`` on a *tuning* set of generated cases
(seeds disjoint from the ones the benchmark reports on). The JSON also records how each value was
chosen, so the numbers never travel without their justification. Set ``KYC_THRESHOLDS`` to a
path to use another file (e.g. thresholds calibrated on real, consented data).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

THRESHOLDS_FILE = Path(__file__).with_name("thresholds.json")

# ID-1 card format (ISO/IEC 7810): 85.60 x 53.98 mm.
CARD_WIDTH_MM = 85.60
CARD_HEIGHT_MM = 53.98


@dataclass(frozen=True)
class Config:
    # --- input limits (safety, not accuracy) ---
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000          # refuse before decoding: a 50 MP phone photo is the largest we accept
    min_side: int = 64
    work_max_side: int = 1600             # decoded images are downscaled to this before any work

    # --- card geometry ---
    card_px_per_mm: float = 1000 / CARD_WIDTH_MM   # the straightened card is 1000 px wide
    card_min_area_fraction: float = 0.08           # a card smaller than this share of the photo is "not found"
    card_max_aspect_error: float = 0.35            # |quad aspect / ID-1 aspect - 1| above: not a card (tilt distorts it)

    # --- decision thresholds (overridden by thresholds.json) ---
    face_match_max: float = 0.50        # dlib distance at or below: same person
    face_reject_min: float = 0.62       # at or above: a different person (between the two: review)
    replay_min_similarity: float = 0.93  # aligned-face correlation with the card portrait at or above: replay
    blur_min: float = 60.0              # variance of the Laplacian of the selfie at 512 px below this: too blurry
    brightness_min: float = 50.0        # mean gray level of the selfie below this: too dark
    brightness_max: float = 215.0       # above this: overexposed
    card_blur_min: float = 25.0         # straightened card sharper than this, or OCR may misread
    ocr_min_score: float = 0.5          # OCR lines scored below this are ignored
    name_max_edit_distance: int = 1     # front vs MRZ name: this many character edits still agree (OCR noise)
    # Which thresholds decided (a decision's evidence): the SHA-256 of the file's bytes, or "defaults".
    source_sha256: str = "defaults"

    def thresholds(self) -> dict[str, Any]:
        """The decision thresholds as a plain dict (what a result reports it used)."""
        names = ("face_match_max", "face_reject_min", "replay_min_similarity", "blur_min", "brightness_min",
                 "brightness_max", "card_blur_min", "ocr_min_score", "name_max_edit_distance")
        return {name: getattr(self, name) for name in names}


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Defaults overridden by the ``values`` of a thresholds JSON file (missing file: defaults)."""
    target = Path(path) if path is not None else Path(os.environ.get("KYC_THRESHOLDS", THRESHOLDS_FILE))
    if not target.is_file():
        return Config()
    raw = target.read_bytes()
    body = json.loads(raw)
    values = body.get("values", {})
    known = {f.name: f.type for f in dataclasses.fields(Config) if f.name != "source_sha256"}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{target}: unknown threshold(s) {unknown}; known: {sorted(known)}")
    return dataclasses.replace(Config(), **values, source_sha256=hashlib.sha256(raw).hexdigest())


CONFIG = load_config()
