"""What the console's pages show, read from the control plane and narrowed to what the signed-in key may see,
with the same rules as the JSON API (``control.api``): a scoped key sees only its functions and flows, a run
only its owner and admins, logs (and the requests read from them) only deploy keys."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fn import ClientError, NotFound
from fnplatform.keys import Grant
from fnplatform.serving import coldstart

from ..plane import ControlPlane
from .history import History, Point

LOG_TAIL = 200  # log lines a function's page shows
RUNS_SHOWN = 20  # runs per flow on the flows page
HISTORY_SHOWN = 10  # traffic changes on a function's page
# The line a replica writes for each answered call (serving.replica): "GET /add -> 200 in 3.1 ms" for HTTP,
# "call add -> ok in 2.0 ms" (or "-> 404") for a handle call, after the stamp, level, replica and request id;
# an HTTP call that waited for its replica ends with ", cold start: total=1.21, scale=0.66, ..." (serving.coldstart).
_CALL = re.compile(r"^(?P<at>\S+) +\S+ +replica=\S+ request=(?P<rid>\S+) "
                   r"(?:(?P<method>[A-Z]+) /(?P<path>\S*)|call (?P<fn>\S+)) -> (?P<status>\S+) in (?P<ms>[0-9.]+) ms"
                   rf"(?:, {re.escape(coldstart.LOG_MARK)} (?P<cold>.+))?$")


@dataclass(frozen=True)
class Call:
    at: str
    request_id: str
    via: str  # "GET", "POST"... or "handle"
    status: int
    ms: float
    cold: tuple[tuple[str, float], ...] = ()  # (phase, seconds) of the wait for a replica, in order; () when warm

    @property
    def cold_ms(self) -> float:
        return 1000 * sum(seconds for _, seconds in self.cold)

    @property
    def total_ms(self) -> float:
        return self.cold_ms + self.ms

    def segments(self) -> list[tuple[str, float]]:
        """The call's bar: each phase of its cold start, then the replica's work, in ms."""
        return [*((phase, 1000 * seconds) for phase, seconds in self.cold), ("work", self.ms)]


def log_lines(control: ControlPlane, name: str, grep: str = "", limit: int = LOG_TAIL) -> list[str]:
    """The function's latest log lines holding *grep* (case-insensitive), oldest first. The one place that reads
    logs: the hub keeps a bounded tail and ``ControlPlane.logs`` has no filters yet, so the search runs here over
    that tail; when the logs API takes ``grep``/``request_id``, this becomes one call."""
    lines: list[str] = control.logs(name, 0, 5000)["lines"]
    if grep:
        needle = grep.lower()
        lines = [line for line in lines if needle in line.lower()]
    return lines[-limit:]


def calls(lines: list[str]) -> list[Call]:
    """The answered calls among *lines*, newest first."""
    found = []
    for line in lines:
        match = _CALL.match(line)
        if match is None:
            continue
        status = match["status"]
        phases = coldstart.parse_breakdown(match["cold"] or "")
        found.append(Call(at=match["at"], request_id=match["rid"], via=match["method"] or "handle",
                          status=200 if status == "ok" else int(status) if status.isdigit() else 0, ms=float(match["ms"]),
                          cold=tuple((phase, phases[phase]) for phase in coldstart.PHASES if phase in phases)))
    return found[::-1]


def replica_states(control: ControlPlane) -> tuple[list[dict[str, Any]], str | None]:
    """Active functions with Serve's replica counts; when Serve does not answer, the registry's list with the
    counts unknown and the reason (the page still shows what the registry knows)."""
    try:
        return control.list_functions(), None
    except ClientError as exc:
        problem = exc.message
    rows = [{"name": v.function, "version": v.number, "status": "UNKNOWN", "running": None, "target": None,
             "internal": v.spec.internal, "pool": v.spec.pool} for v in control.registry.actives()]
    return rows, problem


def functions(control: ControlPlane, history: History, grant: Grant) -> tuple[list[dict[str, Any]], str | None]:
    rows, problem = replica_states(control)
    shown = []
    for row in rows:
        if not grant.may_call(row["name"]):
            continue
        latest = history.latest(row["name"])
        shown.append({**row, "latest": latest, "series": series(history.points(row["name"]))})
    return shown, problem


def series(points: list[Point]) -> dict[str, list[list[float | None]]]:
    """The points as the charts read them: [time, value] pairs per measure (latencies in ms)."""
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    return {"rate": [[p.at, round(p.rate, 4)] for p in points],
            "p50": [[p.at, ms(p.p50)] for p in points],
            "p99": [[p.at, ms(p.p99)] for p in points],
            "errors": [[p.at, None if p.error_rate is None else round(p.error_rate, 4)] for p in points]}


def function_page(control: ControlPlane, history: History, grant: Grant, name: str, grep: str) -> dict[str, Any]:
    if not grant.may_call(name):  # as if it did not exist, like GET /v1/functions/{name}
        raise NotFound(f"no function named {name!r}", status=404)
    try:
        described = control.describe(name)
        problem = None
    except NotFound:
        raise
    except ClientError as exc:  # Serve did not answer: the registry's part of the page is still worth showing
        problem = exc.message
        versions = control.registry.versions(name)
        active = control.registry.active(name)
        described = {"name": name, "active_version": active.number if active else None,
                     "spec": (active or versions[-1]).spec.model_dump(mode="json"),
                     "versions": [v.to_json() for v in versions], "replicas": [], "running": None, "target": None,
                     "app_status": "UNKNOWN"}
    page: dict[str, Any] = {"function": described, "problem": problem, "points": history.points(name),
                            "logs_allowed": grant.has_role("deploy"), "grep": grep, "lines": [], "calls": []}
    page["series"] = series(page["points"])
    if grant.has_role("deploy"):  # as GET /v1/functions/{name}/versions and /traffic: who changed what, and why
        page["versions"], page["traffic"] = versions_and_traffic(control, name, described)
    else:
        page["versions"], page["traffic"] = [{**v, "state": v.get("status")} for v in described["versions"]][::-1], None
    if page["logs_allowed"]:
        page["lines"] = log_lines(control, name, grep)
        page["calls"] = calls(log_lines(control, name))[:50]
    return page


def versions_and_traffic(control: ControlPlane, name: str, described: dict[str, Any]
                         ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Each version with its state (active, canary, shadow, pinned, retired...) and what changed, newest first;
    where calls go (split, shadow, rollout, pins) and the latest changes, as ``fnctl versions``/``traffic`` show."""
    try:
        rows = control.traffic.versions(name)["versions"]
    except ClientError:  # gone since described: the versions described are still worth showing
        rows = [{**v, "state": v.get("status")} for v in described.get("versions", [])]
    try:
        traffic = control.traffic.traffic(name) if described.get("active_version") is not None else None
    except ClientError:
        traffic = None
    if traffic is not None:
        traffic = {**traffic, "split": [(int(v), w) for v, w in traffic["weights"].items()],
                   "history": traffic["history"][-HISTORY_SHOWN:][::-1]}
    return rows[::-1], traffic


def flows(control: ControlPlane, grant: Grant) -> list[dict[str, Any]]:
    """Declared flows the key may run, each with its latest runs (only the key's own, unless admin)."""
    owner = None if grant.has_role("admin") else grant.key_id
    return [{"name": f.name, "inputs": list(f.inputs), "optional": list(f.optional),
             "steps": [(s.name, s.function) for s in f.steps],
             "runs": control.flows.runs(f.name, limit=RUNS_SHOWN, owner=owner)}
            for f in control.flows.flows() if grant.may_run(f.name)]


def run_page(control: ControlPlane, grant: Grant, flow: str, run_id: str) -> Any:
    record = control.flows.run(run_id)
    if (record is None or record.flow != flow or not grant.may_run(flow)
            or not record.visible_to(grant.key_id, grant.has_role("admin"))):
        raise NotFound(f"no run {run_id!r} of flow {flow!r}", status=404)  # another key's run: as if absent
    return record


def keys(control: ControlPlane) -> list[dict[str, Any]]:
    records = control.registry.keys()  # a method, not a dict's keys
    return [record.to_json() for record in records]
