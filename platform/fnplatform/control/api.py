"""The control plane's HTTP API under ``/v1`` (OpenAPI at ``/openapi.json``); every route needs an API key."""

from __future__ import annotations

import asyncio
import hashlib
import re
import tempfile
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

import fn
from fn import BadRequest, ClientError, FnError, PayloadTooLarge, SpecError, Unauthorized

from .plane import ControlPlane
from .secrets_api import secrets_router

MAX_WAIT_S = 30.0


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bundle_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of a bundle uploaded with PUT /v1/bundles")


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, description="what the key is for, e.g. 'ci'")


def _error(status: int, error_type: str, message: str, detail: Any = None) -> JSONResponse:
    error: dict[str, Any] = {"type": error_type, "message": message, "request_id": uuid.uuid4().hex[:16]}
    if detail is not None:
        error["detail"] = detail
    return JSONResponse({"error": error}, status_code=status)


def create_app(control: ControlPlane) -> FastAPI:
    app = FastAPI(title="fn control plane", version=fn.__version__,
                  description="Deploy, list, describe and remove functions; manage API keys; read logs.")

    @app.exception_handler(FnError)
    async def _fn_error(_request: Request, exc: FnError) -> JSONResponse:
        if isinstance(exc, ClientError):
            return _error(exc.status or 500, exc.error_type or type(exc).__name__, exc.message, exc.detail)
        status = 400 if isinstance(exc, SpecError) else 500
        return _error(status, type(exc).__name__, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"field": ".".join(str(p) for p in e["loc"] if p != "body") or "(body)", "message": e["msg"]}
                    for e in exc.errors()]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return _error(422, "ValidationFailed", f"invalid request: {summary}", problems)

    async def authorized(request: Request) -> None:
        header = request.headers.get("authorization", "")
        key = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
        if not key or await asyncio.to_thread(control.registry.verify_key, key) is None:
            raise Unauthorized("missing or invalid API key: send 'Authorization: Bearer <key>'", status=401)

    auth = [Depends(authorized)]

    app.include_router(secrets_router(control), dependencies=auth)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/info", dependencies=auth)
    async def info() -> dict[str, Any]:
        return {"version": fn.__version__, "api_url": control.settings.api_url, "http_url": control.settings.http_url,
                "store": control.store.config.describe(), "ray_address": control.settings.ray_address or "local",
                "max_bundle_bytes": control.settings.max_bundle_bytes}

    @app.head("/v1/bundles/{sha256}", dependencies=auth)
    async def bundle_exists(sha256: str) -> Response:
        found = await asyncio.to_thread(control.has_bundle, sha256)
        return Response(status_code=200 if found else 404)

    @app.put("/v1/bundles/{sha256}", dependencies=auth, status_code=201)
    async def upload_bundle(sha256: str, request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length", "")
        limit = control.settings.max_bundle_bytes
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"the bundle is {int(declared):,} bytes, over the limit of {limit:,}", status=413)
        data = await request.body()
        return await asyncio.to_thread(control.upload_bundle, sha256, data)

    @app.head("/v1/artifacts/{sha256}", dependencies=auth)
    async def artifact_exists(sha256: str) -> Response:
        found = await asyncio.to_thread(control.has_artifact, sha256)
        return Response(status_code=200 if found else 404)

    @app.put("/v1/artifacts/{sha256}", dependencies=auth, status_code=201)
    async def upload_artifact(sha256: str, request: Request) -> dict[str, Any]:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise BadRequest(f"{sha256!r} is not a sha256 (64 lowercase hex digits)", status=400)
        # Model files can be gigabytes: streamed to a temporary file and hashed on the way, never held in memory.
        digest = hashlib.sha256()
        with tempfile.NamedTemporaryFile(prefix="fn-artifact-") as spool:
            async for chunk in request.stream():
                digest.update(chunk)
                await asyncio.to_thread(spool.write, chunk)
            spool.flush()
            if digest.hexdigest() != sha256:
                raise BadRequest(f"the uploaded file's sha256 is {digest.hexdigest()}, not {sha256}; upload it again",
                                 status=400)
            return await asyncio.to_thread(control.upload_artifact, sha256, Path(spool.name))

    @app.post("/v1/deployments", dependencies=auth, status_code=202)
    async def deploy(body: DeployRequest) -> dict[str, Any]:
        job = await asyncio.to_thread(control.start_deploy, body.bundle_sha256)
        return job.to_json()

    @app.get("/v1/deployments/{job_id}", dependencies=auth)
    async def deployment(job_id: str, after: Annotated[int, Query(ge=0)] = 0,
                         wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S)] = 0) -> dict[str, Any]:
        job = control.job(job_id)
        if wait:
            await asyncio.to_thread(job.wait, after, wait)
        return job.to_json(after)

    @app.get("/v1/functions", dependencies=auth)
    async def list_functions() -> list[dict[str, Any]]:
        return await asyncio.to_thread(control.list_functions)

    @app.get("/v1/functions/{name}", dependencies=auth)
    async def describe(name: str) -> dict[str, Any]:
        return await asyncio.to_thread(control.describe, name)

    @app.delete("/v1/functions/{name}", dependencies=auth)
    async def delete(name: str, with_flows: bool = False) -> dict[str, Any]:
        removed = await asyncio.to_thread(control.delete, name, with_flows)
        return {"removed": name, "flows_removed": removed}

    @app.get("/v1/functions/{name}/logs", dependencies=auth)
    async def logs(name: str, after: Annotated[int, Query(ge=0)] = 0,
                   limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> dict[str, Any]:
        return await asyncio.to_thread(control.logs, name, after, limit)

    @app.get("/v1/flows", dependencies=auth)
    async def list_flows() -> list[dict[str, Any]]:
        return await asyncio.to_thread(control.list_flows)

    @app.get("/v1/keys", dependencies=auth)
    async def list_keys() -> list[dict[str, Any]]:
        return [k.to_json() for k in await asyncio.to_thread(control.registry.keys)]

    @app.post("/v1/keys", dependencies=auth, status_code=201)
    async def create_key(body: KeyRequest) -> dict[str, Any]:
        return await asyncio.to_thread(control.create_key, body.name)

    @app.delete("/v1/keys/{key_id}", dependencies=auth, status_code=204)
    async def revoke_key(key_id: str) -> Response:
        await asyncio.to_thread(control.revoke_key, key_id)
        return Response(status_code=204)

    return app
