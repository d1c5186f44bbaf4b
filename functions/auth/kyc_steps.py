"""The identity-verification flow ``kyc``: five deployable steps over the pure logic in ``kyc/``.

    front  --> kyc-front (CPU: find + straighten the card or passport page, OCR it, find the portrait) --+
    back   --> kyc-back  (CPU: find + straighten the card, read and check the TD1 MRZ; optional) -------+--> kyc-decide
    selfie --> kyc-face  (GPU pool: detect + embed the selfie's and the portrait's faces) -----+    approve/review/reject
           \\-> kyc-quality (CPU: blur, brightness, face count, replay of the portrait) --------+

Every step is internal (``internal=True``): only the flow calls it, so no one can send a step forged
inputs or forged results of earlier steps over HTTP; the flow is the one entry point (``/flows/kyc``).
Every step returns a JSON dict with ``problems`` instead of raising, so a bad photo gives the
case a reason rather than failing the run. The heavy imports (OpenCV, onnxruntime, dlib) happen
inside the functions and ``setup()``, never at import time: packaging imports this module to
discover the declarations, on a machine that may not have those packages.
"""

from typing import Any

import fn

# onnxruntime, OpenCV and dlib would each take every core; the platform caps threads per replica
# to its cpus, so give the OCR steps a whole core. A replica works on one image at a time (the
# models are serialised inside), so autoscaling aims at one request in flight per replica.
OCR_OPTIONS: dict[str, Any] = {"pool": "cpu", "cpus": 1, "memory_mb": 1024, "min_replicas": 0, "max_replicas": 4,
                               "target_concurrency": 1, "max_concurrency": 8, "timeout_s": 120, "idle_timeout_s": 60}


@fn.model(name="kyc-front", internal=True, **OCR_OPTIONS)
class KycFront:
    """Card front photo -> printed fields, the portrait (JPEG base64) and problems."""

    def setup(self) -> None:
        from kyc.ocr import engine
        engine()  # load the OCR models once per replica (about 1 s), not on the first request

    def __call__(self, front: bytes) -> dict[str, Any]:
        from kyc.documents import read_front
        return read_front(front)


@fn.model(name="kyc-back", internal=True, **OCR_OPTIONS)
class KycBack:
    """Card back photo -> the MRZ's lines, fields and check-digit results, and problems."""

    def setup(self) -> None:
        from kyc.ocr import engine
        engine()

    def __call__(self, back: bytes | None) -> dict[str, Any]:
        from kyc.documents import read_back  # None: no back was given (a passport has none)
        return read_back(back)


@fn.model(name="kyc-face", pool="gpu", gpus=0.25, cpus=1, memory_mb=1024, min_replicas=0, max_replicas=2,
          target_concurrency=1, max_concurrency=8, timeout_s=120, idle_timeout_s=60, internal=True)
class KycFace:
    """Selfie vs card portrait: face detection (yuface, dlib HOG fallback) and dlib ResNet embeddings.

    dlib-bin's wheels are CPU builds: on the GPU pool this runs on the node's CPU (about 150 ms a
    face); a CUDA build of dlib, or an ONNX face model on onnxruntime-gpu, would use the GPU.
    """

    def setup(self) -> None:
        from kyc.face import FaceModels
        self.models = FaceModels.load()

    def __call__(self, selfie: bytes, kyc_front: dict[str, Any]) -> dict[str, Any]:
        from kyc.selfie import compare_faces
        return compare_faces(self.models, selfie, kyc_front)


@fn.model(name="kyc-quality", pool="cpu", cpus=0.5, memory_mb=512, min_replicas=0, max_replicas=4,
          target_concurrency=1, max_concurrency=8, timeout_s=60, idle_timeout_s=60, internal=True)
class KycQuality:
    """Selfie quality and liveness-lite: blur, brightness, face count, replay of the card portrait."""

    def setup(self) -> None:
        from kyc.face import FaceModels
        self.models = FaceModels.load(encoder=False)  # landmarks for alignment only

    def __call__(self, selfie: bytes, kyc_front: dict[str, Any]) -> dict[str, Any]:
        from kyc.selfie import assess_quality
        return assess_quality(self.models, selfie, kyc_front)


@fn.function(name="kyc-decide", pool="cpu", cpus=0.25, min_replicas=0, max_replicas=4, timeout_s=30, internal=True)
def kyc_decide(kyc_front: dict[str, Any], kyc_back: dict[str, Any], kyc_face: dict[str, Any],
               kyc_quality: dict[str, Any]) -> dict[str, Any]:
    """approve / review / reject with every reason, the document's data and the face distance."""
    from kyc.decide import decide
    return decide(kyc_front, kyc_back, kyc_face, kyc_quality)


@fn.comparator(function="kyc-decide")
def same_decision(active: dict[str, Any], candidate: dict[str, Any]) -> bool:
    """Shadow traffic on the decision (fnctl traffic kyc-decide --shadow N=100): two versions agree when they
    decide the same. Their evidence (thresholds_sha256, distances) may differ: the report sums those up."""
    return bool(active.get("decision") == candidate.get("decision"))


# A passport's data page (the front) carries its MRZ: its run closes its inputs without a back.
flow = fn.Flow("kyc", inputs=["front", "back", "selfie"], optional=["back"])
front = flow.step("kyc-front", inputs=["front"])
back = flow.step("kyc-back", inputs=["back"])
face = flow.step("kyc-face", inputs=["selfie", front])
quality = flow.step("kyc-quality", inputs=["selfie", front])
flow.output("kyc-decide", inputs=[front, back, face, quality])
