"""How calls leave the process: over HTTP (default), or through Serve handles inside the cluster.

The platform's replica runtime installs a handle transport at start-up, so the same
``fn.call`` / ``fn.acall`` / ``fn.map`` / ``fn.ref`` go straight to the other deployment with no
HTTP hop inside a deployed function. Keeping only this protocol here is what lets ``fn`` stay
free of Ray.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol


class Transport(Protocol):
    def submit(self, name: str, kwargs: dict[str, Any], version: int | None = None) -> Any:
        """Start a call and return its pending result without waiting for it; *version* pins it."""

    def result(self, pending: Any, timeout: float) -> Any:
        """Wait (blocking) for a pending result."""

    async def aresult(self, pending: Any, timeout: float) -> Any:
        """Wait (async) for a pending result."""

    def stream(self, name: str, kwargs: dict[str, Any], version: int | None = None) -> Iterator[Any]:
        """A streaming function's chunks as they come (blocking iteration)."""

    def astream(self, name: str, kwargs: dict[str, Any], version: int | None = None) -> AsyncIterator[Any]:
        """A streaming function's chunks as they come (``async for``)."""


_current: Transport | None = None


def install(transport: Transport | None) -> None:
    global _current
    _current = transport


def current() -> Transport | None:
    return _current
