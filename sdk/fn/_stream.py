"""Streaming calls: ``for chunk in fn.stream("generate", prompt=...)`` (or ``async for``) gets a generator function's
chunks as they are produced, over HTTP (Server-Sent Events) or, inside the cluster, through Serve's streaming
handles. A ``Stream`` not yet iterated can be passed as an argument to another function, which then reads it as
it is produced, straight from the function that produces it (see ``fn.ref(...).stream``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from ._errors import Timeout, Unavailable, status_error
from ._transport import current as current_transport

EVENTS = "text/event-stream"


@dataclass(frozen=True)
class StreamSource:
    """What a stream argument is between functions: the call that produces it, started by whoever reads it."""

    function: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    version: int | None = None


class Stream:
    """The chunks of one streaming call; iterate it once (``for`` or ``async for``), or pass it to another function."""

    def __init__(self, function: str, kwargs: dict[str, Any], *, version: int | None = None, settings: Any = None,
                 timeout: float | None = None) -> None:
        self.source = StreamSource(function, dict(kwargs), version)
        self._settings = settings
        self._timeout = timeout
        self.started = False

    def _start(self) -> None:
        if self.started:
            raise RuntimeError(f"this stream of {self.source.function} was already read; a stream is read once: "
                               f"call fn.stream(...) again for another")
        self.started = True

    def __iter__(self) -> Iterator[Any]:
        self._start()
        transport = current_transport()
        if transport is not None:
            yield from transport.stream(self.source.function, self.source.kwargs, self.source.version)
            return
        yield from self._http()

    async def __aiter__(self) -> AsyncIterator[Any]:
        self._start()
        transport = current_transport()
        if transport is not None:
            async for chunk in transport.astream(self.source.function, self.source.kwargs, self.source.version):
                yield chunk
            return
        async for chunk in self._ahttp():
            yield chunk

    def _request(self) -> tuple[Any, str, dict[str, str]]:
        from ._client import function_url
        from ._config import load_settings

        settings = self._settings or load_settings()
        headers = {"Accept": EVENTS, "Authorization": f"Bearer {settings.api_key}"}
        if self.source.version is not None:
            headers["Fn-Version"] = str(self.source.version)
        return settings, function_url(settings, self.source.function), headers

    def _http(self) -> Iterator[Any]:
        from ._client import DEFAULT_TIMEOUT_S, raise_for_response

        _, url, headers = self._request()
        timeout = httpx.Timeout(self._timeout or DEFAULT_TIMEOUT_S, connect=10.0)
        try:
            with httpx.Client(timeout=timeout) as client, client.stream("POST", url, json=self.source.kwargs,
                                                                         headers=headers) as response:
                if not response.is_success:
                    response.read()
                    raise_for_response(response)
                yield from _events(response.iter_lines(), self.source.function)
        except httpx.TimeoutException as exc:
            raise Timeout(f"the stream of {self.source.function} stalled: {exc}", status=504) from None
        except httpx.TransportError as exc:
            raise Unavailable(f"the stream of {self.source.function} was cut off: {exc}", status=503) from None

    async def _ahttp(self) -> AsyncIterator[Any]:
        from ._client import DEFAULT_TIMEOUT_S, raise_for_response

        _, url, headers = self._request()
        timeout = httpx.Timeout(self._timeout or DEFAULT_TIMEOUT_S, connect=10.0)
        try:
            async with httpx.AsyncClient(timeout=timeout) as client, client.stream(
                    "POST", url, json=self.source.kwargs, headers=headers) as response:
                if not response.is_success:
                    await response.aread()
                    raise_for_response(response)
                parser = _Parser(self.source.function)
                async for line in response.aiter_lines():
                    for chunk in parser.feed(line):
                        yield chunk
                parser.close()
        except httpx.TimeoutException as exc:
            raise Timeout(f"the stream of {self.source.function} stalled: {exc}", status=504) from None
        except httpx.TransportError as exc:
            raise Unavailable(f"the stream of {self.source.function} was cut off: {exc}", status=503) from None


class _Parser:
    """Server-Sent Events as fn sends them: data events are chunks, then ``end``, or ``error`` with the error."""

    def __init__(self, function: str) -> None:
        self.function = function
        self.event = "message"
        self.data: list[str] = []
        self.ended = False

    def feed(self, line: str) -> list[Any]:
        if line.startswith("event:"):
            self.event = line[6:].strip()
        elif line.startswith("data:"):
            self.data.append(line[5:].lstrip())
        elif not line and self.data:
            text, event = "\n".join(self.data), self.event
            self.data, self.event = [], "message"
            if event == "end":
                self.ended = True
            elif event == "error":
                error = json.loads(text)
                raise status_error(int(error.get("status") or 500), str(error.get("message")),
                                   request_id=error.get("request_id"), error_type=error.get("type"))
            else:
                return [json.loads(text)]
        return []

    def close(self) -> None:
        if not self.ended:
            raise Unavailable(f"the stream of {self.function} ended before its last chunk (the connection closed)",
                              status=503)


def _events(lines: Iterator[str], function: str) -> Iterator[Any]:
    parser = _Parser(function)
    for line in lines:
        yield from parser.feed(line)
    parser.close()
