"""fn: declare Python functions and models, deploy them as autoscaling endpoints, call them.

Importing ``fn`` never imports Ray: the SDK only needs pydantic and httpx.
"""

from . import flows
from ._artifacts import artifact
from ._client import Pending, Ref, acall, call, map, ref
from ._config import fn_home, load_settings
from ._decorators import function, model
from ._errors import (
    BadRequest,
    ClientError,
    ConfigError,
    Conflict,
    FnError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RemoteError,
    SpecError,
    Timeout,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)
from ._flow import Flow, FlowSpec, StepRef
from ._shadow import comparator, is_shadow
from ._spec import FunctionSpec

__version__ = "0.1.0"

__all__ = [
    "BadRequest",
    "ClientError",
    "ConfigError",
    "Conflict",
    "Flow",
    "FlowSpec",
    "FnError",
    "Forbidden",
    "FunctionSpec",
    "NotFound",
    "PayloadTooLarge",
    "Pending",
    "Ref",
    "RemoteError",
    "SpecError",
    "StepRef",
    "Timeout",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
    "__version__",
    "acall",
    "artifact",
    "call",
    "comparator",
    "flows",
    "fn_home",
    "function",
    "is_shadow",
    "load_settings",
    "map",
    "model",
    "ref",
]
