"""``fn.Dict`` / ``fn.Queue`` inside the cluster: one call of the state server actor per operation, no HTTP.

Replicas install it at start (``Boot``); the control plane's ``/v1/state`` API uses it too. The server itself
(``fnplatform.state``) is started by the control plane, so this side only looks it up by name: while it is not
there (the platform starting, or Ray restarting it) an operation answers 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from fn import FnError, Timeout, Unavailable

from .hub import NAMESPACE

STATE_NAME = "fn-state"
CALL_TIMEOUT_S = 30.0  # beyond the longest wait a call asks of the server (the SDK's MAX_WAIT_S, 20 s)

NOT_RUNNING = ("the shared-state server is not running yet (the control plane starts it, and Ray restarts it when "
               "its process dies); retry in a moment")


class StateClient:
    """The SDK's state backend in a Ray process."""

    def __init__(self) -> None:
        self._handle: Any = None
        self._lock = threading.Lock()

    def _actor(self) -> Any:
        with self._lock:
            if self._handle is None:
                import ray

                try:
                    self._handle = ray.get_actor(STATE_NAME, namespace=NAMESPACE)
                except ValueError:
                    raise Unavailable(NOT_RUNNING, status=503, retry_after=1) from None
            return self._handle

    def _forget(self) -> None:
        with self._lock:
            self._handle = None

    def op(self, method: str, *args: Any) -> Any:
        import ray

        ref = getattr(self._actor(), method).remote(*args)
        try:
            return ray.get(ref, timeout=CALL_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - every failure becomes the fn error it stands for
            raise self._translated(exc) from None

    async def aop(self, method: str, *args: Any) -> Any:
        ref = getattr(self._actor(), method).remote(*args)
        try:
            return await asyncio.wait_for(ref, CALL_TIMEOUT_S)
        except TimeoutError:
            raise Timeout(f"the shared-state server did not answer {method} within {CALL_TIMEOUT_S:g} s",
                          status=504) from None
        except Exception as exc:  # noqa: BLE001
            raise self._translated(exc) from None

    def _translated(self, exc: BaseException) -> Exception:
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        if isinstance(exc, RayTaskError) and isinstance(exc.cause, FnError):
            return exc.cause
        if isinstance(exc, FnError):
            return exc
        if isinstance(exc, GetTimeoutError):
            return Timeout(f"the shared-state server did not answer within {CALL_TIMEOUT_S:g} s", status=504)
        if isinstance(exc, RayActorError):
            self._forget()  # restarted or replaced: looked up again on the next call
            return Unavailable(f"the shared-state server went away mid-call ({type(exc).__name__}); a change may or "
                               f"may not have been stored; retry in a moment", status=503, retry_after=1)
        return Unavailable(f"the shared-state server failed: {type(exc).__name__}: {exc}", status=503, retry_after=1)
