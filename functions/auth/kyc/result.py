"""Step results: plain JSON-serialisable dicts with a list of structured problems, never exceptions.

A flow step that raises is retried and then fails the whole run; a bad photo is not a reason to
fail a run, it is a reason for the decision. So every step returns ``{"ok": bool, "problems":
[{"code", "message"}], ...}`` and :func:`guarded` turns an unexpected exception into an
``internal_error`` problem. :func:`plain` strips numpy types (JSON cannot encode them).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, ParamSpec

import numpy as np

P = ParamSpec("P")
log = logging.getLogger("kyc")


def problem(code: str, message: str) -> dict[str, str]:
    """One problem: a stable code for machines and a sentence for people."""
    return {"code": code, "message": message}


def plain(value: Any) -> Any:
    """*value* with numpy scalars/arrays turned into Python numbers/lists, recursively."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float):
        return round(value, 4)
    return value


def guarded(step: str) -> Callable[[Callable[P, dict[str, Any]]], Callable[P, dict[str, Any]]]:
    """Decorator: the step's result with ``ok``, ``problems`` and ``elapsed_ms`` filled in; exceptions become problems."""
    def decorate(func: Callable[P, dict[str, Any]]) -> Callable[P, dict[str, Any]]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
            start = time.perf_counter()
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                log.exception("%s failed", step)
                result = {"problems": [problem("internal_error", f"{step} failed: {type(exc).__name__}: {exc}")]}
            result.setdefault("problems", [])
            result["ok"] = not result["problems"]
            result["step"] = step
            result["elapsed_ms"] = (time.perf_counter() - start) * 1000
            return plain(result)  # type: ignore[no-any-return]
        return wrapper
    return decorate
