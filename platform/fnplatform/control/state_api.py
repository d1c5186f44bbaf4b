"""``/v1/state``: ``fn.Dict`` and ``fn.Queue`` from outside the cluster (the SDK's HTTP backend, curl, scripts).

Shared state belongs to every function at once, so a key scoped to some functions may not touch it; reading
takes the invoke role, changing (a queue's get included: it takes the item) the deploy role (control/edge.py).
Inside the cluster functions reach the state server directly and need no key.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from fn import BadRequest, Forbidden
from fn._platform import (
    MAX_DICT_KEYS,
    MAX_QUEUE_ITEMS,
    MAX_STATE_VALUE_BYTES,
    check_state_key,
    check_state_name,
    decode_state,
    encode_state,
)
from fnplatform.serving.state_client import StateClient

from .edge import grant_of

# A value is at most 1 MiB as JSON; a body holds one, its key and JSON's escapes of the value's characters.
MAX_BODY_BYTES = 4 * MAX_STATE_VALUE_BYTES
Key = Annotated[str, Query(min_length=1, max_length=512, description="the entry's key")]


class SetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=512)
    value: JsonValue


class IncrBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=512)
    by: int = Field(default=1, ge=-(2**53), le=2**53)


class PutBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: JsonValue
    maxsize: int = Field(default=10_000, ge=1, le=MAX_QUEUE_ITEMS)
    timeout: float = Field(default=0.0, ge=0, le=20)


class GetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeout: float = Field(default=0.0, ge=0, le=20)


def _unscoped(request: Request) -> None:
    grant = grant_of(request.scope)
    if grant.functions is not None:
        raise Forbidden("shared state (fn.Dict, fn.Queue) belongs to every function; a key scoped to some functions "
                        "may not use it: use an unscoped key", status=403)


def state_router(client: StateClient | None = None) -> APIRouter:
    router = APIRouter(prefix="/v1/state", tags=["state"])
    state = client or StateClient()

    @router.get("/dicts/{name}/value")
    async def dict_get(name: str, key: Key, request: Request) -> dict[str, Any]:
        _unscoped(request)
        text = await state.aop("dict_get", check_state_name(name), check_state_key(key))
        return {"found": text is not None, "value": decode_state(text)}

    @router.get("/dicts/{name}/keys")
    async def dict_keys(name: str, request: Request,
                        limit: Annotated[int, Query(ge=0, le=MAX_DICT_KEYS, description="0: the count only")] = 1000,
                        prefix: Annotated[str, Query(max_length=512)] = "") -> dict[str, Any]:
        _unscoped(request)
        keys, count = await state.aop("dict_keys", check_state_name(name), limit, prefix)
        return {"keys": keys, "count": count}

    @router.put("/dicts/{name}/value")
    async def dict_set(name: str, body: SetBody, request: Request) -> dict[str, Any]:
        _unscoped(request)
        await state.aop("dict_set", check_state_name(name), check_state_key(body.key), encode_state(body.value))
        return {"stored": True}

    @router.delete("/dicts/{name}/value")
    async def dict_delete(name: str, key: Key, request: Request) -> dict[str, Any]:
        _unscoped(request)
        return {"deleted": bool(await state.aop("dict_delete", check_state_name(name), check_state_key(key)))}

    @router.post("/dicts/{name}/incr")
    async def dict_incr(name: str, body: IncrBody, request: Request) -> dict[str, Any]:
        _unscoped(request)
        return {"value": await state.aop("dict_incr", check_state_name(name), check_state_key(body.key), body.by)}

    @router.get("/queues/{name}")
    async def queue_len(name: str, request: Request) -> dict[str, Any]:
        _unscoped(request)
        return {"length": await state.aop("queue_len", check_state_name(name))}

    @router.post("/queues/{name}/put")
    async def queue_put(name: str, body: PutBody, request: Request) -> dict[str, Any]:
        _unscoped(request)
        if body.value is None:
            raise BadRequest("a queue does not hold null (a get that found nothing answers found: false)", status=400)
        await state.aop("queue_put", check_state_name(name), encode_state(body.value), body.maxsize, body.timeout)
        return {"stored": True}

    @router.post("/queues/{name}/get")
    async def queue_get(name: str, body: GetBody, request: Request) -> dict[str, Any]:
        _unscoped(request)
        text = await state.aop("queue_get", check_state_name(name), body.timeout)
        return {"found": text is not None, "value": decode_state(text)}

    @router.get("")
    async def overview(request: Request) -> dict[str, Any]:
        _unscoped(request)
        listed: dict[str, Any] = await state.aop("overview")
        return listed

    return router
