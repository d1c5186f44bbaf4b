"""The SDK internals that the platform (``fnplatform``) and the CLI (``fnctl``) may use, and nothing else.

Those two import ``fn`` (the public API) and this module only; ``tests/unit/test_imports.py``
checks it. A name moves in here when the platform needs it, so what the SDK may change freely is
everything not listed in ``__all__``.
"""

from ._artifacts import declared_path
from ._artifacts import install as install_artifacts
from ._client import function_url, raise_for_response, shared_client
from ._config import CREDENTIALS_FILE, Settings
from ._decorators import registered
from ._errors import status_error
from ._flow import StepSpec, declared_flows
from ._retry import send as send_with_retries
from ._schedule import describe as describe_schedule
from ._schedule import schedule_from_json
from ._shadow import comparator_for, shadow_call
from ._spec import ENV_NAME_PATTERN, SECRET_NAME_PATTERN, check_callback_url
from ._stream import StreamSource
from ._transport import Transport
from ._transport import install as install_transport
from ._webhooks import sign as sign_webhook

__all__ = [
    "CREDENTIALS_FILE",
    "ENV_NAME_PATTERN",
    "SECRET_NAME_PATTERN",
    "Settings",
    "StepSpec",
    "StreamSource",
    "Transport",
    "check_callback_url",
    "comparator_for",
    "declared_flows",
    "declared_path",
    "describe_schedule",
    "function_url",
    "install_artifacts",
    "install_transport",
    "raise_for_response",
    "registered",
    "schedule_from_json",
    "send_with_retries",
    "shadow_call",
    "shared_client",
    "sign_webhook",
    "status_error",
]
