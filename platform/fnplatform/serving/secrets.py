"""A replica's secrets: read from the hub at start and put into the process environment before the
user's module is imported, so ``os.environ["KEY"]`` works at import time and in ``setup()``.

The values never travel in Serve's init arguments, Ray's runtime env or the bundle (all of which Ray
keeps and shows); only the secret names are in the spec. The control plane publishes them to the hub
before it deploys a version that names them and again every few seconds, so a hub that restarted
empty is refilled: a replica that does not find them yet retries for a bounded time.
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fn import FunctionSpec

WAIT_S = 30.0  # the control plane re-publishes every 10 s: three chances
_POLL_S = 0.5


class SecretsUnavailable(Exception):
    """The hub did not hand over every secret the function names within the wait."""


async def read(hub: Any, names: tuple[str, ...], wait_s: float) -> dict[str, str]:
    """The environment variables from *names*, in their order (a later secret's key wins)."""
    if hub is None:
        raise SecretsUnavailable(f"cannot reach the platform's hub actor to read secret(s) {', '.join(names)}; "
                                 f"is the control plane running?")
    deadline = time.monotonic() + wait_s
    problem = ""
    while True:
        try:
            found: dict[str, dict[str, Any]] = await hub.read_secrets.remote(list(names))
            missing = [name for name in names if name not in found]
            if not missing:
                break
            problem = (f"secret(s) {', '.join(repr(m) for m in missing)} are not published to the hub: removed "
                       f"('fnctl secrets ls' lists them; set with 'fnctl secrets set NAME KEY=-'), or the control plane "
                       f"has not refilled a restarted hub yet")
        except Exception as exc:  # noqa: BLE001 - the hub restarting: try again until the deadline
            problem = f"the hub did not answer ({type(exc).__name__})"
        if time.monotonic() >= deadline:
            raise SecretsUnavailable(f"{problem}; gave up after {wait_s:g} s")
        await asyncio.sleep(_POLL_S)
    values: dict[str, str] = {}
    for name in names:
        values.update(found[name]["values"])
    return values


def install(spec: FunctionSpec, hub: Any, wait_s: float | None = None) -> list[str]:
    """Put the values of *spec*'s secrets into ``os.environ``; returns the variable names (never values)."""
    if not spec.secrets:
        return []
    wait_s = WAIT_S if wait_s is None else wait_s
    # On a thread of its own: Serve runs the replica's __init__ on its running event loop, where asyncio.run is refused.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fn-secrets") as pool:
        values = pool.submit(asyncio.run, read(hub, spec.secrets, wait_s)).result()
    os.environ.update(values)
    return sorted(values)
