"""``/v1/secrets``: create, replace, list and remove secrets. No answer ever carries a value.

A body is read only after the key check (no body parameter: FastAPI reads those before the
dependencies run), and only up to ``MAX_BODY_BYTES`` actually received.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from fn import BadRequest, ValidationFailed
from fn._platform import ENV_NAME_PATTERN, SECRET_NAME_PATTERN
from fnplatform.serving.http import read_body

from .plane import ControlPlane

MAX_KEYS = 100
MAX_VALUE_BYTES = 64 * 1024
MAX_SECRET_BYTES = 256 * 1024  # all values together: they become one process's environment
MAX_BODY_BYTES = 2 * 1024 * 1024  # JSON escapes make a body up to 6 times its values


class SecretBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    values: dict[str, str]


def check_name(name: str) -> str:
    if not re.fullmatch(SECRET_NAME_PATTERN, name):
        raise BadRequest(f"secret name {name[:80]!r} is invalid: use lowercase letters, digits and '-', starting with a "
                         f"letter, at most 63 characters, e.g. 'openai'", status=400)
    return name


def check_values(values: dict[str, str]) -> dict[str, str]:
    """The edge's rules for a secret's values; errors name the key, never quote a value."""
    if not values:
        raise ValidationFailed("values: give at least one KEY=VALUE", status=422)
    if len(values) > MAX_KEYS:
        raise ValidationFailed(f"values: {len(values)} keys, over the limit of {MAX_KEYS}; split them into several "
                               f"secrets", status=422)
    problems = []
    total = 0
    for key, value in values.items():
        size = len(value.encode())
        total += size
        if not re.fullmatch(ENV_NAME_PATTERN, key):
            problems.append({"field": f"values.{key[:80]}", "message": "not an environment variable name: letters, "
                             "digits and '_', not starting with a digit, e.g. OPENAI_API_KEY"})
        elif "\x00" in value:
            problems.append({"field": f"values.{key}", "message": "contains a NUL character, which an environment "
                             "variable cannot hold"})
        elif size > MAX_VALUE_BYTES:
            problems.append({"field": f"values.{key}", "message": f"{size:,} bytes, over the limit of "
                             f"{MAX_VALUE_BYTES:,} per value"})
    if problems:
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise ValidationFailed(f"invalid secret: {summary}", status=422, detail=problems)
    if total > MAX_SECRET_BYTES:
        raise ValidationFailed(f"values: {total:,} bytes in all, over the limit of {MAX_SECRET_BYTES:,} per secret",
                               status=422)
    return values


async def read_values(request: Request) -> dict[str, str]:
    try:
        data = json.loads(await read_body(request, MAX_BODY_BYTES))
    except (ValueError, RecursionError):
        raise BadRequest('the body must be JSON: {"values": {"KEY": "VALUE"}}', status=400) from None
    try:
        body = SecretBody.model_validate(data)
    except ValidationError as exc:  # messages and locations only: an input here may be a secret value
        problems = [{"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]} for e in exc.errors()]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise ValidationFailed(f'invalid request: {summary}; send {{"values": {{"KEY": "VALUE"}}}}', status=422,
                               detail=problems) from None
    return check_values(body.values)


def secrets_router(control: ControlPlane) -> APIRouter:
    """The routes; ``api.py`` includes them with its API-key dependency."""
    router = APIRouter(prefix="/v1/secrets", tags=["secrets"])

    @router.get("")
    async def list_secrets() -> list[dict[str, Any]]:
        return await asyncio.to_thread(control.secrets.overview)

    @router.get("/{name}")
    async def describe_secret(name: str) -> dict[str, Any]:
        return await asyncio.to_thread(control.secrets.describe, check_name(name))

    body_schema = {"required": True, "content": {"application/json": {"schema": SecretBody.model_json_schema()}}}

    @router.put("/{name}", responses={201: {"description": "created"}, 200: {"description": "replaced"}},
                openapi_extra={"requestBody": body_schema})
    async def set_secret(name: str, request: Request, response: Response) -> dict[str, Any]:
        """Create or replace the secret: body ``{"values": {"KEY": "VALUE"}}`` (all its keys; others are dropped).
        The functions that use it restart with the new values."""
        check_name(name)
        values = await read_values(request)
        result = await asyncio.to_thread(control.secrets.put, name, values)
        response.status_code = 201 if result["revision"] == 1 and result["changed"] else 200
        return result

    @router.delete("/{name}")
    async def remove_secret(name: str, force: bool = False) -> dict[str, Any]:
        return await asyncio.to_thread(control.secrets.remove, check_name(name), force)

    return router
