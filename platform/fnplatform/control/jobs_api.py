"""``/v1/schedules`` (list, history, pause, resume) and ``/v1/webhook-secret`` (the secret a key's webhooks are signed with).

The schedules take the deploy role; a key scoped to other functions does not see theirs. The webhook secret is the
calling key's own (an admin may ask for another key's with ``?key=ID``): the receiver of a job's webhook needs it to
verify the ``Fn-Signature`` header (``fn.verify_webhook``). It is derived from the secrets' master key and the key's
id, so it is stored nowhere and the same after every restart; it changes when the master key does.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from fn import NotFound

from .edge import grant_of
from .plane import ControlPlane


def jobs_router(control: ControlPlane) -> APIRouter:
    router = APIRouter()
    background = control.background

    def visible(request: Request, name: str) -> None:
        if not grant_of(request.scope).may_call(name):
            raise NotFound(f"{name!r} has no schedule; list schedules with 'fnctl schedules ls'", status=404)

    @router.get("/v1/schedules")
    async def schedules(request: Request) -> list[dict[str, Any]]:
        grant = grant_of(request.scope)
        return [item for item in await asyncio.to_thread(background.list_schedules) if grant.may_call(item["name"])]

    @router.get("/v1/schedules/{name}")
    async def history(name: str, request: Request,
                      limit: Annotated[int, Query(ge=1, le=1000, description="the newest ticks shown")] = 50
                      ) -> dict[str, Any]:
        visible(request, name)
        return await asyncio.to_thread(background.history, name, limit)

    @router.post("/v1/schedules/{name}/pause")
    async def pause(name: str, request: Request) -> dict[str, Any]:
        visible(request, name)
        return await asyncio.to_thread(background.pause, name)

    @router.post("/v1/schedules/{name}/resume")
    async def resume(name: str, request: Request) -> dict[str, Any]:
        visible(request, name)
        return await asyncio.to_thread(background.resume, name)

    @router.get("/v1/webhook-secret")
    async def webhook_secret(request: Request,
                             key: Annotated[str | None, Query(max_length=64, description="another key's id (admins)")]
                             = None) -> dict[str, str]:
        grant = grant_of(request.scope)
        key_id = key or grant.key_id
        if key_id != grant.key_id:
            grant.require("admin")
        if not key_id:
            raise NotFound("this request's key has no id", status=404)
        return {"key": key_id, "secret": background.webhook_secret(key_id),
                "header": "Fn-Signature", "verify": "fn.verify_webhook(body, header, secret)"}

    return router
