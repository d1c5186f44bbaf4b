"""The store's garbage collection: bundles and artifacts that no version can use any more are deleted.

Bundles are content-addressed and shared (one bundle holds a project's functions; an artifact can be
in many bundles), so an object is deleted only when nothing refers to it: no deploying or ready
version's bundle, no deployed flow's, no kept flow run's (its evidence names it), no deploy under way,
and no artifact of such a bundle's manifest. Versions leave that set when retention collects them
(``FN_KEEP_VERSIONS``) or their function is removed, runs when ``FN_RUN_RETENTION_DAYS`` ends them. An object
is also kept until it is ``min_age_s`` old, so an upload that a deploy has not named yet is never
taken; a deploy that finds its bundle gone says so (404) and ``fnctl deploy`` uploads it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fn import NotFound
from fnplatform.storage.blobs import BundleStore, artifact_key, bundle_key

log = logging.getLogger("fnplatform")

BUNDLES, ARTIFACTS = "bundles/", "artifacts/"


@dataclass
class Collected:
    bundles: int = 0
    artifacts: int = 0
    bytes: int = 0


class BlobCollector:
    """One collection pass at a time (``collect``), from the control plane's housekeeping."""

    def __init__(self, store: BundleStore, in_use: Callable[[], set[str]], artifacts_of: Callable[[str], set[str]],
                 min_age_s: float) -> None:
        self.store = store
        self._in_use = in_use  # the bundles the registry and the flows' records name
        self._artifacts_of = artifacts_of  # a bundle's artifact hashes, from its manifest (NotFound: not stored)
        self.min_age_s = min_age_s
        self._manifests: dict[str, set[str]] = {}  # content-addressed: a bundle's artifacts never change

    def _artifacts(self, sha256: str) -> set[str]:
        if sha256 not in self._manifests:
            self._manifests[sha256] = self._artifacts_of(sha256)
        return self._manifests[sha256]

    def collect(self, in_flight: Iterable[str] = (), now: float | None = None) -> Collected:
        """Delete what is unused and older than ``min_age_s``; *in_flight*: the bundles of deploys under way.
        Any error reading the registry or the store stops the pass before it deletes anything."""
        now = time.time() if now is None else now
        bundles = self._in_use() | set(in_flight)
        artifacts: set[str] = set()
        for sha256 in bundles:
            try:
                artifacts |= self._artifacts(sha256)
            except NotFound:  # deleted by hand: its versions cannot start, and a new deploy uploads it all again
                log.warning("bundle %s of a version in use is not in the store", sha256[:12])
        keep = {bundle_key(sha) for sha in bundles} | {artifact_key(sha) for sha in artifacts}
        old = [(key, size) for prefix in (BUNDLES, ARTIFACTS) for key, modified, size in self.store.listing(prefix)
               if key not in keep and now - modified >= self.min_age_s]
        done = Collected()
        for key, size in old:
            self.store.delete(key)
            done.bytes += size
            if key.startswith(BUNDLES):
                done.bundles += 1
                self._manifests.pop(key[len(BUNDLES):].removesuffix(".zip"), None)
            else:
                done.artifacts += 1
        if old:
            log.info("store collection: deleted %d bundles and %d artifacts (%.1f MiB) that no version uses, "
                     "unused for over %g hours", done.bundles, done.artifacts, done.bytes / 2**20, self.min_age_s / 3600)
        return done
