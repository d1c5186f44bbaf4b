"""fn's JSON error for the answers HAProxy (the local platform's ingress) makes itself.

A replica that dies mid-request (502), no replica up or free within the queue timeout (503) and no
answer in time (504) are answered by HAProxy, not by fn. These rules make those answers the body
``http.error_response`` gives every other error, ``{"error": {"type", "message", "request_id"}}``,
with ``Retry-After`` where trying again helps, so callers (the SDK included) read one error shape.

The request id is the caller's ``x-request-id``, else one HAProxy makes and forwards as
``x-request-id``: the replica takes it as its own (Serve's direct ingress reads that header), so the id
in an error matches the replica's log lines of the same call. ``ray_compat.harden_haproxy_config``
writes these lines into Serve's HAProxy template.

Not covered (HAProxy 2.8 applies no rule there): a request its HTTP/1 parser refuses before a request
exists (malformed, or headers not sent in time: 400, 408) gets its short HTML page. A replica that dies
on a connection HAProxy reused would get the caller's connection closed without an answer (HAProxy
leaves that retry to the client), so ``ray_compat`` makes the backends close replica connections after
each response (``option http-server-close``): that case is the 502 too, at one new connection per request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .coldstart import ARRIVED_HEADER

REQUEST_ID_VAR = "txn.fn_request_id"
_RID_SLOT = "@@request_id@@"


@dataclass(frozen=True)
class IngressError:
    status: int
    error_type: str  # the ``type`` fn's own errors give the same status (fn._errors' class names)
    message: str
    retry_after_s: int | None = None
    # Answered before the frontend's rules run (so before the request id is read): HAProxy's own id then.
    before_rules: bool = False


INGRESS_ERRORS: tuple[IngressError, ...] = (
    IngressError(400, "BadRequest", "the ingress could not read the request as HTTP (malformed, or headers over "
                 "its size limit)", before_rules=True),
    IngressError(408, "RequestTimeout", "the request did not arrive in full in time; send it again",
                 before_rules=True),
    IngressError(500, "IngressError", "the ingress failed while handling the request"),
    IngressError(502, "Unavailable", "the function's replica stopped before it answered (it crashed, was "
                 "killed or is being replaced); the call may have run: repeat it only if that is safe",
                 retry_after_s=1),
    IngressError(503, "Unavailable", "no replica of the function could take the call (none running yet, "
                 "all busy past the queue timeout, or being replaced); retry shortly", retry_after_s=1),
    IngressError(504, "Timeout", "the function did not answer within the ingress's time limit; the call may "
                 "still be running"),
)


def _quoted(text: str) -> str:
    # A double-quoted HAProxy log-format word: \ " $ are the config parser's, % is log-format's.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("%", "%%") + '"'


def error_rule(error: IngressError) -> str:
    """The ``http-error`` directive that answers *error*'s status with fn's JSON body."""
    request_id = "%[unique-id]" if error.before_rules else f"%[var({REQUEST_ID_VAR})]"
    body = _quoted(json.dumps({"error": {"type": error.error_type, "message": error.message,
                                         "request_id": _RID_SLOT}}))
    body = body.replace(_RID_SLOT, request_id.replace("]", ",json(utf8s)]"))  # escaped for JSON, as HAProxy emits it
    headers = f" hdr x-request-id {request_id}"
    if error.retry_after_s is not None:
        headers += f" hdr retry-after {error.retry_after_s}"
    return f"http-error status {error.status} content-type application/json{headers} lf-string {body}"


# Serve's HAProxy answers a path no route matches with a plain-text 404. fn's catch-all gateway holds "/",
# so that only happens while the platform (re)starts, before the gateway's route is back.
NO_ROUTE_YET = IngressError(503, "Unavailable", "no route answers this path yet: the platform is starting or "
                            "restoring its functions; retry shortly", retry_after_s=1)


def no_route_rule() -> str:
    """The ``http-request return`` for HAProxy's default backend: fn's JSON 503 instead of a text 404."""
    return error_rule(NO_ROUTE_YET).replace(f"http-error status {NO_ROUTE_YET.status}",
                                            f"http-request return status {NO_ROUTE_YET.status}", 1)


def error_rules(indent: str = "    ") -> str:
    """Lines for HAProxy's ``defaults`` section (every frontend and backend inherits them)."""
    lines = ["unique-id-format %[uuid,regsub(-,,g)]"]  # 32 hex digits: a W3C trace id (serving.tracing)
    lines += [error_rule(error) for error in INGRESS_ERRORS]
    return "".join(f"{indent}{line}\n" for line in lines)


def request_id_rules(indent: str = "    ") -> str:
    """Lines for the HTTP frontend, before its other rules: the request id every later answer carries."""
    lines = ["http-request set-header x-request-id %[unique-id] if !{ req.hdr(x-request-id) -m found }",
             f"http-request set-var({REQUEST_ID_VAR}) req.hdr(x-request-id)", arrival_rule()]
    return "".join(f"{indent}{line}\n" for line in lines)


def arrival_rule() -> str:
    """When HAProxy took the request, in ms since the epoch: a cold call's breakdown starts there
    (serving.coldstart). Set, never kept from the caller, so a client cannot shift its own breakdown."""
    return f"http-request set-header {ARRIVED_HEADER} %[date(0,ms)]"
