"""Signed webhooks: how a receiver checks that a job's end really came from its fn platform.

The platform signs every webhook body with a secret it shares with the API key that started the job,
and sends the signature in the ``Fn-Signature`` header::

    Fn-Signature: t=1718000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

``v1`` is the hex HMAC-SHA256 of ``f"{t}.".encode() + body`` under the secret. Signing the time with
the body lets a receiver refuse an old, replayed delivery; several ``v1`` entries may appear while a
secret is rotated, and any one matching is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from typing import Any

from ._errors import FnError

SIGNATURE_HEADER = "Fn-Signature"
_EXPECTED = "t=<unix seconds>,v1=<hex HMAC-SHA256>"
_DIGITS = re.compile(r"[0-9]{1,15}")


class WebhookError(FnError, ValueError):
    """A webhook failed verification: no or malformed signature header, an old timestamp, a changed body or
    the wrong secret. Answer such a request with 400 and do not act on it."""


def _digest(body: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Fn-Signature`` header value for *body*, signed at *timestamp* (unix seconds; default now)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_digest(body, secret, t)}"


def _parse(header: str) -> tuple[int, list[str]]:
    """The timestamp and the ``v1`` signatures of a header; other schemes are ignored, as future ones would be."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise WebhookError(f"malformed {SIGNATURE_HEADER} header: {part.strip()[:40]!r} is not key=value; "
                               f"expected {_EXPECTED!r}")
        if key == "t":
            if timestamp is not None or not _DIGITS.fullmatch(value):
                raise WebhookError(f"malformed {SIGNATURE_HEADER} header: expected one t=<unix seconds> "
                                   f"(got t={value[:20]!r}); expected {_EXPECTED!r}")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        missing = "t=" if timestamp is None else "v1="
        raise WebhookError(f"malformed {SIGNATURE_HEADER} header: no {missing} entry; expected {_EXPECTED!r}")
    return timestamp, signatures


def verify_webhook(
    body: bytes | str, header: str | None, secret: str, *, tolerance_s: float = 300, now: float | None = None
) -> dict[str, Any]:
    """Check a webhook's signature and age, then return its JSON body.

    Pass the raw body exactly as received (re-encoding parsed JSON changes the bytes and fails the check),
    the ``Fn-Signature`` header (``None`` when absent) and the webhook secret of the API key that started
    the job. *tolerance_s* (seconds, default 300) bounds the gap between the signature's time and *now*
    (unix seconds, default the clock), so a captured delivery cannot be replayed later.

    Raises ``WebhookError`` when any check fails::

        payload = fn.verify_webhook(request.body, request.headers.get("Fn-Signature"), secret)
    """
    if not header:
        raise WebhookError(f"missing {SIGNATURE_HEADER} header: this request was not signed by fn")
    raw = body.encode() if isinstance(body, str) else body
    timestamp, signatures = _parse(header)
    expected = _digest(raw, secret, timestamp).encode()
    if not any(hmac.compare_digest(expected, candidate.encode()) for candidate in signatures):
        raise WebhookError(f"no signature in the {SIGNATURE_HEADER} header matched: the body was changed after "
                           "signing, or the secret is not the one of the API key that started the job")
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance_s:
        when = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
        raise WebhookError(f"webhook timestamp is {when}, outside the tolerance of {tolerance_s:g} s: "
                           "it may be a replay (or this clock is wrong)")
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise WebhookError(f"the webhook body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise WebhookError(f"the webhook body is JSON but not an object (got {type(payload).__name__})")
    return payload
