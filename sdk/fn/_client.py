"""Calling deployed functions over HTTP: ``fn.call``, ``fn.acall``, ``fn.map``, ``fn.ref``."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import Any

import httpx

from ._config import Settings, load_settings
from ._errors import ClientError, FnError, Timeout, Unavailable, status_error
from ._jobs import Job, spawn_job, spawn_many
from ._retry import asend, send
from ._stream import Stream
from ._transport import Transport
from ._transport import current as current_transport

DEFAULT_TIMEOUT_S = 330.0  # a little over the default timeout_s, so the server's 504 arrives first

_lock = threading.Lock()
_sync_clients: dict[Settings, httpx.Client] = {}
_http_urls: dict[Settings, str] = {}


def function_url(settings: Settings, name: str) -> str:
    if settings.http_url:
        return f"{settings.http_url}/{name}"
    with _lock:
        base = _http_urls.get(settings)
    if base is None:
        info = _request_json(shared_client(settings), "GET", f"{settings.api_url}/v1/info", settings)
        base = str(info["http_url"]).rstrip("/")
        with _lock:
            _http_urls[settings] = base
    return f"{base}/{name}"


def shared_client(settings: Settings) -> httpx.Client:
    """The process-wide pooled client for *settings* (the CLI reuses it)."""
    with _lock:
        client = _sync_clients.get(settings)
        if client is None:
            client = httpx.Client(headers={"Authorization": f"Bearer {settings.api_key}"}, timeout=DEFAULT_TIMEOUT_S)
            _sync_clients[settings] = client
        return client


def raise_for_response(response: httpx.Response) -> None:
    """Turn a platform error response into the matching ``fn`` error."""
    if response.is_success:
        return
    request_id = response.headers.get("x-request-id")
    message, error_type, detail = response.text.strip() or response.reason_phrase, None, None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        message = str(error.get("message", message))
        error_type = error.get("type")
        detail = error.get("detail")
        request_id = error.get("request_id", request_id)
    raise status_error(response.status_code, message, request_id=request_id, error_type=error_type, detail=detail,
                       retry_after=_retry_after(response.headers.get("retry-after")))


def _retry_after(header: str | None) -> float | None:
    try:
        seconds = float(header) if header else None
    except ValueError:  # an HTTP date: not sent by fn
        return None
    return seconds if seconds is not None and seconds >= 0 and seconds == seconds else None


def _request_json(client: httpx.Client, method: str, url: str, settings: Settings, **kwargs: Any) -> Any:
    try:
        response = send(lambda: client.request(method, url, **kwargs))
    except httpx.TimeoutException as exc:
        raise Timeout(f"{method} {url} timed out: {exc}", status=504) from None
    except httpx.TransportError as exc:
        raise Unavailable(f"cannot reach the platform at {url}: {exc}; is it running ('fnctl up')?", status=503) from None
    raise_for_response(response)
    return decoded(response)


def decoded(response: httpx.Response) -> Any:
    """A successful answer's value; a streaming function's JSON lines as the list of its chunks."""
    if not response.content:
        return None
    if response.headers.get("content-type", "").startswith("application/x-ndjson"):
        chunks = [json.loads(line) for line in response.text.splitlines() if line.strip()]
        last = chunks[-1] if chunks else None
        if isinstance(last, dict) and set(last) == {"error"} and isinstance(last["error"], dict):  # failed mid-stream
            error = last["error"]
            raise status_error(int(error.get("status") or 500), str(error.get("message")),
                               request_id=error.get("request_id"), error_type=error.get("type"))
        return chunks
    return response.json()


class Pending:
    """A call in flight: ``.result()`` waits for it, ``await`` it, or pass it as an argument to another
    call (inside the cluster Serve hands it on without the caller waiting)."""

    def __init__(self, ref: Ref, inner: Any, transport: Transport | None) -> None:
        self._ref = ref
        self.inner = inner  # a Serve DeploymentResponse, or a concurrent.futures.Future over HTTP
        self._transport = transport

    def result(self, timeout: float | None = None) -> Any:
        limit = timeout or self._ref.timeout
        if self._transport is not None:
            return self._transport.result(self.inner, limit)
        try:
            return self.inner.result(timeout=limit)
        except FuturesTimeout:
            raise Timeout(f"{self._ref.name} did not answer within {limit:g} s", status=504) from None

    def __await__(self) -> Any:
        if self._transport is not None:
            return self._transport.aresult(self.inner, self._ref.timeout).__await__()
        return asyncio.wrap_future(self.inner).__await__()


_pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="fn-remote")


def _resolved(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Over HTTP, pending arguments must be waited for before they can be sent; a stream cannot be sent."""
    for key, value in kwargs.items():
        if isinstance(value, Stream):
            raise TypeError(f"argument {key!r} is a stream: a stream can be passed to another function only inside the "
                            f"cluster (in a deployed function); here, read it and pass its chunks as a list")
    return {key: value.result() if isinstance(value, Pending) else value for key, value in kwargs.items()}


class Ref:
    """A reusable reference to a deployed function: ``fn.ref("add").call(a=1, b=2)``."""

    def __init__(self, name: str, *, timeout: float | None = None, settings: Settings | None = None,
                 version: int | None = None, callback_url: str | None = None, retries: int | None = None,
                 retry_backoff_s: float | None = None) -> None:
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise ValueError(f"version must be a version number (1, 2, ...) as 'fnctl versions {name}' lists, "
                             f"not {version!r}")
        self.name = name
        self.timeout = timeout or DEFAULT_TIMEOUT_S
        self.version = version  # None: the platform chooses (the active version, or by the traffic split)
        self._settings = settings
        # a job's own options (spawn); None: the function's (its decorator's)
        self.job_options = {"callback_url": callback_url, "retries": retries, "retry_backoff_s": retry_backoff_s}

    @property
    def _headers(self) -> dict[str, str]:
        return {"Fn-Version": str(self.version)} if self.version is not None else {}

    def _submit(self, transport: Transport, kwargs: dict[str, Any]) -> Any:
        if self.version is None:
            return transport.submit(self.name, kwargs)
        return transport.submit(self.name, kwargs, version=self.version)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def remote(self, **kwargs: Any) -> Pending:
        """Start a call and return at once; see ``Pending``."""
        transport = current_transport()
        if transport is not None:
            return Pending(self, self._submit(transport, kwargs), transport)
        return Pending(self, _pool.submit(self._http_call, kwargs), None)

    def call(self, **kwargs: Any) -> Any:
        """Call the function with keyword arguments and return its result."""
        transport = current_transport()
        if transport is not None:
            return transport.result(self._submit(transport, kwargs), self.timeout)
        return self._http_call(kwargs)

    def _http_call(self, kwargs: dict[str, Any]) -> Any:
        settings = self.settings
        url = function_url(settings, self.name)
        return _request_json(shared_client(settings), "POST", url, settings, json=_resolved(kwargs), timeout=self.timeout,
                             headers=self._headers)

    async def acall(self, **kwargs: Any) -> Any:
        """``await`` the function's result without blocking the event loop."""
        transport = current_transport()
        if transport is not None:
            return await transport.aresult(self._submit(transport, kwargs), self.timeout)
        settings = self.settings
        url = function_url(settings, self.name) if settings.http_url else await asyncio.to_thread(
            function_url, settings, self.name
        )
        headers = {"Authorization": f"Bearer {settings.api_key}", **self._headers}
        arguments = {k: await v if isinstance(v, Pending) else v for k, v in kwargs.items()}
        try:
            # A client per call: a pooled one would outlive the event loop that asyncio.run() closes.
            async with httpx.AsyncClient(headers=headers, timeout=self.timeout) as client:
                response = await asend(lambda: client.post(url, json=arguments))
        except httpx.TimeoutException as exc:
            raise Timeout(f"POST {url} timed out: {exc}", status=504) from None
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach {url}: {exc}", status=503) from None
        raise_for_response(response)
        return decoded(response)

    def stream(self, **kwargs: Any) -> Stream:
        """The chunks of a generator function as it yields them: ``for chunk in fn.ref("generate").stream(prompt=p)``
        (or ``async for``). Inside a function, an unread stream may be passed as an argument to another function,
        which reads it while it is produced."""
        return Stream(self.name, kwargs, version=self.version, settings=self._settings, timeout=self.timeout)

    def spawn(self, **kwargs: Any) -> Job:
        """Queue the call as a job and return at once: ``job.result()`` waits for it (see ``fn.Job``)."""
        return spawn_job(self.name, _resolved(kwargs), settings=self.settings, version=self.version,
                         options=self.job_options)

    def spawn_map(self, items: Iterable[Mapping[str, Any]], *, concurrency: int = 16) -> list[Job]:
        """Queue one job per mapping of keyword arguments; the jobs keep input order."""
        return spawn_many(self.name, items, settings=self.settings, version=self.version, options=self.job_options,
                          concurrency=concurrency)

    def map(
        self, items: Iterable[Mapping[str, Any]], *, concurrency: int = 16, return_exceptions: bool = False
    ) -> list[Any]:
        """Call the function once per mapping of keyword arguments, concurrently; results keep input order."""
        if concurrency < 1:
            raise ValueError(f"concurrency ({concurrency}) must be >= 1")
        work = [dict(item) for item in items]

        def one(kwargs: dict[str, Any]) -> Any:
            try:
                return self.call(**kwargs)
            except FnError as exc:
                if return_exceptions:
                    return exc
                raise

        if current_transport() is not None:  # Serve queues and spreads them; no threads needed to wait
            results: list[Any] = []
            pending = [self.remote(**kwargs) for kwargs in work]
            for item in pending:
                try:
                    results.append(item.result())
                except FnError as exc:
                    if not return_exceptions:
                        raise
                    results.append(exc)
            return results
        with ThreadPoolExecutor(max_workers=min(concurrency, max(len(work), 1))) as pool:
            return list(pool.map(one, work))


def ref(name: str, *, timeout: float | None = None, version: int | None = None, callback_url: str | None = None,
        retries: int | None = None, retry_backoff_s: float | None = None) -> Ref:
    """A reusable reference to the deployed function *name*; with *version*, every call goes to that version
    (started from zero if needed) whatever the traffic split says. *callback_url*, *retries* and *retry_backoff_s*
    apply to its jobs (``.spawn``) instead of the function's own."""
    return Ref(name, timeout=timeout, version=version, callback_url=callback_url, retries=retries,
               retry_backoff_s=retry_backoff_s)


def call(name: str, /, **kwargs: Any) -> Any:
    """Call the deployed function *name* with keyword arguments: ``fn.call("add", a=2, b=3)``."""
    return Ref(name).call(**kwargs)


async def acall(name: str, /, **kwargs: Any) -> Any:
    """Async ``fn.call``: ``await fn.acall("add", a=2, b=3)``."""
    return await Ref(name).acall(**kwargs)


def stream(name: str, /, **kwargs: Any) -> Stream:
    """Stream a generator function's chunks: ``for token in fn.stream("generate", prompt="hi"): print(token)``."""
    return Ref(name).stream(**kwargs)


def spawn(name: str, /, **kwargs: Any) -> Job:
    """Queue a call of *name* as a job and return at once: ``job = fn.spawn("ocr", url=...); job.result()``."""
    return Ref(name).spawn(**kwargs)


def spawn_map(name: str, items: Iterable[Mapping[str, Any]], /, *, concurrency: int = 16) -> list[Job]:
    """Queue one job of *name* per mapping of keyword arguments: ``fn.spawn_map("ocr", [{"url": u} for u in urls])``."""
    return Ref(name).spawn_map(items, concurrency=concurrency)


def map(name: str, items: Iterable[Mapping[str, Any]], /, *, concurrency: int = 16) -> list[Any]:  # noqa: A001
    """Call *name* once per mapping of keyword arguments, concurrently: ``fn.map("add", [{"a": 1, "b": 2}])``."""
    return Ref(name).map(items, concurrency=concurrency)


__all__ = ["ClientError", "Pending", "Ref", "acall", "call", "map", "raise_for_response", "ref", "spawn", "spawn_map", "stream"]
