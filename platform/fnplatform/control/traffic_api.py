"""``/v1/functions/<name>/versions``, ``/rollback``, ``/traffic`` and ``/shadow``: versions and where calls go.

The edge gives these the deploy role; a key scoped to other functions learns nothing of this one (404 as if it
did not exist). Who made each change (the key's id and name) is recorded with it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fn import NotFound

from .edge import grant_of
from .plane import ControlPlane
from .shadow_report import summarize

MAX_WEEK_S = 7 * 86400.0


class GatesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_error_rate: float = Field(default=0.01, ge=0, le=1, description="how much more often than the stable version the "
                                                                "canary may fail (a fraction: 0.01 is 1 %)")
    max_p99_ratio: float = Field(default=1.5, gt=0, le=1000, description="the canary's p99 over the stable version's, at most")
    min_calls: int = Field(default=10, ge=1, le=1_000_000, description="canary calls a step needs before it is promoted")


class CanaryPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    percent: float = Field(gt=0, lt=100, description="the share of calls the new version gets first")
    steps: list[Annotated[float, Field(gt=0, le=100)]] | None = Field(
        None, max_length=20, description="a progressive rollout: increasing weights ending at 100, e.g. [10, 50, 100]")
    interval_s: float = Field(300.0, gt=0, le=MAX_WEEK_S, description="how long each step lasts while its gates hold")
    gates: GatesBody = GatesBody()  # never changed in place: a shared default is safe

    @model_validator(mode="after")
    def _steps(self) -> CanaryPlan:
        if self.steps is not None:
            if self.steps != sorted(set(self.steps)) or self.steps[-1] != 100:
                raise ValueError(f"steps must increase and end at 100, e.g. [10, 50, 100]; got {self.steps}")
            if self.steps[0] != self.percent:
                raise ValueError(f"the first step ({self.steps[0]:g}) must be the canary's percent ({self.percent:g})")
        return self


class TrafficBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    split: dict[Annotated[int, Field(ge=1)], Annotated[float, Field(ge=0, le=100)]] | None = Field(
        None, description="percent of calls per version, adding up to 100, e.g. {\"3\": 90, \"4\": 10}")
    shadow_version: int | None = Field(None, ge=1, description="the version live calls are copied to")
    shadow_percent: float = Field(100.0, gt=0, le=100, description="the share of calls copied to it")
    stop_shadow: bool = False

    @model_validator(mode="after")
    def _one(self) -> TrafficBody:
        if sum((self.split is not None, self.shadow_version is not None, self.stop_shadow)) != 1:
            raise ValueError("give exactly one of split, shadow_version or stop_shadow")
        return self


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: int | None = Field(None, ge=1, description="the version to make active; default: the one active before")


def who_of(control: ControlPlane, request: Request) -> str:
    grant = grant_of(request.scope)
    key = control.registry.key(grant.key_id) if grant.key_id else None
    return f"{grant.key_id} ({key.name})" if key is not None else str(grant.key_id or "-")


def _visible(request: Request, name: str) -> None:
    if not grant_of(request.scope).may_call(name):  # as if it did not exist: a scoped key learns nothing
        raise NotFound(f"no function named {name!r}; list functions with 'fnctl ls'", status=404)


def traffic_router(control: ControlPlane) -> APIRouter:
    router = APIRouter()
    traffic = control.traffic

    @router.get("/v1/functions/{name}/versions")
    async def versions(name: str, request: Request) -> dict[str, Any]:
        _visible(request, name)
        return await asyncio.to_thread(traffic.versions, name)

    @router.post("/v1/functions/{name}/rollback")
    async def rollback(name: str, body: RollbackBody, request: Request) -> dict[str, Any]:
        _visible(request, name)
        return await asyncio.to_thread(traffic.rollback, name, body.to, who_of(control, request))

    @router.get("/v1/functions/{name}/traffic")
    async def get_traffic(name: str, request: Request) -> dict[str, Any]:
        _visible(request, name)
        return await asyncio.to_thread(traffic.traffic, name)

    @router.put("/v1/functions/{name}/traffic")
    async def put_traffic(name: str, body: TrafficBody, request: Request) -> dict[str, Any]:
        _visible(request, name)
        who = who_of(control, request)
        if body.split is not None:
            return await asyncio.to_thread(traffic.set_split, name, dict(body.split), who)
        return await asyncio.to_thread(traffic.set_shadow, name, body.shadow_version, body.shadow_percent, who)

    @router.get("/v1/functions/{name}/shadow")
    async def shadow(name: str, request: Request,
                     limit: Annotated[int, Query(ge=1, le=5000, description="the newest compared calls read")] = 1000,
                     examples: Annotated[int, Query(ge=0, le=50)] = 5) -> dict[str, Any]:
        _visible(request, name)
        records = await asyncio.to_thread(control.shadow_records, name, limit)
        return {"function": name, **summarize(records, examples=examples)}

    return router
