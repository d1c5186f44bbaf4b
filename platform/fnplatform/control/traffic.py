"""Versions and traffic, on the control plane: rollback, splits, canaries with their gates, shadows, pins, retention.

The registry's active version runs as the Serve application ``<name>``; every other version that must run
(in a split, shadowed, or started for pinned calls) runs beside it as ``<name>@v<N>`` (serving.versions).
Each change is stored (storage.traffic), recorded as an event with its reason, and published to the data
plane, which routes by it within a couple of seconds. A progressive rollout is advanced by ``tick`` (every
second): the canary's error rate and p99 are compared with the stable version's over the same window
(rollout_gates, from the metrics the data plane counts per version); a failed gate rolls back at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from fn import BadRequest, Conflict, NotFound
from fnplatform.serving.hub import HubClient
from fnplatform.serving.metrics import Delta
from fnplatform.serving.versions import REFRESH_S, app_name
from fnplatform.storage.registry import Registry, VersionRecord
from fnplatform.storage.traffic import Traffic, TrafficStore

from .deployer import Deployer
from .pins import PinExpiry
from .rollout_gates import Gates, judge, window

log = logging.getLogger("fnplatform")
MAX_SHADOW_PERCENT = 100.0
DROP_AFTER_S = REFRESH_S + 1.5  # a version's application outlives its last place in the table by this much


def _no_function(name: str) -> NotFound:
    return NotFound(f"no function named {name!r}; list functions with 'fnctl ls'", status=404)


def spec_changes(before: VersionRecord | None, after: VersionRecord) -> list[str]:
    """What changed from the previous version: the code (bundle) and each option, as ``cpus: 1 -> 2``."""
    if before is None:
        return ["first version"]
    changes = ["code"] if before.bundle_sha256 != after.bundle_sha256 else []
    old, new = before.spec.model_dump(mode="json"), after.spec.model_dump(mode="json")
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            changes.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return changes


class TrafficControl:
    def __init__(self, registry: Registry, deployer: Deployer, hub: HubClient, publish: Callable[[], None],
                 keep_versions: int = 10, pin_idle_s: float = 3600.0) -> None:
        self.registry = registry
        self.store = TrafficStore(registry.url)
        self.deployer = deployer
        self.hub = hub
        self.publish = publish
        self.keep_versions = keep_versions
        self._windows: dict[str, Delta] = {}  # function -> the metrics when its rollout's current step began
        self._starting: set[tuple[str, int]] = set()
        self.pins = PinExpiry(pin_idle_s, self._unpin)
        self._lock = threading.Lock()  # one traffic change at a time

    # the data plane's table --------------------------------------------------------------------
    def table(self) -> dict[str, Any]:
        """Per active function: what serving.versions.Entry reads."""
        rows = {t.function: t for t in self.store.all()}
        table: dict[str, Any] = {}
        for active in self.registry.actives():
            traffic = rows.get(active.function) or Traffic(active.function)
            versions = self.registry.versions(active.function)
            running = sorted(traffic.versions() - {active.number})
            entry: dict[str, Any] = {"active": active.number, "versions": [v.number for v in versions if v.callable],
                                     "running": running}
            if running:
                entry["timeouts"] = {str(v.number): v.spec.timeout_s for v in versions
                                     if v.number in running or v.number == active.number}
            if traffic.weights:
                entry["weights"] = {str(v): w for v, w in traffic.weights.items()}
            if traffic.shadow_version is not None:
                entry["shadow"] = [traffic.shadow_version, traffic.shadow_percent / 100]
            table[active.function] = entry
        return table

    def extras(self) -> list[VersionRecord]:
        """The versions that run beside the active ones (what a restarted control plane re-applies)."""
        found = []
        for traffic in self.store.all():
            active = self.registry.active(traffic.function)
            for number in sorted(traffic.versions() - ({active.number} if active else set())):
                version = self.registry.version(traffic.function, number)
                if version is not None and version.callable:
                    found.append(version)
        return found

    # reading -------------------------------------------------------------------------------------
    def versions(self, name: str) -> dict[str, Any]:
        versions = self.registry.versions(name)
        if not versions:
            raise _no_function(name)
        active = self.registry.active(name)
        traffic = self.store.get(name)
        rows, previous = [], None
        for version in versions:
            if active is not None and version.number == active.number:
                state = "active"
            elif traffic.weights.get(version.number, 0) > 0:
                state = "canary"
            elif version.number == traffic.shadow_version:
                state = "shadow"
            elif version.number in traffic.pinned:
                state = "pinned"
            elif version.callable:
                state = "retired"
            else:
                state = version.status  # failed, deploying, collected
            rows.append({"version": version.number, "created_at": version.created_at.isoformat() + "Z",
                         "bundle_sha256": version.bundle_sha256, "state": state, "status": version.status,
                         "created_by": version.created_by, "changes": spec_changes(previous, version),
                         "error": version.error})
            if version.status in {"ready", "collected"}:
                previous = version
        return {"function": name, "active": active.number if active else None, "versions": rows,
                "keep": self.keep_versions}

    def traffic(self, name: str) -> dict[str, Any]:
        active = self._active(name)
        traffic = self.store.get(name)
        weights = traffic.weights or {active.number: 100.0}
        return {"function": name, "active": active.number,
                "weights": {str(v): w for v, w in sorted(weights.items())},
                "shadow": {"version": traffic.shadow_version, "percent": traffic.shadow_percent}
                if traffic.shadow_version is not None else None,
                "rollout": traffic.rollout, "pinned": traffic.pinned,
                "history": [e.to_json() for e in self.store.history(name)]}

    # changes ------------------------------------------------------------------------------------
    def _active(self, name: str) -> VersionRecord:
        active = self.registry.active(name)
        if active is None:
            raise _no_function(name)
        return active

    def _callable(self, name: str, number: int) -> VersionRecord:
        version = self.registry.version(name, number)
        if version is None or not version.callable:
            listed = ", ".join(str(v.number) for v in self.registry.versions(name) if v.callable) or "none"
            state = f" (it is {version.status})" if version is not None else ""
            raise NotFound(f"{name} has no version {number} that can be run{state}; versions that can: {listed} "
                           f"('fnctl versions {name}')", status=404)
        return version

    def _run_beside(self, versions: list[VersionRecord]) -> None:
        outcome = self.deployer.apply(versions, wait=True, extra=True)
        failed = {name: error for name, error in outcome.items() if error}
        if failed:
            raise Conflict("; ".join(f"{name}: {error}" for name, error in failed.items()), status=409)

    def _activate(self, version: VersionRecord, reason: str, by: str | None) -> None:
        """Make *version* the one at ``/<name>`` (Serve replaces the replicas without dropping calls)."""
        outcome = self.deployer.apply([version], wait=True)
        error = outcome.get(version.function)
        if error:
            previous = self.registry.active(version.function)
            if previous is not None:
                self.deployer.apply([previous], wait=False)
            raise Conflict(f"version {version.number} of {version.function} did not start: {error}", status=409)
        self.registry.set_active(version.function, version.number)
        self.store.record(version.function, "activate", reason, version=version.number, by=by)

    def _drop_extras_later(self, name: str) -> None:
        """Once every caller's copy of the table (published just before) no longer sends calls there, stop the
        versions of *name* running beside the active one that its traffic no longer names."""

        def drop() -> None:
            try:
                with self._lock:
                    active = self.registry.active(name)
                    keep = self.store.get(name).versions() - ({active.number} if active else set())
                    for number in self.deployer.extra_versions(name):
                        if number not in keep:
                            self.deployer.remove(app_name(name, number))
            except Exception as exc:  # noqa: BLE001 - the next change or restart's reconcile removes them
                log.warning("could not stop unused versions of %s: %s", name, exc)

        timer = threading.Timer(DROP_AFTER_S, drop)
        timer.daemon = True
        timer.start()

    def set_split(self, name: str, weights: dict[int, float], by: str | None, reason: str = "set by an operator"
                  ) -> dict[str, Any]:
        """Send calls by *weights* (percent per version); one version at 100 makes it the active one."""
        if not weights or any(w < 0 for w in weights.values()) or abs(sum(weights.values()) - 100) > 1e-6:
            raise BadRequest(f"split: weights must be >= 0 and add up to 100, e.g. 3=90,4=10; got "
                             f"{', '.join(f'{v}={w:g}' for v, w in weights.items()) or 'none'}", status=400)
        with self._lock:
            active = self._active(name)
            versions = [self._callable(name, v) for v in weights]
            traffic = self.store.get(name)
            traffic.rollout = None
            self._windows.pop(name, None)
            full = [v for v in versions if weights[v.number] >= 100]
            if full:
                if full[0].number != active.number:
                    self._activate(full[0], reason, by)
                traffic.weights = {}
            else:
                self._run_beside([v for v in versions if v.number != active.number])
                traffic.weights = {v: w for v, w in weights.items() if w > 0}
            traffic.pinned = []  # pinned calls start their version again if they still come
            self.store.put(traffic)
            self.store.record(name, "split", reason, weights=traffic.weights or {full[0].number: 100.0}, by=by)
        self.publish()
        self._drop_extras_later(name)
        return self.traffic(name)

    def set_shadow(self, name: str, version: int | None, percent: float, by: str | None) -> dict[str, Any]:
        if version is not None and not 0 < percent <= MAX_SHADOW_PERCENT:
            raise BadRequest(f"shadow: the share of calls copied must be above 0 and at most 100 percent, "
                             f"not {percent:g}", status=400)
        with self._lock:
            active = self._active(name)
            traffic = self.store.get(name)
            if version is not None:
                if version == active.number:
                    raise BadRequest(f"shadow: version {version} is the active version of {name}; shadow a "
                                     f"candidate, e.g. the one 'fnctl versions {name}' shows last", status=400)
                self._run_beside([self._callable(name, version)])
            traffic.shadow_version, traffic.shadow_percent = version, percent if version is not None else 0.0
            self.store.put(traffic)
            self.store.record(name, "shadow", f"{percent:g}% of calls copied" if version else "shadow stopped",
                              version=version, by=by)
        self.publish()
        self._drop_extras_later(name)
        return self.traffic(name)

    def rollback(self, name: str, to: int | None, by: str | None, why: str | None = None) -> dict[str, Any]:
        """Version *to* (default: the one active before this one) active again at 100%; no rebuild or upload.
        With a canary in flight and no *to*, the canary is dropped and the active version keeps serving."""
        started = time.monotonic()
        with self._lock:
            active = self._active(name)
            traffic = self.store.get(name)
            canary = traffic.weights or traffic.rollout
            if to is None and not canary:
                earlier = [v for v in self.store.activations(name) if v != active.number]
                callable_ = {v.number for v in self.registry.versions(name) if v.callable}
                candidates = [v for v in earlier if v in callable_] or sorted(v for v in callable_ if v < active.number)
                if not candidates:
                    raise Conflict(f"{name} has no earlier version to roll back to ('fnctl versions {name}')", status=409)
                to = candidates[-1]
            target = active if to is None else self._callable(name, to)
            reason = why or (f"rollback from v{active.number}" if target.number != active.number else "canary dropped")
            if target.number != active.number:
                self._activate(target, reason, by)
            traffic.weights, traffic.rollout, traffic.pinned = {}, None, []
            self._windows.pop(name, None)
            self.store.put(traffic)
            self.store.record(name, "rollback", reason, weights={target.number: 100.0}, version=target.number, by=by)
        self.publish()
        self._drop_extras_later(name)
        return {"function": name, "active": target.number, "previous": active.number,
                "seconds": round(time.monotonic() - started, 3)}

    # canaries -------------------------------------------------------------------------------------
    def start_canary(self, version: VersionRecord, plan: dict[str, Any], by: str | None) -> str:
        """Run the deployed *version* beside the active one at the plan's first weight; returns what it did."""
        name = version.function
        active = self.registry.active(name)
        assert active is not None
        steps = [float(s) for s in plan.get("steps") or [plan["percent"]]]
        with self._lock:
            traffic = self.store.get(name)
            traffic.weights = {active.number: 100 - steps[0], version.number: steps[0]}
            traffic.rollout = ({"canary": version.number, "stable": active.number, "steps": steps, "step": 0,
                                "interval_s": plan["interval_s"], "gates": plan["gates"], "started": time.time()}
                               if plan.get("steps") else None)
            self.store.put(traffic)
            self.store.record(name, "canary", f"v{version.number} deployed beside v{active.number}",
                              weights=traffic.weights, version=version.number, by=by)
            self._windows.pop(name, None)
        self.publish()
        self._drop_extras_later(name)  # an earlier canary's
        progressive = f", then {', '.join(f'{s:g}%' for s in steps[1:])} every {plan['interval_s']:g} s while its " \
                      f"gates hold" if len(steps) > 1 else ""
        return f"canary at {steps[0]:g}% beside v{active.number}{progressive}"

    def tick(self) -> None:
        """Every second: start the versions pinned calls wait for, and advance or roll back the rollouts."""
        for name, number in self.hub.wants():
            self._start_pinned(name, number)
        everything = self.store.all()
        rollouts = [t for t in everything if t.rollout is not None]
        pinned = [t for t in everything if t.pinned] if self.pins.due() else []
        if not rollouts and not pinned:
            return
        now = self.hub.metrics()
        if pinned:
            self.pins.check(pinned, now)
        for traffic in rollouts:
            try:
                self._advance(traffic, now)
            except Exception as exc:  # noqa: BLE001 - one function's rollout must not stop the others'
                log.warning("rollout of %s: %s: %s", traffic.function, type(exc).__name__, exc)

    def _unpin(self, name: str, number: int) -> None:
        with self._lock:
            traffic = self.store.get(name)
            if number not in traffic.pinned:
                return
            traffic.pinned = [n for n in traffic.pinned if n != number]
            self.store.put(traffic)
            self.store.record(name, "unpin", f"v{number}: no pinned call for {self.pins.idle_s / 3600:g} h",
                              version=number)
        log.info("stopped v%d of %s: no pinned call for %g h", number, name, self.pins.idle_s / 3600)
        self.publish()
        self.retain(name)  # a version kept only because it ran may be past retention now
        self._drop_extras_later(name)

    def _start_pinned(self, name: str, number: int) -> None:
        with self._lock:
            if (name, number) in self._starting:
                return
            version = self.registry.version(name, number)
            active = self.registry.active(name)
            if version is None or not version.callable or active is None or number == active.number:
                return  # the caller sees the 404 (or its version running) in the table
            self._starting.add((name, number))

        def start() -> None:
            try:
                with self._lock:
                    traffic = self.store.get(name)
                    self._run_beside([version])
                    traffic.pinned = sorted(set(traffic.pinned) | {number})
                    self.pins.started(name, number)
                    self.store.put(traffic)
                    self.store.record(name, "pin", f"v{number} started for a pinned call", version=number)
                self.publish()
            except Exception as exc:  # noqa: BLE001 - the waiting call times out and says so
                log.warning("could not start v%d of %s for a pinned call: %s", number, name, exc)
            finally:
                self._starting.discard((name, number))

        threading.Thread(target=start, name=f"fn-pin-{name}", daemon=True).start()

    def _advance(self, traffic: Traffic, now: Delta) -> None:
        rollout = traffic.rollout
        assert rollout is not None
        name = traffic.function
        before = self._windows.setdefault(name, now)
        gates = Gates(**rollout["gates"])
        verdict = judge(window(before, now, name, rollout["canary"]), window(before, now, name, rollout["stable"]), gates)
        if verdict.outcome == "fail":
            self._windows.pop(name, None)
            self.rollback(name, None, "rollout", f"gate failed: {verdict.reason}")
            return
        if verdict.outcome != "pass" or time.time() - float(rollout["started"]) < float(rollout["interval_s"]):
            return
        step = int(rollout["step"]) + 1
        steps = [float(s) for s in rollout["steps"]]
        if step >= len(steps) or steps[step] >= 100:
            self._windows.pop(name, None)
            self.set_split(name, {int(rollout["canary"]): 100.0}, "rollout", f"promoted: {verdict.reason}")
            return
        with self._lock:
            traffic = self.store.get(name)  # as it is now: a change made since the tick read it is kept
            if traffic.rollout != rollout:
                return
            traffic.weights = {int(rollout["stable"]): 100 - steps[step], int(rollout["canary"]): steps[step]}
            traffic.rollout = {**rollout, "step": step, "started": time.time()}
            self.store.put(traffic)
            self.store.record(name, "step", f"to {steps[step]:g}%: {verdict.reason}", weights=traffic.weights,
                              version=int(rollout["canary"]), by="rollout")
            self._windows[name] = now
        self.publish()

    def deployed(self, version: VersionRecord, by: str | None) -> None:
        """A plain deploy made *version* active: a split, rollout or pins of the versions before it end (their
        weights named versions no longer beside the active one); a shadow of another version stays."""
        name = version.function
        with self._lock:
            traffic = self.store.get(name)
            ended = bool(traffic.weights or traffic.rollout or traffic.pinned)
            traffic.weights, traffic.rollout, traffic.pinned = {}, None, []
            if traffic.shadow_version == version.number:
                traffic.shadow_version, traffic.shadow_percent = None, 0.0
            self.store.put(traffic)
            self._windows.pop(name, None)
            self.store.record(name, "activate", "deployed" + (": the split before it ended" if ended else ""),
                              version=version.number, by=by)
        self.retain(name)
        if ended:
            self._drop_extras_later(name)

    # retention ----------------------------------------------------------------------------------
    def retain(self, name: str) -> list[int]:
        """Collect callable versions beyond the newest *keep_versions*, except the active one and those running."""
        active = self.registry.active(name)
        keep = self.store.get(name).versions() | ({active.number} if active else set())
        callable_ = sorted((v.number for v in self.registry.versions(name) if v.callable), reverse=True)
        collected = [v for v in callable_[self.keep_versions:] if v not in keep]
        self.registry.collect(name, collected)
        return collected
