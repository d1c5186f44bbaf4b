"""The one error hierarchy of fn.

::

    FnError                      base of everything fn raises on purpose
    ├── SpecError (ValueError)   a decorator option or a project is invalid; raised at decoration/package time
    ├── ConfigError              no platform to talk to (no FN_API_URL, no credentials file)
    └── ClientError              a call to the platform failed; carries ``status`` and ``request_id``
        ├── BadRequest           400: the body is not JSON / not what the endpoint takes
        ├── ValidationFailed     422: the arguments do not match the function's signature
        ├── Unauthorized         401: missing or wrong API key
        │   └── Forbidden        403: the key is valid but its role or scope does not allow this
        ├── NotFound             404: no such function, version, key or route
        ├── Conflict             409: the request conflicts with the current state
        ├── PayloadTooLarge      413: the body is over a configured limit
        ├── TooManyRequests      429: over the key's rate limit or a concurrency cap; ``retry_after`` says when
        ├── RemoteError          500: the user's function raised; ``error_type`` names the exception
        ├── Unavailable          502/503: the platform or a dependency (S3, Ray) is unreachable
        └── Timeout              504: the function ran past its ``timeout_s``, or the client gave up

``status_error(status, ...)`` maps an HTTP status to its class: the one place that mapping lives.
"""

from __future__ import annotations

from typing import Any


class FnError(Exception):
    """Base class of every error fn raises on purpose."""


class SpecError(FnError, ValueError):
    """An invalid decorator option, function spec or project."""


class ConfigError(FnError):
    """fn cannot find the platform or its credentials."""


class ClientError(FnError):
    """A call to the platform failed."""

    status: int = 0

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        error_type: str | None = None,
        detail: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.request_id = request_id
        self.error_type = error_type
        self.detail = detail
        self.retry_after = retry_after  # seconds; sent as the Retry-After header

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (Serve handles pickle them): keep every field.
        return (_rebuild, (type(self), self.message, self.status, self.request_id, self.error_type, self.detail,
                           self.retry_after))

    def __str__(self) -> str:
        text = self.message
        if self.error_type:
            text = f"{self.error_type}: {text}"
        if self.request_id:
            text = f"{text} (request id {self.request_id})"
        return text


def _rebuild(cls: type[ClientError], message: str, status: int, request_id: str | None, error_type: str | None,
             detail: Any, retry_after: float | None = None) -> ClientError:
    return cls(message, status=status, request_id=request_id, error_type=error_type, detail=detail,
               retry_after=retry_after)


class BadRequest(ClientError):
    status = 400


class ValidationFailed(ClientError):
    status = 422


class Unauthorized(ClientError):
    status = 401


class Forbidden(Unauthorized):
    """A valid key whose role or scope does not allow the request (an ``Unauthorized`` too, as before)."""

    status = 403


class NotFound(ClientError):
    status = 404


class Conflict(ClientError):
    status = 409


class PayloadTooLarge(ClientError):
    status = 413


class TooManyRequests(ClientError):
    status = 429


class RemoteError(ClientError):
    status = 500


class Unavailable(ClientError):
    status = 503


class Timeout(ClientError):
    status = 504


_BY_STATUS: dict[int, type[ClientError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: TooManyRequests,
    500: RemoteError,
    502: Unavailable,
    503: Unavailable,
    504: Timeout,
}


def status_error(
    status: int,
    message: str,
    *,
    request_id: str | None = None,
    error_type: str | None = None,
    detail: Any = None,
    retry_after: float | None = None,
) -> ClientError:
    """The error for an HTTP *status*, with the platform's message."""
    cls = _BY_STATUS.get(status, RemoteError if status >= 500 else BadRequest)
    return cls(message, status=status, request_id=request_id, error_type=error_type, detail=detail,
               retry_after=retry_after)
