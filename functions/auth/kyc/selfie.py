"""Steps 3 and 4: compare the selfie's face with the card portrait; judge the selfie's quality and liveness-lite.

Face (step 3): the largest face in the selfie and in the portrait are embedded with dlib's ResNet
and their Euclidean distance reported; the decision compares it with the thresholds.

Quality (step 4): sharpness (variance of the Laplacian at 512 px), brightness (mean grey),
how many faces (exactly one is wanted) and replay, i.e. a selfie that is a copy of the card's
printed portrait (:func:`face.replay_similarity`). This is "liveness-lite": it catches a copy of
the portrait, not a mask, a screen showing a video or a printed photo of someone else; real
liveness needs an active challenge or a trained presentation-attack model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import card
from .config import CONFIG, Config
from .face import Face, FaceModels, distance, replay_similarity
from .imaging import BadImage, decode, decode_b64, gray
from .result import guarded, problem


def _selfie(data: bytes | None, config: Config) -> tuple[np.ndarray | None, list[dict[str, str]]]:
    try:
        return decode(data, what="selfie", config=config), []
    except BadImage as exc:
        return None, [problem(f"selfie_image_{exc.code}", exc.message)]


def _portrait(front_result: dict[str, Any] | None, config: Config) -> tuple[np.ndarray | None, list[dict[str, str]]]:
    encoded = (front_result or {}).get("portrait_jpeg_b64")
    if not isinstance(encoded, str) or not encoded:
        return None, [problem("portrait_missing", "there is no card portrait to compare with (the card front was not read)")]
    try:
        return decode_b64(encoded, what="card portrait", config=config), []
    except BadImage as exc:
        return None, [problem(f"portrait_image_{exc.code}", exc.message)]


def _count_problems(faces: list[Face], what: str) -> list[dict[str, str]]:
    if not faces:
        return [problem(f"no_face_{what}", f"no face was found in the {what}")]
    return []


@guarded("kyc-face")
def compare_faces(models: FaceModels, selfie: bytes | None, front_result: dict[str, Any] | None,
                  config: Config = CONFIG) -> dict[str, Any]:
    """Embed the largest selfie face and the portrait face; report their distance (None when either is missing)."""
    image, problems = _selfie(selfie, config)
    portrait, more = _portrait(front_result, config)
    problems += more
    selfie_faces = models.detect(image) if image is not None else []
    portrait_faces = models.detect(portrait) if portrait is not None else []
    if image is not None:
        problems += _count_problems(selfie_faces, "selfie")
    if portrait is not None:
        problems += _count_problems(portrait_faces, "portrait")
    result: dict[str, Any] = {"selfie_faces": len(selfie_faces), "portrait_faces": len(portrait_faces), "distance": None}
    if image is not None and portrait is not None and selfie_faces and portrait_faces:
        result["distance"] = distance(models.embed(image, selfie_faces[0]), models.embed(portrait, portrait_faces[0]))
        result["detectors"] = [selfie_faces[0].detector, portrait_faces[0].detector]
    result["problems"] = problems
    return result


@guarded("kyc-quality")
def assess_quality(models: FaceModels, selfie: bytes | None, front_result: dict[str, Any] | None,
                   config: Config = CONFIG) -> dict[str, Any]:
    """Sharpness, brightness, face count and replay similarity of the selfie, with problems for each failure."""
    image, problems = _selfie(selfie, config)
    if image is None:
        return {"problems": problems}
    sharp = card.sharpness(image)
    brightness = float(gray(image).mean())
    faces = models.detect(image)
    if sharp < config.blur_min:
        problems.append(problem("selfie_blurry", f"the selfie is blurred (sharpness {sharp:.0f} < {config.blur_min:.0f})"))
    if brightness < config.brightness_min:
        problems.append(problem("selfie_dark", f"the selfie is too dark "
                                               f"(mean level {brightness:.0f} < {config.brightness_min:.0f})"))
    if brightness > config.brightness_max:
        problems.append(problem("selfie_overexposed", f"the selfie is overexposed (mean level {brightness:.0f} > "
                                                      f"{config.brightness_max:.0f})"))
    if not faces:
        problems.append(problem("no_face_selfie", "no face was found in the selfie"))
    elif len(faces) > 1:
        problems.append(problem("multiple_faces_selfie", f"{len(faces)} faces were found in the selfie; exactly one person "
                                                         f"must be in the picture"))
    result: dict[str, Any] = {"sharpness": sharp, "brightness": brightness, "faces": len(faces), "replay_similarity": None}
    portrait, _ = _portrait(front_result, config)  # a missing or bad portrait is the face step's problem to report
    portrait_faces = models.detect(portrait) if portrait is not None else []
    if faces and portrait_faces and portrait is not None:
        similarity = replay_similarity(models.chip(image, faces[0]), models.chip(portrait, portrait_faces[0]))
        result["replay_similarity"] = similarity
        if similarity >= config.replay_min_similarity:
            problems.append(problem("replay", f"the selfie is a copy of the card portrait (similarity {similarity:.2f} "
                                              f">= {config.replay_min_similarity:.2f}), not a new photo"))
    result["problems"] = problems
    return result
