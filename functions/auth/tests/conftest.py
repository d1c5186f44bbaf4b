"""Fixtures for the KYC flow's tests: functions/auth on sys.path, the step objects set up once per module.

No Ray and no platform: the steps of ``functions/auth/kyc_steps.py`` are called as plain Python.
Threads are capped at one (OpenCV, onnxruntime), so the suite stays gentle on a shared machine.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

_INSTALL = ("apt-get install -y fonts-ocr-b && pip install -r functions/auth/requirements.txt "
            "-r functions/auth/requirements-test.txt")
# Without its models the project's tests are skipped with the install command (scripts/test installs them).
_MISSING = [m for m in ("cv2", "rapidocr", "onnxruntime", "mrz", "yuface", "dlib", "face_recognition_models", "skimage",
                        "matplotlib") if importlib.util.find_spec(m) is None]
if not any(Path(p).is_file() for p in ("/usr/share/fonts/opentype/ocr-b/OCRB.otf", os.environ.get("KYC_OCRB_FONT", ""))):
    _MISSING.append("the OCR-B font")
if _MISSING:
    pytest.skip(f"functions/auth/tests need {', '.join(_MISSING)}: {_INSTALL}", allow_module_level=True)

Run = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def steps() -> dict[str, Any]:
    """The five steps, model classes instantiated and set up once (as a replica would)."""
    import cv2
    import kyc_steps
    from kyc import ocr
    cv2.setNumThreads(1)
    ocr.engine(threads=1)
    out: dict[str, Any] = {"decide": kyc_steps.kyc_decide}
    for name, cls in (("front", kyc_steps.KycFront), ("back", kyc_steps.KycBack), ("face", kyc_steps.KycFace),
                      ("quality", kyc_steps.KycQuality)):
        out[name] = cls()
        out[name].setup()
    return out


@pytest.fixture(scope="module")
def run_flow(steps: dict[str, Any]) -> Run:
    """Run the flow's steps in dependency order on (front, back, selfie) bytes; returns every step's result."""
    def run(front: bytes, back: bytes | None, selfie: bytes) -> dict[str, Any]:
        f = steps["front"](front)
        b = steps["back"](back)
        face = steps["face"](selfie, f)
        quality = steps["quality"](selfie, f)
        return {"front": f, "back": b, "face": face, "quality": quality, "decision": steps["decide"](f, b, face, quality)}
    return run
