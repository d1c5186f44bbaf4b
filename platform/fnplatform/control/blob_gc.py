"""The store's garbage collection: bundles and artifacts that no version can use any more are deleted.

Bundles are content-addressed and shared (one bundle holds a project's functions; an artifact can be
in many bundles), so an object is deleted only when nothing refers to it: no deploying or ready
version's bundle, no deployed flow's, no kept flow run's (its evidence names it), no deploy under way,
and no artifact of such a bundle's manifest. Versions leave that set when retention collects them
(``FN_KEEP_VERSIONS``) or their function is removed, runs when ``FN_RUN_RETENTION_DAYS`` ends them.

An object is also kept until it is ``min_age_s`` old, and for ``min_age_s`` after a client last asked
whether the store has it or uploaded it (``named``): ``fnctl deploy`` skips what the store has, so an
old object it was told about must still be there when its deploy names it. A deploy that finds its
bundle gone anyway (the control plane restarted in between) is refused with a 404 that says to upload it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from fn import NotFound
from fnplatform.storage.blobs import BundleStore, artifact_key, bundle_key

log = logging.getLogger("fnplatform")

BUNDLES, ARTIFACTS = "bundles/", "artifacts/"
MAX_NAMED = 10_000  # objects a client asked about, remembered at once


@dataclass
class Collected:
    bundles: int = 0
    artifacts: int = 0
    bytes: int = 0


class BlobCollector:
    """One collection pass at a time (``collect``), on a thread of its own (control.server)."""

    def __init__(self, store: BundleStore, in_use: Callable[[], set[str]], artifacts_of: Callable[[str], set[str]],
                 min_age_s: float) -> None:
        self.store = store
        self._in_use = in_use  # the bundles the registry and the flows' records name
        self._artifacts_of = artifacts_of  # a bundle's artifact hashes, from its manifest (NotFound: not stored)
        self.min_age_s = min_age_s
        self._manifests: dict[str, set[str]] = {}  # content-addressed: a bundle's artifacts never change
        self._named: dict[str, float] = {}  # store key -> when a client last asked for it or uploaded it
        self._named_lock = threading.Lock()

    def named(self, key: str, now: float | None = None) -> None:
        """A client asked whether the store has *key*, or uploaded it: keep it for ``min_age_s`` from now."""
        now = time.time() if now is None else now
        with self._named_lock:
            self._named[key] = now
            if len(self._named) > MAX_NAMED:  # bounded: what is past its keep, then the oldest, even under a flood
                kept = sorted(((t, k) for k, t in self._named.items() if now - t < self.min_age_s), reverse=True)
                self._named = {k: t for t, k in kept[:MAX_NAMED // 2]}

    def _kept(self, in_flight: set[str], now: float) -> tuple[set[str], bool]:
        """The keys in use now, and whether every manifest in use was read (else no artifact may go)."""
        bundles = in_flight | self._in_use()  # in flight first: a deploy that ends meanwhile is in the registry
        artifacts: set[str] = set()
        complete = True
        for sha256 in bundles:
            try:
                if sha256 not in self._manifests:
                    self._manifests[sha256] = self._artifacts_of(sha256)
                artifacts |= self._manifests[sha256]
            except NotFound:  # deleted by hand: put back, it needs its artifacts
                log.warning("store collection: bundle %s of a version in use is not in the store", sha256[:12])
                complete = False
            except Exception as exc:  # noqa: BLE001 - unreadable now: collect no artifact this pass
                log.warning("store collection: the manifest of bundle %s could not be read: %s: %s", sha256[:12],
                            type(exc).__name__, exc)
                complete = False
        with self._named_lock:
            named = {k for k, t in self._named.items() if now - t < self.min_age_s}
        return {bundle_key(sha) for sha in bundles} | {artifact_key(sha) for sha in artifacts} | named, complete

    def collect(self, in_flight: Callable[[], set[str]] = set, lock: AbstractContextManager[object] | None = None,
                now: float | None = None) -> Collected:
        """Delete what is unused and older than ``min_age_s``; *in_flight*: the bundles of deploys under way.

        The store is listed and manifests read outside *lock* (held by a deploy while it checks its bundle
        and records its job); under it, what is in use is read again and only then does anything go."""
        now = time.time() if now is None else now
        keep, complete = self._kept(in_flight(), now)
        prefixes = (BUNDLES, ARTIFACTS) if complete else (BUNDLES,)
        candidates = [(key, size) for prefix in prefixes for key, modified, size in self.store.listing(prefix)
                      if key not in keep and now - modified >= self.min_age_s]
        done = Collected()
        if not candidates:
            return done
        with lock if lock is not None else threading.Lock():
            keep, complete = self._kept(in_flight(), now)
            for key, size in candidates:
                if key in keep or (key.startswith(ARTIFACTS) and not complete):
                    continue
                self.store.delete(key)
                done.bytes += size
                if key.startswith(BUNDLES):
                    done.bundles += 1
                    self._manifests.pop(key[len(BUNDLES):].removesuffix(".zip"), None)
                else:
                    done.artifacts += 1
        log.info("store collection: deleted %d bundles and %d artifacts (%.1f MiB) that no version uses, "
                 "unused for over %g hours", done.bundles, done.artifacts, done.bytes / 2**20, self.min_age_s / 3600)
        return done
