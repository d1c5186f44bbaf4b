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
from ._state import MAX_DICT_KEYS, MAX_QUEUE_ITEMS, StateBackend
from ._state import MAX_VALUE_BYTES as MAX_STATE_VALUE_BYTES
from ._state import MAX_WAIT_S as MAX_STATE_WAIT_S
from ._state import check_key as check_state_key
from ._state import check_name as check_state_name
from ._state import check_value as check_state_value
from ._state import decode as decode_state
from ._state import encode as encode_state
from ._state import install as install_state
from ._stream import StreamSource
from ._transport import Transport
from ._transport import install as install_transport
from ._webhooks import sign as sign_webhook

__all__ = [
    "CREDENTIALS_FILE",
    "ENV_NAME_PATTERN",
    "MAX_DICT_KEYS",
    "MAX_QUEUE_ITEMS",
    "MAX_STATE_VALUE_BYTES",
    "MAX_STATE_WAIT_S",
    "SECRET_NAME_PATTERN",
    "Settings",
    "StateBackend",
    "StepSpec",
    "StreamSource",
    "Transport",
    "check_callback_url",
    "check_state_key",
    "check_state_name",
    "check_state_value",
    "comparator_for",
    "declared_flows",
    "declared_path",
    "decode_state",
    "describe_schedule",
    "encode_state",
    "function_url",
    "install_artifacts",
    "install_state",
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
