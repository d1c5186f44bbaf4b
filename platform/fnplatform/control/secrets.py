"""Secrets in the control plane: set, list and remove them, check the ones a deploy names, hand their
values to the hub for the replicas, and roll the functions that use a secret when it changes.

Values leave the encrypted store only towards the hub (``publish``); every answer of this module is
names, keys and revisions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from fn import Conflict, FunctionSpec, NotFound, Unavailable
from fnplatform.deadlines import RETRY_AFTER_S
from fnplatform.storage.registry import Registry, VersionRecord
from fnplatform.storage.secrets import SecretDecryptError, SecretStore

log = logging.getLogger("fnplatform")


class _Hub(Protocol):
    def put_secrets(self, secrets: dict[str, dict[str, Any]]) -> None: ...


class _Deployer(Protocol):
    def apply(self, versions: list[VersionRecord], wait: bool = True) -> dict[str, str | None]: ...


def _plural(items: list[str], one: str, many: str) -> str:
    return f"{one if len(items) == 1 else many} {', '.join(repr(i) for i in items)}"


class Secrets:
    def __init__(self, store: SecretStore, registry: Registry, hub: _Hub, deployer: _Deployer,
                 deploying: Callable[[], set[str]] = set) -> None:
        self.store = store
        self.registry = registry
        self.hub = hub
        self.deployer = deployer
        self._deploying = deploying  # the functions a deploy job is deploying now
        self._held: dict[str, frozenset[str]] = {}  # deploy job id -> the secrets its new versions name
        self._lock = threading.Lock()
        self._publish_lock = threading.Lock()  # one publish at a time, so an older view never lands last

    # what the API shows ------------------------------------------------------------------------
    def users(self, name: str, actives: list[VersionRecord] | None = None) -> list[VersionRecord]:
        return [v for v in (self.registry.actives() if actives is None else actives) if name in v.spec.secrets]

    def overview(self) -> list[dict[str, Any]]:
        actives = self.registry.actives()
        return [{**record.to_json(), "used_by": [v.function for v in self.users(record.name, actives)]}
                for record in self.store.records()]

    def describe(self, name: str) -> dict[str, Any]:
        record = self.store.record(name)
        if record is None:
            raise NotFound(f"no secret named {name!r}; list secrets with 'fnctl secrets ls'", status=404)
        return {**record.to_json(), "used_by": [v.function for v in self.users(name)]}

    # changes -----------------------------------------------------------------------------------
    def put(self, name: str, values: dict[str, str]) -> dict[str, Any]:
        """Create or replace *name*; the functions that use it restart with the new values (a rolling update)."""
        users = self.users(name)
        busy = sorted({v.function for v in users} & self._deploying())
        if busy:  # its deploy applies the active version it read before: a roll now could be undone by it, or undo it
            raise Conflict(f"a deploy of {', '.join(busy)} (which uses secret {name!r}) is running; set the secret "
                           f"when it ends", status=409)
        keys = {r.name: r.keys for r in self.store.records()} | {name: tuple(values)}
        for version in users:
            clashes = self._clashes(version.spec, keys)
            if clashes:
                raise Conflict(f"secret {name!r} cannot have these keys: function {version.function!r} uses it, and "
                               f"{'; '.join(clashes)}", status=409)
        record, changed = self.store.put(name, values)
        # Also when unchanged: a set that failed after storing (the hub down) is completed by running it again.
        # Re-applying a version whose revision Serve already runs restarts nothing.
        self._publish_now()  # the new values are in the hub before a new replica asks for them
        if users:
            try:  # the revision is in each one's Serve version: Serve replaces their replicas
                self.deployer.apply(users, wait=False)
            except Exception as exc:  # noqa: BLE001 - stored; running the same command again finishes the job
                raise Unavailable(f"secret {name!r} is stored (revision {record.revision}) but Serve did not take the "
                                  f"restart of {', '.join(v.function for v in users)} ({type(exc).__name__}: {exc}); "
                                  f"run the same 'fnctl secrets set' again", status=503) from None
        rolled = [v.function for v in users] if changed else []
        log.info("secret %s set: revision %d, keys %s%s", name, record.revision, ", ".join(record.keys),
                 f"; restarting {', '.join(rolled)}" if rolled else "")
        return {**record.to_json(), "changed": changed, "used_by": [v.function for v in users], "restarting": rolled}

    def remove(self, name: str, force: bool = False) -> dict[str, Any]:
        if self.store.record(name) is None:
            raise NotFound(f"no secret named {name!r}; list secrets with 'fnctl secrets ls'", status=404)
        users = [v.function for v in self.users(name)]
        if users and not force:
            raise Conflict(f"secret {name!r} is used by {_plural(users, 'function', 'functions')}; deploy them without "
                           f"it first, or remove it anyway with 'fnctl secrets rm {name} --force' (their running "
                           f"replicas keep the values; new ones then fail to start)", status=409, detail={"used_by": users})
        self.store.delete(name)
        self._publish_now()
        log.info("secret %s removed%s", name, f" (still named by {', '.join(users)})" if users else "")
        return {"removed": name, "used_by": users}

    # deploys -----------------------------------------------------------------------------------
    def check(self, specs: list[FunctionSpec]) -> None:
        """Refuse a deploy that names a secret that does not exist, or whose keys collide."""
        named = {s for spec in specs for s in spec.secrets}
        records = {r.name: r for r in self.store.records() if r.name in named}
        for spec in specs:
            missing = [s for s in spec.secrets if s not in records]
            if missing:
                raise NotFound(f"{spec.name}: {_plural(missing, 'secret', 'secrets')} "
                               f"{'does' if len(missing) == 1 else 'do'} not exist; create "
                               f"{'it' if len(missing) == 1 else 'them'} with 'fnctl secrets set {missing[0]} KEY=-' "
                               f"(or --from-env-file FILE), or remove it from secrets=[...]", status=404)
            clashes = self._clashes(spec, {s: records[s].keys for s in spec.secrets})
            if clashes:
                raise Conflict(f"{spec.name}: {'; '.join(clashes)}", status=409)

    @staticmethod
    def _clashes(spec: FunctionSpec, keys: dict[str, tuple[str, ...]]) -> list[str]:
        """Keys set twice for one function (by env and a secret, or by two secrets): which value wins would be a guess."""
        owner = {key: "env" for key in spec.env}
        clashes = []
        for name in spec.secrets:
            for key in keys.get(name, ()):
                if key in owner:
                    clashes.append(f"{key} is set by both {owner[key]} and secret {name!r}")
                owner[key] = f"secret {name!r}"
        return clashes

    def hold(self, job_id: str, specs: list[FunctionSpec]) -> None:
        """Keep a deploying job's secrets published until it ends (its load check and replicas read them)."""
        names = frozenset(s for spec in specs for s in spec.secrets)
        if not names:
            return
        with self._lock:
            self._held[job_id] = names
        try:
            self._publish_now()
        except Unavailable:
            self.release(job_id)
            raise

    def release(self, job_id: str) -> None:
        with self._lock:
            self._held.pop(job_id, None)

    def _publish_now(self) -> None:
        try:
            self.publish()
        except Exception as exc:  # noqa: BLE001 - the type only: a Ray error's text is not worth the risk of quoting
            raise Unavailable(f"cannot hand the secrets to the hub ({type(exc).__name__}); is Ray running? "
                              f"Try again in a few seconds", status=503, retry_after=RETRY_AFTER_S) from None

    def publish(self, actives: Iterable[VersionRecord] | None = None) -> None:
        """Hand the hub the values of every secret a deployed or deploying function names, and only those."""
        with self._publish_lock:
            with self._lock:
                wanted = {s for names in self._held.values() for s in names}
            wanted |= {s for v in (self.registry.actives() if actives is None else actives) for s in v.spec.secrets}
            payload: dict[str, dict[str, Any]] = {}
            revisions = self.store.revisions(wanted)
            for name in sorted(wanted):
                try:
                    values = self.store.values([name]).get(name)
                except SecretDecryptError as exc:  # one bad secret must not keep the others from the hub
                    log.warning("not publishing secret %s: %s", name, exc)
                    continue
                if values is not None:
                    payload[name] = {"revision": revisions.get(name, 0), "values": values}
            self.hub.put_secrets(payload)
