"""The control plane's HTTP API under ``/v1`` (OpenAPI at ``/openapi.json``); every route but ``/healthz``
needs an API key with the role :mod:`.edge` names for it."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException

import fn
from fn import BadRequest, ClientError, FnError, Forbidden, NotFound, SpecError
from fnplatform.keys import ROLES, Grant
from fnplatform.serving.http import read_body
from fnplatform.storage.outages import registry_outage

from .console.history import History
from .console.routes import console_router, error_page
from .edge import Edge, KeyUse, grant_of
from .jobs_api import jobs_router
from .logbook import CONTROL_PLANE
from .metrics import CONTENT_TYPE
from .plane import ControlPlane
from .secrets_api import MAX_BODY_BYTES as SECRET_BODY_BYTES
from .secrets_api import secrets_router
from .state_api import MAX_BODY_BYTES as STATE_BODY_BYTES
from .state_api import state_router
from .traffic_api import CanaryPlan, traffic_router, who_of

log = logging.getLogger("fnplatform")
MAX_WAIT_S = 30.0
# Deploy long-polls wait in their own threads: in the default executor (a handful of threads on a small
# machine) six of them delayed every other route by seconds. Past this many, a wait queues, not the API.
_LONG_POLLS = ThreadPoolExecutor(max_workers=64, thread_name_prefix="fn-long-poll")


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bundle_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of a bundle uploaded with PUT /v1/bundles")
    canary: CanaryPlan | None = Field(None, description="run each changed function's new version beside the active "
                                                        "one at a share of calls (and promote it step by step)")


NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
# Log queries: since, request_id and grep are checked by control.logbook (a 400 naming the parameter).
LogCursor = Annotated[int, Query(ge=0, description="continue after this line id (a page's 'next'); 0: the newest lines")]
LogLimit = Annotated[int, Query(ge=1, le=5000, description="most lines in the page")]
LogSince = Annotated[str | None, Query(description="only lines of the last N seconds, or 10m, 2h, 1d")]
LogRequestId = Annotated[str | None, Query(description="only lines of this request id")]
LogGrep = Annotated[str | None, Query(description="only lines containing this text (case-sensitive, not a pattern; "
                                                  "at most 200 characters)")]
ScopeName = Annotated[str, Field(pattern=NAME_PATTERN, description="a function or flow name")]


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, description="what the key is for, e.g. 'ci'")
    role: Literal["invoke", "deploy", "admin"] = Field(
        "invoke", description="invoke: call functions and flows; deploy: also deploy, remove, read logs, "
                              "manage secrets; admin: also manage keys")
    functions: list[ScopeName] | None = Field(None, max_length=1000,
                                               description="the only functions the key may call (default: all)")
    flows: list[ScopeName] | None = Field(None, max_length=1000,
                                           description="the only flows the key may run (default: all)")
    rate_limit: float | None = Field(None, gt=0, le=1_000_000, allow_inf_nan=False,
                                     description="requests per second, per process serving the key (default: none)")

    @model_validator(mode="after")
    def _scopes(self) -> KeyRequest:
        if self.role != "invoke" and (self.functions is not None or self.flows is not None):
            raise ValueError(f"functions and flows scope invoke keys only; a {self.role} key deploys or manages "
                             f"the whole platform: leave them out, or use role 'invoke'")
        if self.functions is not None and self.flows is None:
            self.flows = []  # a flow's steps would call functions outside the scope: name flows to allow them
        return self


def _error(status: int, error_type: str, message: str, detail: Any = None, retry_after: float | None = None
           ) -> JSONResponse:
    error: dict[str, Any] = {"type": error_type, "message": message, "request_id": uuid.uuid4().hex}
    if detail is not None:
        error["detail"] = detail
    headers = {"retry-after": str(max(1, math.ceil(retry_after)))} if retry_after is not None else None
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def create_app(control: ControlPlane, use: KeyUse | None = None, history: History | None = None) -> Edge:
    """The API and the web console behind their edge (which authenticates, authorizes and limits before any
    body is read); *history* is what the console charts (the server samples the metrics into it)."""

    def lookup(key: str) -> Grant | None:
        try:
            record = control.registry.verify_key(key)
        except SQLAlchemyError as exc:  # before the app's handlers: the edge answers a ClientError itself
            raise registry_outage(exc) or exc from None
        return record.grant if record is not None else None

    app = _routes(control)
    app.include_router(console_router(control, history or History(), lookup))  # sign-in checks keys as the edge does
    return Edge(app, lookup, {"bundle": control.settings.max_bundle_bytes,
                              "artifact": control.settings.max_artifact_bytes, "secret": SECRET_BODY_BYTES,
                              "state": STATE_BODY_BYTES}, use,
                page_error=error_page)


def _routes(control: ControlPlane) -> FastAPI:
    app = FastAPI(title="fn control plane", version=fn.__version__,
                  description="Deploy, list, describe and remove functions; manage API keys; read logs. "
                              f"Send 'Authorization: Bearer <key>'; key roles: {', '.join(ROLES)}.")

    @app.exception_handler(FnError)
    async def _fn_error(_request: Request, exc: FnError) -> JSONResponse:
        if isinstance(exc, ClientError):
            return _error(exc.status or 500, exc.error_type or type(exc).__name__, exc.message, exc.detail,
                          exc.retry_after)
        status = 400 if isinstance(exc, SpecError) else 500
        return _error(status, type(exc).__name__, str(exc))

    @app.exception_handler(SQLAlchemyError)
    async def _database(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        outage = registry_outage(exc)
        if outage is not None:
            log.warning("answering 503: %s", outage.message)
            return await _fn_error(_request, outage)
        cause = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[:1]  # not the SQL nor its parameters
        log.error("registry error: %s: %s", type(exc).__name__, "".join(cause))
        return _error(500, "RegistryError", f"the registry failed ({type(exc).__name__}); see the control plane's log")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"field": ".".join(str(p) for p in e["loc"] if p != "body") or "(body)", "message": e["msg"]}
                    for e in exc.errors()]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return _error(422, "ValidationFailed", f"invalid request: {summary}", problems)

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, "BadRequest" if exc.status_code == 400 else "HTTPError", str(exc.detail))

    app.include_router(secrets_router(control))  # the edge gives /v1/secrets the deploy role
    app.include_router(traffic_router(control))  # and versions, rollback, traffic and shadow the deploy role
    app.include_router(state_router())  # fn.Dict / fn.Queue (control/edge.py: reads invoke, changes deploy)
    app.include_router(jobs_router(control))  # schedules (deploy role) and the webhook secret (the key's own)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Prometheus text, not JSON: kept out of the OpenAPI schema, like /healthz (docs/observability.md).
    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        grant = grant_of(request.scope)
        if grant.functions is not None or grant.flows is not None:
            # The series name every function and flow, and count their calls: only for a key that may call them all.
            raise Forbidden("this API key is scoped to some functions or flows; /metrics shows every function and "
                            "flow, so it needs a key without a scope (e.g. 'fnctl keys create prometheus --role invoke')",
                            status=403)
        return Response(await asyncio.to_thread(control.metrics_text), media_type=CONTENT_TYPE)

    @app.get("/v1/info")
    async def info(request: Request) -> dict[str, Any]:
        public = {"version": fn.__version__, "api_url": control.settings.api_url, "http_url": control.settings.http_url}
        if not grant_of(request.scope).has_role("deploy"):  # where the store and Ray are is not for callers
            return public
        return {**public, "store": control.store.config.describe(), "ray_address": control.settings.ray_address or "local",
                "max_bundle_bytes": control.settings.max_bundle_bytes,
                "bundle_limits": control.settings.bundle_limits.to_dict()}

    @app.head("/v1/bundles/{sha256}")
    async def bundle_exists(sha256: str) -> Response:
        found = await asyncio.to_thread(control.has_bundle, sha256)
        return Response(status_code=200 if found else 404)

    @app.put("/v1/bundles/{sha256}", status_code=201)
    async def upload_bundle(sha256: str, request: Request) -> dict[str, Any]:
        data = await read_body(request, control.settings.max_bundle_bytes)
        return await asyncio.to_thread(control.upload_bundle, sha256, data)

    @app.head("/v1/artifacts/{sha256}")
    async def artifact_exists(sha256: str) -> Response:
        found = await asyncio.to_thread(control.has_artifact, sha256)
        return Response(status_code=200 if found else 404)

    @app.put("/v1/artifacts/{sha256}", status_code=201)
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

    @app.post("/v1/deployments", status_code=202)
    async def deploy(body: DeployRequest, request: Request) -> dict[str, Any]:
        canary = body.canary.model_dump() if body.canary is not None else None
        job = await asyncio.to_thread(control.start_deploy, body.bundle_sha256, canary, who_of(control, request))
        return job.to_json()

    @app.get("/v1/deployments/{job_id}")
    async def deployment(job_id: str, after: Annotated[int, Query(ge=0)] = 0,
                         wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S, allow_inf_nan=False)] = 0
                         ) -> dict[str, Any]:
        job = control.job(job_id)
        if wait:
            await asyncio.get_running_loop().run_in_executor(_LONG_POLLS, job.wait, after, wait)
        return job.to_json(after)

    @app.get("/v1/functions")
    async def list_functions(request: Request) -> list[dict[str, Any]]:
        grant = grant_of(request.scope)
        return [f for f in await asyncio.to_thread(control.list_functions) if grant.may_call(f["name"])]

    @app.get("/v1/functions/{name}")
    async def describe(name: str, request: Request) -> dict[str, Any]:
        if not grant_of(request.scope).may_call(name):  # as if it did not exist: a scoped key learns nothing
            raise NotFound(f"no function named {name!r}; list functions with 'fnctl ls'", status=404)
        return await asyncio.to_thread(control.describe, name)

    @app.delete("/v1/functions/{name}")
    async def delete(name: str, with_flows: bool = False) -> dict[str, Any]:
        removed = await asyncio.to_thread(control.delete, name, with_flows)
        return {"removed": name, "flows_removed": removed}

    @app.get("/v1/functions/{name}/logs")
    async def logs(name: str, after: LogCursor = 0, limit: LogLimit = 200, since: LogSince = None,
                   request_id: LogRequestId = None, grep: LogGrep = None) -> dict[str, Any]:
        return await asyncio.to_thread(control.logs, name, after, limit, since=since, request_id=request_id, grep=grep)

    @app.get("/v1/traces/{trace_id}")
    async def trace(trace_id: str) -> dict[str, Any]:
        """The spans of a trace (a trace id, a request id, or a flow run's id), oldest first."""
        return await asyncio.to_thread(control.logbook.trace, trace_id)

    @app.get("/v1/logs/control-plane")  # the edge's default rule: admin keys only
    async def control_plane_logs(after: LogCursor = 0, limit: LogLimit = 200, since: LogSince = None,
                                 request_id: LogRequestId = None, grep: LogGrep = None) -> dict[str, Any]:
        page = await asyncio.to_thread(control.logbook.read, CONTROL_PLANE, after=after, limit=limit, since=since,
                                       request_id=request_id, grep=grep)
        return {"source": "control-plane", **page}

    @app.get("/v1/flows")
    async def list_flows(request: Request) -> list[dict[str, Any]]:
        return await asyncio.to_thread(control.list_flows, grant_of(request.scope))

    @app.get("/v1/keys")
    async def list_keys() -> list[dict[str, Any]]:
        return [k.to_json() for k in await asyncio.to_thread(control.registry.keys)]

    @app.post("/v1/keys", status_code=201)
    async def create_key(body: KeyRequest) -> dict[str, Any]:
        return await asyncio.to_thread(control.create_key, body.name, body.role, body.functions, body.flows,
                                       body.rate_limit)

    @app.delete("/v1/keys/{key_id}", status_code=204)
    async def revoke_key(key_id: str) -> Response:
        await asyncio.to_thread(control.revoke_key, key_id)
        return Response(status_code=204)

    return app
