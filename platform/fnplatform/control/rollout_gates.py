"""Canary gates: one version's calls, errors and p99 over a window of the hub's metrics, and a verdict.

The hub keeps totals since it started, so a window is the difference of two snapshots (``Delta``). Everything
here is pure: the deployer takes the snapshots and acts on the verdict; the CLI and the API share the parsers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from fn import BadRequest
from fnplatform.serving.metrics import BUCKETS, Delta, Series

REQUESTS = "fn_requests_total"
DURATIONS = "fn_request_duration_seconds"
MAX_DURATION_S = 7 * 24 * 3600.0
# Float sums such as 0.1 + 0.2 land a hair off; an exact tie at the limit must not fail the canary.
_SLACK = 1e-9
P99_MIN_CALLS = 100  # calls each side needs before p99s are compared


@dataclass(frozen=True)
class VersionWindow:
    version: int
    calls: int
    errors: int  # calls answered 5xx; 499 (the caller went away) and 4xx (the caller's mistake) are not errors
    error_rate: float  # 0.0 when calls == 0
    p99_s: float | None  # a bucket's upper bound; None without duration samples


@dataclass(frozen=True)
class Gates:
    max_error_rate: float  # a fraction, added to the stable version's error rate
    max_p99_ratio: float  # canary p99 over stable p99
    min_calls: int = 10

    def __post_init__(self) -> None:
        if not 0 <= self.max_error_rate <= 1:
            raise ValueError(f"max_error_rate must be a fraction from 0 to 1, not {self.max_error_rate}")
        if not self.max_p99_ratio > 0:
            raise ValueError(f"max_p99_ratio must be above 0, not {self.max_p99_ratio}")
        if self.min_calls < 1:
            raise ValueError(f"min_calls must be at least 1, not {self.min_calls}")


@dataclass(frozen=True)
class Verdict:
    outcome: Literal["pass", "fail", "wait"]
    reason: str
    canary: VersionWindow
    stable: VersionWindow


def window(before: Delta | None, now: Delta, function: str, version: int) -> VersionWindow:
    """*function* at *version* between two hub snapshots (*before* None: since the hub started).

    A negative difference means the hub restarted in between and *now* counts from zero: *before* is dropped.
    """
    tag = str(version)
    then = before if before is not None else Delta()
    mine = {key: n for key, n in now.counters.items() if _is_call(key, function, tag)}
    base = {key: n for key, n in then.counters.items() if _is_call(key, function, tag)}
    duration: Series = (DURATIONS, (function, tag))
    hist_now, hist_base = now.histograms.get(duration, []), then.histograms.get(duration, [])
    counts = _minus(hist_now, hist_base)
    per_code = {key: mine.get(key, 0.0) - base.get(key, 0.0) for key in mine.keys() | base.keys()}
    if counts is None or any(n < 0 for n in per_code.values()):
        per_code, counts = mine, _minus(hist_now, [])
    calls = round(sum(per_code.values()))
    errors = round(sum(n for (_, labels), n in per_code.items() if _is_error(labels[2])))
    return VersionWindow(version=version, calls=calls, errors=errors, error_rate=errors / calls if calls else 0.0,
                         p99_s=_p99(counts or []))


def judge(canary: VersionWindow, stable: VersionWindow, gates: Gates) -> Verdict:
    """Fail, pass, or wait for more calls.

    Errors: fail once ``canary.calls >= min_calls`` when the canary's error rate exceeds the stable's by more
    than ``max_error_rate``. Before that, fail early when ``errors > max_error_rate * max(calls, min_calls) +
    stable.error_rate * calls``: errors that many calls could not dilute below the limit by ``min_calls`` (a
    canary failing every call is rolled back at once). At or above ``min_calls`` the two rules are the same.

    p99: only with ``P99_MIN_CALLS`` (and ``min_calls``) on both sides and both p99s known: below, a p99 is
    the slowest call, and one slow first call of a new replica would roll a healthy canary back. Fails when
    the canary's exceeds ``max_p99_ratio`` times the stable's; p99s are bucket upper bounds, so the same
    bucket always passes.
    """
    cv, sv = f"canary v{canary.version}", f"stable v{stable.version}"
    allowed = gates.max_error_rate * max(canary.calls, gates.min_calls) + stable.error_rate * canary.calls
    if canary.calls >= gates.min_calls and canary.error_rate > stable.error_rate + gates.max_error_rate + _SLACK:
        return Verdict("fail", f"{cv} error rate {_pct(canary.error_rate)} ({canary.errors} of {canary.calls}) "
                               f"exceeds {sv}'s {_pct(stable.error_rate)} by more than the allowed "
                               f"{_pct(gates.max_error_rate)}", canary, stable)
    if canary.calls < gates.min_calls and canary.errors > allowed + _SLACK:
        return Verdict("fail", f"{cv} failed {canary.errors} of its first {canary.calls} calls: more errors than "
                               f"{sv}'s {_pct(stable.error_rate)} plus the allowed {_pct(gates.max_error_rate)} "
                               f"would permit even at {gates.min_calls} calls", canary, stable)
    if canary.calls < gates.min_calls:
        return Verdict("wait", f"{cv} has {canary.calls} of the {gates.min_calls} calls needed to judge it "
                               f"({canary.errors} errors so far)", canary, stable)
    rates = (f"error rate {_pct(canary.error_rate)} ({canary.errors} of {canary.calls}) vs {sv}'s "
             f"{_pct(stable.error_rate)} ({stable.errors} of {stable.calls})")
    needed = max(gates.min_calls, P99_MIN_CALLS)
    if canary.p99_s is None or stable.p99_s is None or min(canary.calls, stable.calls) < needed:
        fewer = canary if canary.calls <= stable.calls else stable
        why = "no duration samples" if canary.p99_s is None or stable.p99_s is None else \
            f"v{fewer.version} has {fewer.calls} of the {needed} calls a p99 needs"
        return Verdict("pass", f"{cv} passes: {rates}; p99 not compared ({why})", canary, stable)
    p99s = f"p99 {_secs(canary.p99_s)} vs {_secs(stable.p99_s)}"
    if canary.p99_s != stable.p99_s and canary.p99_s > gates.max_p99_ratio * stable.p99_s + _SLACK:
        return Verdict("fail", f"{cv} p99 {_secs(canary.p99_s)} is more than the allowed x{gates.max_p99_ratio:g} "
                               f"{sv}'s {_secs(stable.p99_s)}",
                       canary, stable)
    return Verdict("pass", f"{cv} passes: {rates}; {p99s}", canary, stable)


def parse_percent(text: str, name: str) -> float:
    """A fraction from ``"1%"``, ``"0.5%"`` or ``"0.01"`` (a bare number is a fraction, 0 to 1)."""
    raw = text.strip()
    percent = raw.endswith("%")
    allowed = "allowed: 0% to 100%, e.g. 1% or 0.5%, or a fraction from 0 to 1 such as 0.01"
    try:
        number = float(raw[:-1] if percent else raw)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise BadRequest(f"{name}: {text!r} is not a percentage ({allowed})", status=400)
    if number < 0:
        raise BadRequest(f"{name}: {text!r} is negative ({allowed})", status=400)
    value = number / 100 if percent else number
    if not percent and number >= 1:  # "1" meant as 1 % would be 100 %: a gate that never trips
        raise BadRequest(f"{name}: {text!r} is ambiguous: write {number:g}% for percent, or a fraction below 1 "
                         f"such as 0.01 ({allowed})", status=400)
    if value > 1:
        hint = "" if percent else f"; for {number:g} percent write {number:g}%"
        raise BadRequest(f"{name}: {text!r} is above 100% ({allowed}){hint}", status=400)
    return value


def parse_duration(text: str, name: str) -> float:
    """Seconds from ``"90"``, ``"90s"``, ``"5m"``, ``"1.5m"`` or ``"1h"``: above 0, at most 7 days."""
    allowed = "allowed: a number with s, m or h (or none, for seconds), above 0 and at most 7 days, e.g. 90s or 5m"
    match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)", text.strip().lower())
    if match is None:
        raise BadRequest(f"{name}: {text!r} is not a duration ({allowed})", status=400)
    seconds = float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]
    if seconds <= 0:
        raise BadRequest(f"{name}: {text!r} is not above 0 ({allowed})", status=400)
    if seconds > MAX_DURATION_S:
        raise BadRequest(f"{name}: {text!r} is longer than 7 days ({allowed})", status=400)
    return seconds


def _is_call(key: Series, function: str, version: str) -> bool:
    name, labels = key
    return name == REQUESTS and len(labels) == 3 and labels[0] == function and labels[1] == version


def _is_error(code: str) -> bool:
    return code.isdigit() and int(code) >= 500


def _minus(now: list[float], before: list[float]) -> list[float] | None:
    """The bucket counts of *now* less *before* (the trailing sum dropped); None if any went down."""
    size = len(BUCKETS) + 1
    counts = [(now[i] if i < len(now) else 0.0) - (before[i] if i < len(before) else 0.0) for i in range(size)]
    return None if any(n < 0 for n in counts) else counts


def _p99(counts: list[float]) -> float | None:
    """The upper bound of the bucket holding the ceil(0.99 n)-th sample. A p99 in the +Inf bucket is reported as
    the largest finite bound: a floor on the true value, still far above any gate's stable p99."""
    total = round(sum(counts))
    if total <= 0:
        return None
    rank = -(-total * 99 // 100)  # integer ceil: 0.99 * n in floats can land just above a whole number
    seen = 0.0
    for index, n in enumerate(counts):
        seen += n
        if seen >= rank:
            return BUCKETS[min(index, len(BUCKETS) - 1)]
    return BUCKETS[-1]


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


def _secs(seconds: float) -> str:
    return f"{seconds:g}s"
