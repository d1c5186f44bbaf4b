"""When a scheduled function runs: ``Cron`` (5-field cron in a time zone) or ``Period`` (every N seconds).

Both are validated once, at construction, and compute their next fire time as a pure function of the
previous one, so every process (and a restarted scheduler) agrees on the tick times. Standard library only.
"""

from __future__ import annotations

import difflib
import math
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NoReturn

from ._errors import SpecError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_HORIZON_YEARS = 400  # the Gregorian calendar repeats every 400 years: a day that can match does within that
_MAX_PERIOD_S = 366 * 86400
_FIELD_NAMES = "minute hour day-of-month month day-of-week"
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12), ("day-of-week", 0, 7))
_MONTHS = {n: i + 1 for i, n in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_DAYS = {n: i for i, n in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_ALLOWED = {"month": "1-12 or jan-dec", "day-of-week": "0-7 (0 and 7 are Sunday) or sun-sat"}
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # Feb 29 exists in leap years
_MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
           "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _utc(after: datetime) -> datetime:
    if not isinstance(after, datetime) or after.tzinfo is None or after.utcoffset() is None:
        raise ValueError(f"after={after!r} must be an aware datetime (with a tzinfo), e.g. datetime.now(timezone.utc)")
    return after.astimezone(UTC)


@dataclass(frozen=True, slots=True, init=False, repr=False)
class Cron:
    """Fire at the wall-clock minutes a 5-field cron expression matches, in time zone *tz* (IANA name).

    Vixie semantics: when day-of-month and day-of-week both restrict (neither starts with ``*``), a day
    matches if either does. A local time skipped by a DST change does not fire; a repeated one fires once.
    Example: ``fn.Cron("*/5 * * * *", tz="Europe/Berlin")``.
    """

    expression: str
    tz: str
    _zone: zoneinfo.ZoneInfo = field(compare=False)
    _minutes: tuple[int, ...] = field(compare=False)
    _hours: tuple[int, ...] = field(compare=False)
    _doms: tuple[int, ...] = field(compare=False)
    _months: tuple[int, ...] = field(compare=False)
    _dows: tuple[int, ...] = field(compare=False)
    _dom_star: bool = field(compare=False)
    _dow_star: bool = field(compare=False)

    def __init__(self, expression: str, *, tz: str = "UTC") -> None:
        if not isinstance(expression, str):
            raise SpecError(f"Cron({expression!r}): expression must be a string, e.g. fn.Cron(\"*/5 * * * *\")")
        text = " ".join(expression.split())
        set_ = object.__setattr__
        set_(self, "expression", text)
        set_(self, "tz", tz)
        set_(self, "_zone", _zone(tz))
        fields = _MACROS.get(text.lower(), text).split()
        if text.startswith("@") and text.lower() not in _MACROS:
            self._fail(f"unknown macro {text!r}; use one of {', '.join(_MACROS)}")
        if len(fields) != 5:
            self._fail(f"expression must have 5 fields ({_FIELD_NAMES}), got {len(fields)}")
        parsed = [self._field(part, index) for index, part in enumerate(fields)]
        for name, values in zip(("_minutes", "_hours", "_doms", "_months", "_dows"), parsed, strict=True):
            set_(self, name, tuple(sorted(values)))
        set_(self, "_dom_star", fields[2].startswith("*"))
        set_(self, "_dow_star", fields[4].startswith("*"))
        if self._dow_star and not self._dom_star and not any(d <= _MONTH_DAYS[m - 1] for m in self._months for d in self._doms):
            self._fail(f"day-of-month {fields[2]} never occurs in month {fields[3]}, so it never fires")

    def _fail(self, problem: str) -> NoReturn:
        raise SpecError(f"Cron({self.expression!r}): {problem}; e.g. fn.Cron(\"*/5 * * * *\")")

    def _field(self, text: str, index: int) -> set[int]:
        """The values one field allows: ``*``, ``a``, ``a-b``, each with an optional ``/step``, comma-separated."""
        name, lo, hi = _FIELDS[index]
        allowed = _ALLOWED.get(name, f"{lo}-{hi}")
        values: set[int] = set()
        for part in text.split(","):
            body, slash, step_text = part.partition("/")
            step = int(step_text) if _digits(step_text) else 0
            if slash and step < 1:
                self._fail(f"{name} step {step_text!r} must be a whole number of at least 1, as in */15")
            if body == "*":
                first, last = lo, hi
            else:
                first_text, dash, last_text = body.partition("-")
                first = self._value(first_text, name, lo, hi, allowed)
                last = self._value(last_text, name, lo, hi, allowed) if dash else (hi if slash else first)
                if first > last:
                    self._fail(f"{name} range {body!r} goes backwards; write it low-high or as a list ({allowed})")
            values.update(range(first, last + 1, step or 1))
        return {v % 7 for v in values} if name == "day-of-week" else values

    def _value(self, text: str, name: str, lo: int, hi: int, allowed: str) -> int:
        names = _MONTHS if name == "month" else _DAYS if name == "day-of-week" else {}
        if text.lower() in names:
            return names[text.lower()]
        if not _digits(text):
            self._fail(f"{name} {text!r} is not a number{' or a name' if names else ''}: use {allowed}")
        if not lo <= int(text) <= hi:
            self._fail(f"{name} {int(text)} is out of range {allowed}")
        return int(text)

    def _day_matches(self, day: date) -> bool:
        dom, dow = day.day in self._doms, day.isoweekday() % 7 in self._dows
        return (dom and dow) if (self._dom_star or self._dow_star) else (dom or dow)

    def _next_wall(self, t: datetime, last_year: int) -> datetime:
        """The first matching naive wall time at or after *t*, skipping whole months, days and hours."""
        while t.year <= last_year:
            midnight = datetime(t.year, t.month, t.day)
            if t.month not in self._months:
                later = [m for m in self._months if m > t.month]
                t = datetime(t.year, later[0], 1) if later else datetime(t.year + 1, self._months[0], 1)
            elif not self._day_matches(t.date()):
                t = midnight + timedelta(days=1)
            elif t.hour not in self._hours:
                hours = [h for h in self._hours if h > t.hour]
                t = midnight.replace(hour=hours[0]) if hours else midnight + timedelta(days=1)
            elif minutes := [m for m in self._minutes if m >= t.minute]:
                return t.replace(minute=minutes[0])
            else:
                t = t.replace(minute=0) + timedelta(hours=1)
        raise ValueError(f"{self!r} has no fire time before {last_year + 1}")

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after *after* (aware), in UTC."""
        start = _utc(after)
        last_year = min(start.year + _HORIZON_YEARS, 9998)
        wall = start.astimezone(self._zone).replace(tzinfo=None, second=0, microsecond=0, fold=0) + timedelta(minutes=1)
        while True:
            wall = self._next_wall(wall, last_year)
            instant = wall.replace(tzinfo=self._zone).astimezone(UTC)  # fold=0: the first of a repeated time
            if instant > start and instant.astimezone(self._zone).replace(tzinfo=None) == wall:  # else: in a DST gap
                return instant
            wall += timedelta(minutes=1)

    def __repr__(self) -> str:
        return f"Cron({self.expression!r}, tz={self.tz!r})" if self.tz != "UTC" else f"Cron({self.expression!r})"


def _zone(tz: object) -> zoneinfo.ZoneInfo:
    try:
        if isinstance(tz, str) and tz:
            return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    close = difflib.get_close_matches(str(tz), zoneinfo.available_timezones(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise SpecError(f"Cron(tz={tz!r}): unknown time zone{hint}; use an IANA name such as 'Europe/Berlin' or 'UTC', "
                    f"e.g. fn.Cron(\"0 9 * * mon-fri\", tz=\"Europe/Berlin\")")


@dataclass(frozen=True, slots=True, init=False, repr=False)
class Period:
    """Fire every ``hours*3600 + minutes*60 + seconds`` seconds (1 s to 366 days), at multiples since the Unix epoch.

    Anchoring to the epoch makes the ticks the same in every process and across restarts.
    Example: ``fn.Period(minutes=5)``.
    """

    _us: int
    _parts: tuple[tuple[str, float], ...] = field(compare=False)

    def __init__(self, *, seconds: float = 0, minutes: float = 0, hours: float = 0) -> None:
        parts = {"hours": hours, "minutes": minutes, "seconds": seconds}
        shown = {k: v for k, v in parts.items() if v != 0} or {"seconds": 0}
        call = "Period(" + ", ".join(f"{k}={_number(v)}" for k, v in shown.items()) + ")"
        for key, value in parts.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value * 0) or value < 0:
                raise SpecError(f"{call}: {key} must be a finite number of 0 or more, got {value!r}; e.g. fn.Period(seconds=30)")
        us = sum(round(min(value, 1e12) * unit) for value, unit in ((seconds, 1e6), (minutes, 60e6), (hours, 3600e6)))
        if not 1_000_000 <= us <= _MAX_PERIOD_S * 1_000_000:
            raise SpecError(f"{call}: the period must be at least 1 second and at most 366 days in total, "
                            f"got {_number(us / 1e6)} s; e.g. fn.Period(seconds=30) or fn.Period(hours=1, minutes=30)")
        object.__setattr__(self, "_parts", tuple(shown.items()))
        object.__setattr__(self, "_us", us)

    @property
    def every_s(self) -> float:
        return self._us / 1e6

    def next_after(self, after: datetime) -> datetime:
        """The smallest epoch + k * period strictly after *after* (aware), in UTC; exact to the microsecond."""
        elapsed_us = (_utc(after) - _EPOCH) // _US
        return _EPOCH + timedelta(microseconds=(elapsed_us // self._us + 1) * self._us)

    def __repr__(self) -> str:
        return "Period(" + ", ".join(f"{k}={_number(v)}" for k, v in self._parts) + ")"


def _number(value: object) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else repr(value)


Schedule = Cron | Period


def next_tick(schedule: Schedule, after: datetime) -> datetime:
    """The first fire time of *schedule* strictly after *after* (aware), in UTC."""
    return schedule.next_after(after)


def schedule_to_json(schedule: Schedule) -> dict[str, Any]:
    """``{"cron": ..., "tz": ...}`` or ``{"every_s": ...}``: what the platform stores."""
    if isinstance(schedule, Cron):
        return {"cron": schedule.expression, "tz": schedule.tz}
    return {"every_s": schedule.every_s}


def schedule_from_json(data: Mapping[str, Any]) -> Schedule:
    """The schedule ``schedule_to_json`` wrote; ValueError (SpecError for bad values) on anything else."""
    if isinstance(data, Mapping) and set(data) in ({"cron", "tz"}, {"cron"}):
        return Cron(data["cron"], tz=data.get("tz", "UTC"))
    if isinstance(data, Mapping) and set(data) == {"every_s"} and not isinstance(data["every_s"], bool | str):
        return Period(seconds=data["every_s"])
    raise ValueError(f"not a schedule: {data!r}; expected {{'cron': '*/5 * * * *', 'tz': 'UTC'}} or {{'every_s': 30.0}}")


def describe(schedule: Schedule) -> str:
    """A short human reading: ``every 30 s``, ``every 1 h 30 min``, ``cron */5 * * * * (Europe/Berlin)``."""
    if isinstance(schedule, Cron):
        return f"cron {schedule.expression} ({schedule.tz})"
    hours, rest = divmod(schedule._us, 3_600_000_000)
    minutes, micros = divmod(rest, 60_000_000)
    parts = [f"{_number(v)} {unit}" for v, unit in ((hours, "h"), (minutes, "min"), (micros / 1e6, "s")) if v]
    return "every " + " ".join(parts)
