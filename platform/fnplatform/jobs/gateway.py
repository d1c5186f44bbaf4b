"""The jobs HTTP API, a Serve application at ``/jobs`` on the function endpoint address.

::

    POST   /jobs/<function>[?callback_url=&retries=&retry_backoff_s=]   the body of a call -> 202 {"id", ...}
    GET    /jobs/<id>[?wait=S]         the job's state; with wait, long-polls until it ends (at most 60 s)
    DELETE /jobs/<id>                  cancel: a queued job at once, a running one within a second -> 202 state
    POST   /jobs/<id>/retry            re-drive a failed (dead-letter) or cancelled job -> 202 state
    GET    /jobs[?function=&status=&limit=]   the caller's jobs (an admin's: everyone's), newest first

A job is written to the database before the 202 is sent, so an accepted job is never lost. ``Fn-Version: N``
pins the job to a version; ``Idempotency-Key: K`` makes a retried POST return the job the first one created
(200) instead of a second job. Only the key that spawned a job (or an admin) sees, cancels or re-drives it:
any other gets the same 404 as a job that does not exist.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fn import BadRequest, Conflict, FunctionSpec, NotFound, TooManyRequests, Unavailable
from fnplatform.keys import Grant
from fnplatform.serving import tracing
from fnplatform.serving import versions as routing
from fnplatform.serving.auth import KeyCache
from fnplatform.serving.edge import number_query
from fnplatform.serving.http import answered, read_body
from fnplatform.serving.hub import lazy_hub
from fnplatform.storage.blobs import StoreConfig, open_store
from fnplatform.storage.group_commit import GroupCommit
from fnplatform.storage.jobs import STATUSES, Job, JobStore, NewJob, new_job_id
from fnplatform.storage.outages import database_error
from fnplatform.storage.registry import Registry

from . import runner
from .settings import JobSettings
from .webhooks import TargetRefused, TargetUnreachable, check_target

MAX_WAIT_S = 60.0
MAX_LIST = 1000
INLINE_ARGUMENTS_BYTES = 256 * 1024
SPEC_TTL_S = 2.0


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


class JobGateway:
    def __init__(self, store: dict[str, Any]) -> None:
        self._serve(JobSettings.from_env(), store, KeyCache(lazy_hub()))

    @classmethod
    def around(cls, settings: JobSettings, store: dict[str, Any], keys: Any) -> JobGateway:
        """A gateway with these settings and key checks, outside Serve and the hub: the seam the unit tests use."""
        gateway = cls.__new__(cls)
        gateway._serve(settings, store, keys)
        return gateway

    def _serve(self, settings: JobSettings, store: dict[str, Any], keys: Any) -> None:
        self.settings = settings
        self._store_config = store
        self._db = JobStore(settings.database_url)
        self._registry = Registry(settings.database_url)
        self._blobs = open_store(StoreConfig(**store))
        self._keys = keys
        self._specs: dict[str, tuple[float, FunctionSpec | None]] = {}
        self._submits = GroupCommit(self._db.submit_many)  # jobs accepted together are written together
        self._unfinished: dict[str, tuple[float, int]] = {}  # key id -> (when counted, queued or running jobs)

    async def __call__(self, request: Request) -> Response:
        request_id = tracing.request_id_of(request.headers)
        return await answered(request_id, self._authenticated(request),
                              lambda exc: database_error(exc, "the jobs database"))  # locked or down: 503, try again

    async def _authenticated(self, request: Request) -> Response:
        return await self._route(request, await self._keys.authenticate(request.headers))

    async def _route(self, request: Request, grant: Grant) -> Response:
        parts = [p for p in request.url.path.split("/") if p]
        if parts and parts[0] == "jobs":
            parts = parts[1:]
        method = request.method
        if not parts and method == "GET":
            return await self._list(request, grant)
        if len(parts) == 1 and method == "POST":
            return await self._spawn(parts[0], request, grant)
        if len(parts) == 1 and method == "GET":
            wait = number_query(request.query_params, "wait", 0.0, 0.0, MAX_WAIT_S)
            return _json(await self._state(await self._wait(parts[0], grant, wait)))
        if len(parts) == 1 and method == "DELETE":
            await self._own(parts[0], grant)
            job = await asyncio.to_thread(self._db.cancel, parts[0])
            assert job is not None
            return _json(await self._state(job), status=202)
        if len(parts) == 2 and parts[1] == "retry" and method == "POST":
            job = await self._own(parts[0], grant)
            if job.status not in {"failed", "cancelled"}:
                raise Conflict(f"job {job.id} is {job.status}; only a failed (dead-letter) or cancelled job can be "
                               f"re-driven", status=409)
            grant.require_function(job.function)
            again = await asyncio.to_thread(self._db.redrive, job.id)
            assert again is not None
            runner.poke(self._store_config)
            return _json(await self._state(again), status=202)
        raise NotFound(f"no jobs route {method} {request.url.path}: POST /jobs/<function>, GET or DELETE /jobs/<id>, "
                       f"POST /jobs/<id>/retry, GET /jobs", status=404)

    async def _spec(self, name: str) -> FunctionSpec | None:
        cached = self._specs.get(name)
        if cached is not None and time.monotonic() - cached[0] < SPEC_TTL_S:
            return cached[1]
        record = await asyncio.to_thread(self._registry.active, name)
        spec = record.spec if record is not None else None
        self._specs[name] = (time.monotonic(), spec)
        return spec

    async def _spawn(self, name: str, request: Request, grant: Grant) -> Response:
        grant.require_function(name)  # before a byte of the body is read
        spec = await self._spec(name)
        if spec is None or spec.internal:  # an internal function: the same 404 as none, as on its own route
            raise NotFound(f"no function is deployed at '/{name}'; list functions with 'fnctl ls'", status=404)
        query = request.query_params
        retries = int(number_query(query, "retries", spec.retries, 0, 100))
        backoff = number_query(query, "retry_backoff_s", spec.retry_backoff_s, 0, 3600)
        callback = query.get("callback_url") or spec.callback_url
        if callback is not None:
            await self._check_callback(callback)
        version = routing.parse_version(request.headers.get(routing.VERSION_HEADER))
        body = await read_body(request, self.settings.max_body_bytes)
        arguments = _arguments(body)
        job_id = new_job_id()
        idempotency = request.headers.get("idempotency-key")
        if idempotency is not None:
            if not 1 <= len(idempotency) <= 200:
                raise BadRequest("the Idempotency-Key header must be 1 to 200 characters", status=400)
            digest = hashlib.sha256(f"{grant.key_id}\0{name}\0{idempotency}".encode()).hexdigest()[:24]
            job_id = f"job-k{digest}"
            earlier = await asyncio.to_thread(self._db.get, job_id)
            if earlier is not None:  # a retried POST: the job the first one made, whatever this body holds
                return await self._accepted(earlier, name, created=False)
        unfinished = await self._unfinished_of(grant.key_id)
        if unfinished >= self.settings.max_unfinished_per_key:
            raise TooManyRequests(f"this API key already has {unfinished:,} queued or running jobs, the most allowed "
                                  f"(FN_MAX_UNFINISHED_JOBS_PER_KEY); wait for some to finish", status=429, retry_after=10)
        blob = None
        if len(arguments) > INLINE_ARGUMENTS_BYTES:
            blob = runner.arguments_key(job_id)
            await asyncio.to_thread(self._blobs.write, blob, arguments.encode())
        job, created = await self._submits.write(NewJob(
            function=name, arguments=None if blob else arguments, arguments_blob=blob, owner=grant.key_id,
            max_attempts=retries + 1, backoff_s=backoff, timeout_s=spec.timeout_s + 30, version=version,
            callback_url=callback, id=job_id))
        if created:
            runner.poke(self._store_config)
        return await self._accepted(job, name, created=created)

    async def _accepted(self, job: Job, name: str, *, created: bool) -> Response:
        if job.function != name:
            raise Conflict(f"the Idempotency-Key was used for job {job.id} of function {job.function!r}", status=409)
        return _json(await self._state(job), status=202 if created else 200, headers={"location": f"/jobs/{job.id}"})

    async def _unfinished_of(self, key_id: str) -> int:
        """The key's queued and running jobs, counted at most once a second (plus those accepted here since): a count
        per request would cost as much as the write it guards."""
        counted_at, count = self._unfinished.get(key_id, (0.0, 0))
        if time.monotonic() - counted_at > 1.0:
            count = await asyncio.to_thread(self._db.unfinished, owner=key_id)
            counted_at = time.monotonic()
            if len(self._unfinished) > 10_000:
                self._unfinished.clear()
        self._unfinished[key_id] = (counted_at, count + 1)
        return count

    async def _check_callback(self, url: str) -> None:
        from fn._platform import check_callback_url

        try:
            check_callback_url(url)
            await asyncio.to_thread(check_target, url, allow_private=self.settings.allow_private,
                                    allow_loopback=self.settings.allow_loopback)
        except TargetUnreachable as exc:  # the receiver's DNS failing for a moment: not the caller's mistake
            raise Unavailable(f"callback_url: {exc}", status=503, retry_after=5) from None
        except (TargetRefused, ValueError) as exc:
            raise BadRequest(f"callback_url: {exc}", status=400) from None

    async def _own(self, job_id: str, grant: Grant) -> Job:
        job = await asyncio.to_thread(self._db.get, job_id)
        if job is None or (job.owner != grant.key_id and not grant.has_role("admin")):
            raise NotFound(f"no job {job_id!r}; list yours with 'fnctl jobs ls'", status=404)
        return job

    async def _wait(self, job_id: str, grant: Grant, wait: float) -> Job:
        job = await self._own(job_id, grant)
        deadline = time.monotonic() + wait
        pause = 0.05
        while not job.ended and time.monotonic() < deadline:
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 1.5, 0.5)
            found = await asyncio.to_thread(self._db.get, job_id)
            if found is None:
                break
            job = found
        return job

    async def _state(self, job: Job) -> dict[str, Any]:
        result = None
        if job.status == "succeeded":
            text = job.result if job.result is not None else (
                (await asyncio.to_thread(self._blobs.read, job.result_blob)).decode() if job.result_blob else "null")
            result = json.loads(text)
        return job.to_json(result)

    async def _list(self, request: Request, grant: Grant) -> Response:
        query = request.query_params
        function = query.get("function") or None
        status = query.get("status") or None
        if status is not None and status not in STATUSES:
            raise BadRequest(f"status={status!r} is not one of {', '.join(STATUSES)}", status=400)
        limit = int(number_query(query, "limit", 100, 1, MAX_LIST))
        owner = None if grant.has_role("admin") else grant.key_id
        jobs = await asyncio.to_thread(self._db.find, function=function, statuses=(status,) if status else (),
                                       owner=owner, limit=limit)
        return _json([job.to_json() for job in jobs])  # results by GET /jobs/<id>: a list stays small


def _arguments(body: bytes) -> str:
    """The body of a call as the JSON text of its keyword arguments: an object, or nothing."""
    if not body.strip():
        return "{}"
    try:
        text = body.decode("utf-8")
        value = json.loads(text)
    except UnicodeDecodeError:
        raise BadRequest("a job's body must be UTF-8 JSON: an object of the function's keyword arguments", status=400) from None
    except RecursionError:
        raise BadRequest("the JSON body is nested too deeply", status=400) from None
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON ({exc}); send a JSON object such as {{\"a\": 1}}", status=400) from None
    if not isinstance(value, dict):
        raise BadRequest(f"the body must be a JSON object mapping parameter names to values, not {type(value).__name__}",
                         status=400)
    return text
