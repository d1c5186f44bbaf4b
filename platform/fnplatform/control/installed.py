"""Requirement sets a pool's environment already meets, asked of a node of the pool once per set (control plane).

Such a function runs without a pip virtualenv (bundles/requirements.py says why that is the same environment);
the deployer asks before it checks or applies versions, so a restarted control plane asks again before it
re-applies the registry and Serve sees the same options as before.
"""

from __future__ import annotations

import logging
from typing import Any

from fn import FunctionSpec
from fnplatform.bundles.requirements import unsatisfied
from fnplatform.pools import REPLICA_POOL_SHARE, pool_resource
from fnplatform.storage.registry import VersionRecord

log = logging.getLogger("fnplatform")
REQUIREMENTS_CHECK_S = 30.0


class InstalledRequirements:
    def __init__(self) -> None:
        self._met: dict[tuple[str, tuple[str, ...]], bool] = {}  # (pool, requirements) -> met by the pool's image

    def needs_pip(self, spec: FunctionSpec) -> bool:
        return bool(spec.requirements) and not self._met.get((spec.pool, spec.requirements), False)

    def check(self, versions: list[VersionRecord]) -> None:
        """Ask a node of each pool whether its environment already meets each requirement set not asked about yet.
        A pool that does not answer in time keeps pip (asked again next deploy): a cluster still adding a node of
        that pool must not hold the deploy."""
        import ray

        sets = {(v.spec.pool, v.spec.requirements) for v in versions if v.spec.requirements}
        pending: dict[Any, tuple[str, tuple[str, ...]]] = {}
        for pool, requirements in sets - self._met.keys():
            task = ray.remote(num_cpus=0, max_retries=0, resources={pool_resource(pool): REPLICA_POOL_SHARE})(unsatisfied)
            pending[task.remote(list(requirements))] = (pool, requirements)
        if not pending:
            return
        ready, late = ray.wait(list(pending), num_returns=len(pending), timeout=REQUIREMENTS_CHECK_S)
        for ref in ready:
            pool, requirements = pending[ref]
            try:
                missing = ray.get(ref)
            except Exception:  # undecided: pip decides, as before
                log.warning("could not check requirements %s on pool %s", requirements, pool, exc_info=True)
                continue
            self._met[pending[ref]] = not missing
            log.info("pool %s: requirements %s %s", pool, ", ".join(requirements),
                     "already installed: no pip environment" if not missing else f"need pip for {', '.join(missing)}")
        for ref in late:
            ray.cancel(ref, force=True)


__all__ = ["InstalledRequirements"]
