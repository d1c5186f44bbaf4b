"""How long the platform waits on what it depends on (Ray actors, the Serve controller, the bundle
store, the registry's database), in one place, and the 503 a missed deadline becomes.

A call past its deadline is an outage of the thing called, not a bug: it is answered
``fn.Unavailable`` (503, ``Retry-After``) naming what did not answer, so a client retries and the
control plane's threads are never held by a hung dependency.
"""

from __future__ import annotations

from typing import Any

from fn import Unavailable

# The hub answers from memory: seconds mean it is restarting or its node is gone.
HUB_CALL_TIMEOUT_S = 5.0
# The data plane's reads of the hub sit on a request's path: a short wait, then the last good copy.
HUB_READ_TIMEOUT_S = 2.0
# Serve's controller answers status and replica details from memory too.
SERVE_CALL_TIMEOUT_S = 15.0
# The bundle store (S3 API): a refused or silent endpoint must fail in seconds, a slow upload must not.
STORE_CONNECT_TIMEOUT_S = 3.0
STORE_READ_TIMEOUT_S = 60.0
STORE_MAX_ATTEMPTS = 2  # the first try and one retry (botocore's "standard" mode, with backoff)
# The registry's database (PostgreSQL): connecting, and waiting for a free connection of the pool.
DB_CONNECT_TIMEOUT_S = 5.0
DB_POOL_TIMEOUT_S = 10.0
# What a 503 for an unreachable dependency tells the client to wait before trying again.
RETRY_AFTER_S = 2.0


def unavailable(what: str, problem: str) -> Unavailable:
    """The 503 for *what* (e.g. "the hub actor") not answering."""
    return Unavailable(f"{what} is unreachable: {problem}; try again shortly", status=503, retry_after=RETRY_AFTER_S)


def ray_get(refs: Any, what: str, timeout_s: float = HUB_CALL_TIMEOUT_S) -> Any:
    """``ray.get`` with a deadline: past it, or when the actor died, a 503 naming *what*."""
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError

    try:
        return ray.get(refs, timeout=timeout_s)
    except GetTimeoutError:
        raise unavailable(what, f"no answer within {timeout_s:g} s") from None
    except RayActorError as exc:
        raise unavailable(what, f"its actor died or is restarting ({type(exc).__name__})") from None
