"""Runs of deployed flows over HTTP: ``run = fn.flows.start("kyc"); run.put("front", jpeg); run.result()``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ._client import function_url, raise_for_response, shared_client
from ._config import Settings, load_settings
from ._errors import RemoteError, Timeout

_LONG_POLL_S = 25.0


class Run:
    """One run of a flow; inputs may be given from different processes, in any order."""

    def __init__(self, flow: str, run_id: str, settings: Settings | None = None) -> None:
        self.flow = flow
        self.id = run_id
        self._settings = settings or load_settings()

    @property
    def url(self) -> str:
        return function_url(self._settings, f"flows/{self.flow}/runs/{self.id}")

    def put(self, name: str, data: bytes | str | Path | Any) -> dict[str, Any]:
        """Give input *name*: bytes (or a file path) go as a raw body, anything else as JSON."""
        if isinstance(data, Path):
            data = data.read_bytes()
        if isinstance(data, bytes | bytearray):
            body, content_type = bytes(data), "application/octet-stream"
        else:
            body, content_type = json.dumps(data).encode(), "application/json"
        response = shared_client(self._settings).put(f"{self.url}/inputs/{name}", content=body,
                                                     headers={"content-type": content_type})
        raise_for_response(response)
        state: dict[str, Any] = response.json()
        return state

    def close_inputs(self) -> dict[str, Any]:
        """Say no more inputs will come: steps that take an optional input never given run with None for it.
        Returns the run's state; closing again, or after the run ended, is no error. Raises Conflict naming the
        required inputs still missing (the run stays open), and a later put raises Conflict."""
        response = shared_client(self._settings).post(f"{self.url}/close")
        raise_for_response(response)
        state: dict[str, Any] = response.json()
        return state

    def evidence(self) -> dict[str, Any]:
        """What decided the run, for an audit (admin keys only): each input's SHA-256 and size, every step's
        result with the version of the function that produced it and when it ran, the bundle, the output."""
        response = shared_client(self._settings).get(f"{self.url}/evidence")
        raise_for_response(response)
        found: dict[str, Any] = response.json()
        return found

    def status(self, wait: float = 0) -> dict[str, Any]:
        """The run's state: ``{"id", "status", "steps", "output" | "error"}``; *wait* long-polls until it ends."""
        response = shared_client(self._settings).get(self.url, params={"wait": wait} if wait else None,
                                                     timeout=wait + 30)
        raise_for_response(response)
        state: dict[str, Any] = response.json()
        return state

    def result(self, timeout: float = 600) -> Any:
        """Wait for the output; raises RemoteError if the run failed, Timeout if it is still going (a run whose
        optional inputs were not given waits for them until its inputs are closed: ``close_inputs()``)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            state = self.status(wait=max(0.0, min(_LONG_POLL_S, remaining)))
            if state["status"] == "succeeded":
                return state["output"]
            if state["status"] == "failed":
                error = state.get("error") or {}
                raise RemoteError(str(error.get("message", "the run failed")), status=500,
                                  error_type=error.get("type"), request_id=self.id, detail=state)
            if time.monotonic() >= deadline:
                raise Timeout(f"run {self.id} of {self.flow} is still {state['status']} after {timeout:g} s"
                              + _missing_note(state), status=504)


def _missing_note(state: dict[str, Any]) -> str:
    """Why a run may be waiting: inputs not given, and whether closing its inputs would let it go on."""
    missing = [name for name, given in (state.get("inputs") or {}).items() if not given]
    optional = set(state.get("optional") or ())
    if not missing or state.get("inputs_closed"):
        return ""
    if set(missing) <= optional:
        return (f"; optional input(s) {', '.join(missing)} not given and the inputs not closed: call "
                f"run.close_inputs() to finish without them")
    return f"; input(s) {', '.join(missing)} not given yet"


# Set by fn.testing.local(): runs then happen in this process.
_local: Any = None


def install_local(platform: Any) -> None:
    global _local
    _local = platform


def start(flow: str, *, versions: dict[str, int] | None = None) -> Run:
    """Start a run of the deployed flow *flow*; *versions* pins functions of its steps to versions
    (``{"kyc-decide": 3}``), whatever their traffic split says."""
    if _local is not None:
        return _local.start(flow)  # type: ignore[no-any-return]
    settings = load_settings()
    response = shared_client(settings).post(function_url(settings, f"flows/{flow}/runs"),
                                            json={"versions": versions} if versions else None)
    raise_for_response(response)
    return Run(flow, str(response.json()["id"]), settings)


def run(flow: str, run_id: str) -> Run:
    """An existing run, e.g. to give it an input from another process."""
    if _local is not None:
        return _local.run(flow, run_id)  # type: ignore[no-any-return]
    return Run(flow, run_id)


__all__ = ["Run", "run", "start"]
