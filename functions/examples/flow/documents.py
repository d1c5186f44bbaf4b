"""A flow whose three inputs arrive in separate requests: a document's front, its back and a selfie.

Steps start as soon as their inputs exist: ``measure-front`` and ``measure-back`` run in parallel
as their uploads land, ``compare`` waits for the selfie and the front's result, and ``decide``
combines all three. The steps are stand-ins (sizes and digests, a short sleep for a model); the
identity-verification flow in functions/auth does the real vision work with the same shape.
"""

import hashlib
import time

import fn


@fn.function(cpus=0.25)
def measure_front(front: bytes) -> dict[str, object]:
    return {"bytes": len(front), "digest": hashlib.sha256(front).hexdigest()[:12]}


@fn.function(cpus=0.25)
def measure_back(back: bytes) -> dict[str, object]:
    return {"bytes": len(back), "digest": hashlib.sha256(back).hexdigest()[:12]}


@fn.function(cpus=0.25)
def compare(selfie: bytes, measure_front: dict[str, object]) -> dict[str, object]:
    time.sleep(1.5)  # where a face model would run
    digest = hashlib.sha256(selfie).hexdigest()[:12]
    return {"selfie_digest": digest, "same_as_front": digest == measure_front["digest"]}


@fn.function(cpus=0.25)
def decide(measure_front: dict[str, object], measure_back: dict[str, object], compare: dict[str, object]) -> dict[str, object]:
    reasons = []
    if compare["same_as_front"]:
        reasons.append("selfie is a copy of the front")
    if measure_front["digest"] == measure_back["digest"]:
        reasons.append("front and back are the same picture")
    return {"decision": "review" if reasons else "approve", "reasons": reasons}


flow = fn.Flow("documents", inputs=["front", "back", "selfie"])
front = flow.step("measure-front", inputs=["front"])
back = flow.step("measure-back", inputs=["back"])
face = flow.step("compare", inputs=["selfie", front])
flow.output("decide", inputs=[front, back, face])
