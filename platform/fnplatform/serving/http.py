"""HTTP for replicas: request bodies -> keyword arguments, results and errors -> responses."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import pydantic_core
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response

from fn import BadRequest, ClientError, PayloadTooLarge

from .edge import declared_over, limited

MAX_BODY_BYTES = 64 * 1024 * 1024
_JSON_TYPES = ("application/json", "application/x-www-form-urlencoded", "text/plain", "")


async def read_arguments(request: Request, bytes_params: list[str], limit: int | None = None) -> dict[str, Any]:
    """The call's keyword arguments from a JSON body, a raw body, a multipart form or the query string.

    A non-JSON body goes to the function's one ``bytes`` parameter when *bytes_params* names exactly one.
    At most *limit* bytes are read, whatever the body declares (multipart parts and all)."""
    if request.method == "GET":
        return dict(request.query_params)
    limit = MAX_BODY_BYTES if limit is None else limit
    declared_over(request.headers, limit)
    request = Request(request.scope, limited(request.receive, limit))
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        arguments: dict[str, Any] = {}
        async with read_form(request, max_files=100, max_fields=1000) as form:
            for key, value in form.multi_items():
                arguments[key] = await value.read() if isinstance(value, UploadFile) else value
        return arguments
    body = await read_body(request)
    raw_target = bytes_params[0] if len(bytes_params) == 1 else None
    if content_type not in _JSON_TYPES:
        if raw_target is None:
            raise BadRequest(f"a {content_type} body needs a function with exactly one bytes parameter; "
                             f"send JSON (application/json) mapping parameter names to values", status=400)
        return {raw_target: body}
    if not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except RecursionError:
        raise BadRequest("the JSON body is nested too deeply", status=400) from None
    except ValueError as exc:
        if raw_target is not None:
            return {raw_target: body}
        raise BadRequest(f"the body is not valid JSON ({exc}); send a JSON object such as {{\"a\": 1}}", status=400) from None
    if not isinstance(parsed, dict):
        raise BadRequest(f"the body must be a JSON object mapping parameter names to values, not {type(parsed).__name__}",
                         status=400)
    return parsed


@asynccontextmanager
async def read_form(request: Request, *, max_files: int, max_fields: int) -> AsyncIterator[FormData]:
    """A multipart form (its reads limited by the request's receive), closing the uploads' temporary files after."""
    try:
        form = await request.form(max_files=max_files, max_fields=max_fields)
    except (MultiPartException, HTTPException) as exc:
        reason = exc.message if isinstance(exc, MultiPartException) else exc.detail
        raise BadRequest(f"the multipart body is not valid: {reason} (at most {max_files} files and {max_fields} "
                         f"fields, each field at most 1 MiB)", status=400) from None
    try:
        yield form
    finally:
        await form.close()


async def read_body(request: Request, limit: int | None = None) -> bytes:
    """The whole body, refused as soon as more than *limit* bytes arrive (a missing or false Content-Length included)."""
    limit = MAX_BODY_BYTES if limit is None else limit
    declared_over(request.headers, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit:,} bytes", status=413,
                                  detail={"limit_bytes": limit})
        chunks.append(chunk)
    return b"".join(chunks)


def forwarded_scope(request: Request, request_id: str) -> dict[str, Any]:
    """The picklable part of an HTTP request's ASGI scope, for a replica to rebuild the request (see replica.http)."""
    headers = [(k, v) for k, v in request.scope["headers"] if k != b"x-request-id"] + [(b"x-request-id", request_id.encode())]
    return {"type": "http", "http_version": "1.1", "scheme": "http", "method": request.method,
            "path": request.url.path, "raw_path": request.url.path.encode(), "root_path": "",
            "query_string": request.scope.get("query_string", b""), "headers": headers, "client": None, "server": None}


def replay_receive(body: bytes, then: Callable[[], Awaitable[MutableMapping[str, Any]]] | None = None) -> Any:
    """An ASGI receive that gives *body* whole, once; then the client's own next message (*then*: its
    disconnect, when it goes) or, with no client behind it, a disconnect."""
    sent = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if sent:
            return await then() if then is not None else {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def rebuild_request(scope: dict[str, Any], body: bytes) -> Request:
    return Request(scope, replay_receive(body))


def result_response(result: Any, request_id: str) -> Response:
    headers = {"x-request-id": request_id}
    if isinstance(result, bytes | bytearray):
        return Response(bytes(result), media_type="application/octet-stream", headers=headers)
    if isinstance(result, Response):
        return result
    try:
        body = pydantic_core.to_json(result)
    except pydantic_core.PydanticSerializationError as exc:
        return error_response(500, "ResultNotSerializable",
                              f"the function returned a {type(result).__name__} that cannot be JSON-encoded: {exc}",
                              request_id)
    return Response(body, media_type="application/json", headers=headers)


def error_response(status: int, error_type: str, message: str, request_id: str, detail: Any = None,
                   retry_after: float | None = None) -> Response:
    error: dict[str, Any] = {"type": error_type, "message": message, "request_id": request_id}
    if detail is not None:
        error["detail"] = detail
    headers = {"x-request-id": request_id}
    if retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
    return Response(json.dumps({"error": error}), status_code=status, media_type="application/json", headers=headers)


def not_found_response(path: str, request_id: str) -> Response:
    """The 404 of a path that names no function; an internal function's path gets it word for word, so HTTP
    cannot tell an internal function from none."""
    message = f"no function is deployed at {path!r}" if path.strip("/") else "no function named; POST to /<function>"
    return error_response(404, "NotFound", f"{message}; list functions with 'fnctl ls'", request_id)


async def answered(request_id: str, work: Awaitable[Response],
                   known: Callable[[BaseException], ClientError | None] = lambda _exc: None) -> Response:
    """A gateway's answer to one request: *work*'s response; an fn error as its JSON error; an exception *known* turns
    into an fn error (a database outage: 503) as that; anything else as a 500 naming its type, never a traceback."""
    try:
        return await work
    except ClientError as exc:
        return client_error_response(exc, request_id)
    except Exception as exc:  # noqa: BLE001 - every failure answers: the type and message, not a traceback
        mapped = known(exc)
        if mapped is not None:
            return client_error_response(mapped, request_id)
        return error_response(500, type(exc).__name__, str(exc), request_id)


def client_error_response(exc: ClientError, request_id: str) -> Response:
    return error_response(exc.status, exc.error_type or type(exc).__name__, exc.message, request_id, exc.detail,
                          exc.retry_after)
