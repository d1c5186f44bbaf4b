"""Text recognition with RapidOCR (PP-OCR ONNX models that ship inside the ``rapidocr`` wheel).

Why RapidOCR: its detector + recogniser read OCR-B MRZ lines and printed card fields exactly on
simulated phone photos (24 of 24 MRZs, where tesseract read 1 of 24 when it was chosen), it runs on
onnxruntime (no torch) and needs no download. Settings, all from measurements: no angle classifier
(the card is already straightened, and the classifier flips short lines), detection limited to
768 px on the *longer* side (``limit_type="max"``) so a straightened card is scanned at a fixed
cost. The engine is created once per process (a replica's ``setup()`` calls :func:`engine`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

_lock = threading.Lock()       # creating the engine
_run_lock = threading.Lock()   # running it: RapidOCR keeps per-call switches as state, so calls must not interleave
_engine: Any = None


@dataclass(frozen=True)
class TextLine:
    """One detected line of text: its string, the recogniser's confidence and its box (x0, y0, x1, y1)."""

    text: str
    score: float
    box: tuple[float, float, float, float]

    @property
    def cy(self) -> float:
        return (self.box[1] + self.box[3]) / 2

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


def engine(threads: int | None = None) -> Any:
    """The process-wide RapidOCR engine, created on first use (about 1 s)."""
    global _engine
    with _lock:
        if _engine is None:
            from rapidocr import RapidOCR
            params: dict[str, Any] = {"Global.use_cls": False, "Det.limit_type": "max", "Det.limit_side_len": 768,
                                      "Global.log_level": "warning"}
            if threads:
                params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
                params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
            _engine = RapidOCR(params=params)
            logging.getLogger("RapidOCR").setLevel(logging.WARNING)
        return _engine


def read(image: np.ndarray, *, min_score: float = 0.5) -> list[TextLine]:
    """Every text line in *image* (BGR) scored at least *min_score*, top to bottom, left to right."""
    # Pass the stage switches on every call: RapidOCR keeps per-call overrides for later calls.
    ocr_engine = engine()
    with _run_lock:
        result = ocr_engine(image, use_det=True, use_cls=False, use_rec=True)
    if result is None or result.txts is None or result.boxes is None:
        return []
    lines = []
    for text, score, quad in zip(result.txts, result.scores, result.boxes, strict=False):
        if float(score) < min_score or not str(text).strip():
            continue
        pts = np.asarray(quad, dtype=np.float32).reshape(-1, 2)
        box = (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))
        lines.append(TextLine(text=str(text).strip(), score=float(score), box=box))
    return sorted(lines, key=lambda t: (round(t.cy / 8), t.box[0]))


def read_line(image: np.ndarray) -> tuple[str, float]:
    """Recognise *image* as one line of text (no detection): (text, score), ('', 0) when nothing is read."""
    ocr_engine = engine()
    with _run_lock:
        result = ocr_engine(image, use_det=False, use_cls=False, use_rec=True)
    texts = getattr(result, "txts", None)
    if not texts:
        return "", 0.0
    return str(texts[0]).strip(), float(result.scores[0])
