"""The flows HTTP API, a Serve application at ``/flows`` on the function endpoint address.

::

    POST /flows/<flow>/runs                      -> 201 {"id": ...}
    PUT  /flows/<flow>/runs/<id>/inputs/<name>   JSON, a raw body or a multipart upload -> 202 run state
    POST /flows/<flow>/runs/<id>/close           no more inputs: absent optional ones are None -> 202 run state
    GET  /flows/<flow>/runs/<id>[?wait=S]        run state; with wait, long-polls until the run ends
    GET  /flows/<flow>/runs/<id>/evidence        admins: what decided the run (flows/evidence.py)
    GET  /flows                                  declared flows

Every accepted input is written to the store (bytes) or the registry (JSON) before it is
acknowledged; only then is the run's host told. Closing a run's inputs is written the same way, and
refused (409, naming them) while a required input is missing; closing again, or closing a run that has
ended (a close may race the run's end), is 202 with its state; a put after the close is 409.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from fn import BadRequest, Conflict, NotFound, PayloadTooLarge, TooManyRequests, Unavailable
from fnplatform.keys import Grant
from fnplatform.serving import tracing
from fnplatform.serving import versions as routing
from fnplatform.serving.auth import KeyCache
from fnplatform.serving.edge import declared_over, limited, number_query
from fnplatform.serving.http import answered, read_body, read_form
from fnplatform.serving.hub import lazy_hub
from fnplatform.storage.blobs import StoreConfig, open_store
from fnplatform.storage.db import database_url_from_env
from fnplatform.storage.outages import database_error

from . import run as flow_run
from .evidence import evidence
from .hosts import forget_host, host_for
from .state import FlowState, snapshot_from_record

MAX_WAIT_S = 60.0
MAX_START_BODY_BYTES = 8192  # a run's start: at most its version pins
# Unfinished runs are held in memory by the run hosts; caps keep one flow or one key from taking them.
MAX_ACTIVE_RUNS_PER_FLOW = int(os.environ.get("FN_MAX_ACTIVE_RUNS_PER_FLOW", "500"))
MAX_ACTIVE_RUNS_PER_KEY = int(os.environ.get("FN_MAX_ACTIVE_RUNS_PER_KEY", "100"))


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json")


# How long a call to a run's host that died or is restarting is tried again before the gateway answers 503.
ACTOR_RETRY_S = 10.0


class FlowGateway:
    def __init__(self, store: dict[str, Any]) -> None:
        self._store_config = store
        self._db = FlowState(database_url_from_env())
        self._store = open_store(StoreConfig(**store))
        self._keys = KeyCache(lazy_hub())

    async def __call__(self, request: Request) -> Response:
        request_id = tracing.request_id_of(request.headers)
        return await answered(request_id, self._authenticated(request),
                              lambda exc: database_error(exc, "the checkpoint database"))  # locked or down: 503, try again

    async def _authenticated(self, request: Request) -> Response:
        return await self._route(request, await self._keys.authenticate(request.headers))

    async def _route(self, request: Request, grant: Grant) -> Response:
        parts = [p for p in request.url.path.split("/") if p]
        if parts and parts[0] == "flows":
            parts = parts[1:]
        method = request.method
        if not parts and method == "GET":
            flows = await asyncio.to_thread(self._db.flows)
            return _json([{"name": f.name, "inputs": list(f.inputs), "optional": list(f.optional),
                           "steps": [s.name for s in f.steps], "output": f.output} for f in flows if grant.may_run(f.name)])
        if parts:
            grant.require_flow(parts[0])
        if len(parts) == 2 and parts[1] == "runs" and method == "POST":
            return await self._start(parts[0], grant, request)
        if len(parts) == 3 and parts[1] == "runs" and method == "GET":
            wait = number_query(request.query_params, "wait", 0.0, 0.0, MAX_WAIT_S)
            return _json(await self._state(parts[0], parts[2], wait, grant))
        if len(parts) == 5 and parts[1] == "runs" and parts[3] == "inputs" and method in {"PUT", "POST"}:
            return await self._put(parts[0], parts[2], parts[4], request, grant)
        if len(parts) == 4 and parts[1] == "runs" and parts[3] == "close" and method == "POST":
            return await self._close(parts[0], parts[2], grant)
        if len(parts) == 4 and parts[1] == "runs" and parts[3] == "evidence" and method == "GET":
            grant.require("admin")  # inputs' digests and every step's result: personal data, for audits
            return _json(evidence(await self._record(parts[0], parts[2], grant)))
        raise NotFound(f"no flows route {method} {request.url.path}; see 'fnctl flow --help'", status=404)

    async def _flow(self, name: str) -> Any:
        spec = await asyncio.to_thread(self._db.flow, name)
        if spec is None:
            raise NotFound(f"no flow named {name!r} is deployed; list flows with 'fnctl flow ls'", status=404)
        return spec

    async def _start(self, flow: str, grant: Grant, request: Request) -> Response:
        spec = await self._flow(flow)
        pins = _pins(spec, await read_body(request, MAX_START_BODY_BYTES))
        for function, version in pins.items():  # refused now, not by a step failing later
            entry = await routing.table_of_process().aget(function)
            if entry is not None and version not in entry.versions:
                raise entry.unknown(function, version)
        for scope, limit, count in (
                (f"flow {flow!r}", MAX_ACTIVE_RUNS_PER_FLOW, lambda: self._db.active_runs(flow=flow)),
                ("this API key", MAX_ACTIVE_RUNS_PER_KEY, lambda: self._db.active_runs(owner=grant.key_id))):
            if await asyncio.to_thread(count) >= limit:
                raise TooManyRequests(f"{scope} already has {limit} unfinished runs, the most allowed; give their "
                                      f"inputs or wait for them to finish (unused runs fail after the flow's ttl_s)",
                                      status=429, retry_after=10)
        run_id = await asyncio.to_thread(self._db.create_run, spec, grant.key_id, pins)
        # Loading the run in its host overlaps the client's first upload: it prewarms every step's deployment.
        self._host(run_id).state.remote(run_id)
        return _json({"id": run_id, "flow": flow, "status": "pending"}, status=201)

    def _host(self, run_id: str) -> Any:
        return host_for(run_id, self._store_config)

    async def _record(self, flow: str, run_id: str, grant: Grant) -> Any:
        record = await asyncio.to_thread(self._db.run, run_id)
        if record is None or record.flow != flow or not record.visible_to(grant.key_id, grant.has_role("admin")):
            raise NotFound(f"no run {run_id!r} of flow {flow!r}", status=404)
        return record

    async def _ask(self, run_id: str, method: str, *args: Any) -> dict[str, Any]:
        """Call the run's host. One that died or is restarting is asked again, on a new one that resumes the
        run from its checkpoint if need be, for ACTOR_RETRY_S; then 503, with the run's state safe in the registry."""
        from ray.exceptions import RayActorError

        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + ACTOR_RETRY_S, 0.1
        while True:
            try:
                result: dict[str, Any] = await getattr(self._host(run_id), method).remote(run_id, *args)
                return result
            except RayActorError as exc:
                forget_host(run_id)
                if loop.time() + pause > deadline:
                    raise Unavailable(f"run {run_id}'s host is restarting ({type(exc).__name__}); its state is "
                                      "checkpointed: ask again shortly", status=503, retry_after=1) from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)

    async def _state(self, flow: str, run_id: str, wait: float, grant: Grant) -> dict[str, Any]:
        record = await self._record(flow, run_id, grant)
        if record.status in {"succeeded", "failed"}:
            return snapshot_from_record(record)
        return await self._ask(run_id, "wait" if wait else "state", *([wait] if wait else []))

    async def _put(self, flow: str, run_id: str, name: str, request: Request, grant: Grant) -> Response:
        record = await self._record(flow, run_id, grant)
        spec = record.spec
        if name not in spec.inputs:
            raise NotFound(f"flow {flow!r} has no input {name!r}; its inputs are {list(spec.inputs)}", status=404)
        if name in record.values:
            raise Conflict(f"input {name!r} of run {run_id} was already given; the first one is kept", status=409)
        # Closed inputs first: a run that ends the instant its inputs close must refuse a late input the same way.
        if record.inputs_closed:
            raise Conflict(f"inputs of run {run_id} are closed: input {name!r} is refused", status=409)
        if record.status in {"succeeded", "failed"}:
            raise Conflict(f"run {run_id} has already {record.status}", status=409)
        what = f"input {name!r}"
        declared_over(request.headers, spec.max_input_bytes, what)
        request = Request(request.scope, limited(request.receive, spec.max_input_bytes, what))
        data, value = await self._read_body(request)
        size = len(data) if data is not None else len(value or "")
        if size > spec.max_input_bytes:  # a multipart file part: the envelope was within the limit, not the file
            raise PayloadTooLarge(f"{what} is {size:,} bytes, over the flow's limit of {spec.max_input_bytes:,}",
                                  status=413)
        key = None
        if data is not None:
            # Each upload its own blob: two racing uploads of one input must not overwrite the one that is kept.
            key = flow_run.blob_key(run_id, "inputs", f"{name}.{uuid.uuid4().hex[:12]}")
            await asyncio.to_thread(self._store.write, key, data)
        stored = data if data is not None else (value or "").encode()
        try:
            added = await asyncio.to_thread(self._db.add_input, run_id, name, blob_key=key, value_json=value,
                                            sha256=hashlib.sha256(stored).hexdigest(), size=len(stored))
        except Conflict:  # the inputs were closed while this one was uploading
            if key is not None:
                await asyncio.to_thread(self._store.delete, key)
            raise
        if not added:
            if key is not None:
                await asyncio.to_thread(self._store.delete, key)
            raise Conflict(f"input {name!r} of run {run_id} was already given; the first one is kept", status=409)
        return await self._tell(flow, run_id, grant, "put", name)

    async def _close(self, flow: str, run_id: str, grant: Grant) -> Response:
        record = await self._record(flow, run_id, grant)
        if record.status in {"succeeded", "failed"}:
            return _json(snapshot_from_record(record), status=202)  # a close racing the run's end is no error
        await asyncio.to_thread(self._db.close_inputs, run_id)  # Conflict naming a missing required input
        return await self._tell(flow, run_id, grant, "close")

    async def _tell(self, flow: str, run_id: str, grant: Grant, method: str, *args: Any) -> Response:
        """202 with the run's state once the host has taken up what was just checkpointed."""
        try:
            return _json(await self._ask(run_id, method, *args), status=202)
        except Unavailable:
            # It is checkpointed: accepted. The run's host picks it up when it is back (it loads the
            # checkpoint, and the control plane resumes unfinished runs), so the caller must not send it again.
            record = await self._record(flow, run_id, grant)
            return _json(snapshot_from_record(record), status=202)

    async def _read_body(self, request: Request) -> tuple[bytes | None, str | None]:
        """(bytes, None) for a file or raw body, (None, JSON text) for a JSON value."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "multipart/form-data":
            async with read_form(request, max_files=1, max_fields=10) as form:
                for _, item in form.multi_items():
                    if isinstance(item, UploadFile):
                        data = await item.read()
                        break
                else:
                    raise BadRequest("the multipart upload has no file part", status=400)
        else:
            data = await request.body()
        if not data:
            raise BadRequest("the upload is empty", status=400)
        if content_type == "application/json":
            try:  # UTF-8 text first: what is stored must load again (json.loads would also take a BOM or UTF-16)
                text = data.decode("utf-8")
                json.loads(text)
            except UnicodeDecodeError:
                raise BadRequest("the body is declared JSON but is not UTF-8 text", status=400) from None
            except RecursionError:
                raise BadRequest("the JSON body is nested too deeply", status=400) from None
            except ValueError as exc:
                raise BadRequest(f"the body is declared JSON but is not valid JSON: {exc}", status=400) from None
            return None, text
        return data, None


def _pins(spec: Any, body: bytes) -> dict[str, int]:
    """A start body's ``{"versions": {function: N}}``: the versions the run's steps call, whatever the traffic split
    says; each function must be one of the flow's steps'. An empty body pins nothing."""
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    versions = data.get("versions") if isinstance(data, dict) and set(data) <= {"versions"} else None
    functions = sorted({s.function for s in spec.steps})
    if not isinstance(versions, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in versions.values()):
        raise BadRequest('the body of a run\'s start must be empty or {"versions": {"FUNCTION": N}} with version '
                         f'numbers >= 1, e.g. {{"versions": {{"{functions[0]}": 3}}}}', status=400)
    unknown = sorted(set(versions) - set(functions))
    if unknown:
        raise BadRequest(f"versions: {', '.join(unknown)} is not a function of flow {spec.name!r}'s steps; they "
                         f"call {', '.join(functions)}", status=400)
    return {str(k): int(v) for k, v in versions.items()}
