"""Shadow traffic, as user code sees it: ``@fn.comparator`` and ``fn.is_shadow()``.

When an operator copies live calls to a candidate version (``fnctl traffic NAME --shadow 4=20``), the
caller gets only the active version's answer; both answers are recorded and compared. By default the
comparison is exact equality (with numeric differences summarised); a project replaces it with a
comparator, defined in the function's module (or one it imports) so the replica finds it:

    @fn.comparator
    def same_decision(active, candidate) -> bool:
        return active["decision"] == candidate["decision"]

It runs in the active version's replica (never in the control plane), after the caller was answered.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from ._errors import SpecError

Comparator = Callable[[Any, Any], Any]
C = TypeVar("C", bound=Comparator)

_comparators: dict[str | None, Comparator] = {}  # function name (None: every function of the project) -> comparator
shadow_call: contextvars.ContextVar[bool] = contextvars.ContextVar("fn_shadow_call", default=False)


def comparator(func: C | None = None, /, *, function: str | None = None) -> Any:
    """Mark ``func(active_output, candidate_output) -> bool`` as how shadow outputs are compared: truthy means
    they agree. ``@fn.comparator`` applies to every function of the project; ``@fn.comparator(function="x")``
    to function ``x`` only (it wins over the first)."""

    def mark(target: C) -> C:
        if not callable(target):
            raise SpecError(f"@fn.comparator takes a function of two outputs, not a {type(target).__name__}")
        try:
            inspect.signature(target).bind(None, None)
        except TypeError:
            raise SpecError(f"@fn.comparator: {getattr(target, '__name__', target)!r} must accept two arguments "
                            f"(the active version's output and the candidate's)") from None
        except ValueError:  # a builtin without a signature: taken as is
            pass
        _comparators[function] = target
        return target

    return mark(func) if func is not None else mark


def comparator_for(name: str) -> Comparator | None:
    return _comparators.get(name) or _comparators.get(None)


def is_shadow() -> bool:
    """True while this call is a shadow copy: its answer goes to no caller. Skip your own side effects
    (writes, messages, payments) when it is; calls to other functions made from it are shadow calls too."""
    return shadow_call.get()
