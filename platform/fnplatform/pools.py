"""Node pools: how a pool name becomes the Ray custom resource that pins replicas to its nodes.

A pool is a Ray custom resource declared on the nodes of that pool (``ray start --resources``,
KubeRay's ``rayStartParams.resources``). Names use underscores because Kubernetes labels and
KubeRay resource keys forbid ``:``.
"""

from __future__ import annotations

POOL_RESOURCE_PREFIX = "pool_"
DEFAULT_POOLS: tuple[str, ...] = ("cpu", "gpu", "api")
# Each node of a pool declares this much of the pool resource; a replica asks for
# REPLICA_POOL_SHARE of it, so a node never runs out of "pool" before it runs out of CPU.
NODE_POOL_CAPACITY = 1000
REPLICA_POOL_SHARE = 0.001


def pool_resource(pool: str) -> str:
    """The Ray custom resource name for *pool*, e.g. ``pool_gpu`` for ``gpu``."""
    return POOL_RESOURCE_PREFIX + pool.replace("-", "_")


__all__ = ["DEFAULT_POOLS", "NODE_POOL_CAPACITY", "POOL_RESOURCE_PREFIX", "REPLICA_POOL_SHARE", "pool_resource"]
