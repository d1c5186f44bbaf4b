"""How a failed handle call becomes the fn error a caller sees (no cluster: Ray's own exception types)."""

from __future__ import annotations

import fn
from fnplatform.serving.handles import translate_error


def test_a_full_queue_is_503_with_retry_after_naming_max_queued() -> None:
    from ray.serve.exceptions import BackPressureError

    error = translate_error(BackPressureError(num_queued_requests=200, max_queued_requests=200), "embed-text")
    assert isinstance(error, fn.Unavailable) and error.status == 503 and error.retry_after == 1
    assert "embed-text is at capacity" in error.message and "max_queued" in error.message


def test_the_callees_own_fn_error_is_kept_and_anything_else_is_a_remote_error() -> None:
    own = fn.NotFound("no such item", status=404)
    assert translate_error(own, "store") is own
    other = translate_error(KeyError("x"), "store")
    assert isinstance(other, fn.RemoteError) and other.error_type == "KeyError" and "calling store failed" in other.message
