"""fn: declare Python functions and models, deploy them as autoscaling endpoints, call them.

Importing ``fn`` never imports Ray: the SDK only needs pydantic and httpx.
"""

from . import flows
from ._artifacts import artifact
from ._client import Pending, Ref, acall, call, map, ref, spawn, spawn_map, stream
from ._config import fn_home, load_settings
from ._decorators import asgi, function, model
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
from ._jobs import Job
from ._schedule import Cron, Period
from ._shadow import comparator, is_shadow
from ._spec import FunctionSpec
from ._state import Dict, Queue
from ._stream import Stream
from ._webhooks import WebhookError, verify_webhook

__version__ = "0.1.0"

__all__ = [
    "BadRequest",
    "ClientError",
    "ConfigError",
    "Conflict",
    "Cron",
    "Dict",
    "Flow",
    "FlowSpec",
    "FnError",
    "Forbidden",
    "FunctionSpec",
    "Job",
    "NotFound",
    "PayloadTooLarge",
    "Pending",
    "Period",
    "Queue",
    "Ref",
    "RemoteError",
    "SpecError",
    "StepRef",
    "Stream",
    "Timeout",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
    "WebhookError",
    "__version__",
    "acall",
    "artifact",
    "asgi",
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
    "spawn",
    "spawn_map",
    "stream",
    "verify_webhook",
]
