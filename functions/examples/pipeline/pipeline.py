"""Pipeline: preprocess -> detect -> classify, each its own autoscaled function.

``analyze`` chains them with ``fn.ref(...).remote(...)``: each pending result is handed to the next
call without the orchestrator waiting for it (inside the cluster Serve passes it along). The
"models" are deliberately tiny rules so the example runs anywhere; the composition is the point.
"""

import re

import fn

_NEGATIVE = {"bad", "broken", "late", "refund", "terrible", "angry"}
_POSITIVE = {"good", "great", "thanks", "love", "fast", "excellent"}


@fn.function(cpus=0.25)
def preprocess(text: str) -> list[str]:
    """Lowercase and tokenize."""
    return re.findall(r"[a-z0-9']+", text.lower())


@fn.function(cpus=0.25)
def detect(tokens: list[str]) -> dict[str, list[str]]:
    """Find the sentiment-bearing words."""
    return {"positive": [t for t in tokens if t in _POSITIVE], "negative": [t for t in tokens if t in _NEGATIVE]}


@fn.function(cpus=0.25)
def classify(found: dict[str, list[str]]) -> str:
    score = len(found["positive"]) - len(found["negative"])
    return "positive" if score > 0 else "negative" if score < 0 else "neutral"


@fn.function(cpus=0.25)
def analyze(text: str) -> dict[str, object]:
    tokens = fn.ref("preprocess").remote(text=text)
    found = fn.ref("detect").remote(tokens=tokens)
    label = fn.ref("classify").remote(found=found)
    return {"label": label.result(), "evidence": found.result()}
