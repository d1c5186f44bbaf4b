"""fn.Cron and fn.Period: parsing, validation messages, next fire times (DST, leap days, epoch anchoring), JSON."""

from __future__ import annotations

import ast
import dataclasses
import itertools
import pickle
import random
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import fn
from fn import _schedule
from fn._schedule import Cron, Period, describe, next_tick, schedule_from_json, schedule_to_json

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


# --- syntax -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("* * * * *", utc(2024, 5, 1, 12, 0, 10), utc(2024, 5, 1, 12, 1)),
        ("* * * * *", utc(2024, 5, 1, 12, 1), utc(2024, 5, 1, 12, 2)),  # strictly after
        ("*/5 * * * *", utc(2024, 5, 1, 12, 3), utc(2024, 5, 1, 12, 5)),
        ("7 * * * *", utc(2024, 5, 1, 12, 10), utc(2024, 5, 1, 13, 7)),
        ("10-12 * * * *", utc(2024, 5, 1, 12, 11), utc(2024, 5, 1, 12, 12)),
        ("10-12 * * * *", utc(2024, 5, 1, 12, 12), utc(2024, 5, 1, 13, 10)),
        ("10-30/10 * * * *", utc(2024, 5, 1, 12, 30), utc(2024, 5, 1, 13, 10)),
        ("15/20 * * * *", utc(2024, 5, 1, 12, 40), utc(2024, 5, 1, 12, 55)),  # a/n = a-max/n
        ("0,30 9,17 * * *", utc(2024, 5, 1, 9, 30), utc(2024, 5, 1, 17, 0)),
        ("0 0 1 jan *", utc(2024, 5, 1), utc(2025, 1, 1)),
        ("0 9 * * mon-fri", utc(2024, 5, 3, 10), utc(2024, 5, 6, 9)),  # Friday 10:00 -> Monday
        ("0 12 * jun-aug/2 *", utc(2024, 6, 30, 13), utc(2024, 8, 1, 12)),
        ("0 0 * * 1/2", utc(2024, 5, 1), utc(2024, 5, 3)),  # Mon, Wed, Fri, Sun; 2024-05-01 is a Wednesday
        ("@hourly", utc(2024, 5, 1, 12, 0, 1), utc(2024, 5, 1, 13)),
        ("@daily", utc(2024, 5, 1, 12), utc(2024, 5, 2)),
        ("@midnight", utc(2024, 5, 1, 12), utc(2024, 5, 2)),
        ("@weekly", utc(2024, 5, 1), utc(2024, 5, 5)),
        ("@monthly", utc(2024, 5, 1), utc(2024, 6, 1)),
        ("@YEARLY", utc(2024, 5, 1), utc(2025, 1, 1)),
        ("@annually", utc(2024, 5, 1), utc(2025, 1, 1)),
    ],
)
def test_each_syntax_form_fires_when_it_should(expression: str, after: datetime, expected: datetime) -> None:
    tick = Cron(expression).next_after(after)
    assert tick == expected
    assert tick.tzinfo is UTC


@pytest.mark.parametrize(
    ("expression", "field", "values"),
    [
        ("*/15 * * * *", "_minutes", (0, 15, 30, 45)),
        ("50/5 * * * *", "_minutes", (50, 55)),
        ("1,5-7,20-30/5 * * * *", "_minutes", (1, 5, 6, 7, 20, 25, 30)),
        ("0 */6 * * *", "_hours", (0, 6, 12, 18)),
        ("0 0 1-31/10 * *", "_doms", (1, 11, 21, 31)),
        ("0 0 * JAN,jul,Dec *", "_months", (1, 7, 12)),
        ("0 0 * Mar-May *", "_months", (3, 4, 5)),
        ("0 0 * * SUN,wed,Sat", "_dows", (0, 3, 6)),
        ("0 0 * * 7", "_dows", (0,)),
        ("0 0 * * 0,7", "_dows", (0,)),
        ("0 0 * * 5-7", "_dows", (0, 5, 6)),
        ("0 0 * * */2", "_dows", (0, 2, 4, 6)),
        ("0 0 * * fri-7", "_dows", (0, 5, 6)),
    ],
)
def test_fields_expand_to_the_values_they_name(expression: str, field: str, values: tuple[int, ...]) -> None:
    assert getattr(Cron(expression), field) == values


def test_sunday_is_both_0_and_7() -> None:
    after = utc(2024, 5, 1)  # a Wednesday
    assert Cron("0 0 * * 0").next_after(after) == Cron("0 0 * * 7").next_after(after) == Cron("0 0 * * sun").next_after(after)
    assert Cron("0 0 * * 7").next_after(after) == utc(2024, 5, 5)


def test_whitespace_is_normalised_and_names_are_case_insensitive() -> None:
    assert Cron("  0   9 * *  MON-fri ").expression == "0 9 * * MON-fri"
    assert Cron("0 9 * * MON-FRI")._dows == Cron("0 9 * * mon-fri")._dows == (1, 2, 3, 4, 5)


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("*/5 * * *", "Cron('*/5 * * *'): expression must have 5 fields (minute hour day-of-month month day-of-week), "
                      "got 4; e.g. fn.Cron(\"*/5 * * * *\")"),
        ("", "expression must have 5 fields (minute hour day-of-month month day-of-week), got 0"),
        ("* * * * * *", "got 6"),
        ("61 * * * *", "minute 61 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 0 * *", "day-of-month 0 is out of range 1-31"),
        ("0 0 32 * *", "day-of-month 32 is out of range 1-31"),
        ("0 0 * 13 *", "month 13 is out of range 1-12 or jan-dec"),
        ("0 0 * * 8", "day-of-week 8 is out of range 0-7 (0 and 7 are Sunday) or sun-sat"),
        ("0 0 * * mo", "day-of-week 'mo' is not a number or a name: use 0-7 (0 and 7 are Sunday) or sun-sat"),
        ("0 0 * foo *", "month 'foo' is not a number or a name: use 1-12 or jan-dec"),
        ("x * * * *", "minute 'x' is not a number: use 0-59"),
        ("-5 * * * *", "minute '' is not a number"),
        ("1,,2 * * * *", "minute '' is not a number"),
        ("1-2-3 * * * *", "minute '2-3' is not a number"),
        ("²/2 * * * *", "minute '²' is not a number"),
        ("*/0 * * * *", "minute step '0' must be a whole number of at least 1, as in */15"),
        ("*/x * * * *", "minute step 'x' must be a whole number of at least 1"),
        ("*/ * * * *", "minute step '' must be a whole number"),
        ("30-10 * * * *", "minute range '30-10' goes backwards; write it low-high or as a list (0-59)"),
        ("0 0 * * fri-sun", "day-of-week range 'fri-sun' goes backwards"),
        ("@reboot", "unknown macro '@reboot'; use one of @hourly, @daily"),
        ("0 0 31 2 *", "Cron('0 0 31 2 *'): day-of-month 31 never occurs in month 2, so it never fires"),
        ("0 0 30 feb *", "day-of-month 30 never occurs in month feb"),
        ("0 0 31 4,6,9,11 *", "never occurs"),
        ("0 0 30,31 2 */2", "never occurs"),  # day-of-week starting with * ANDs: still never
    ],
)
def test_bad_expressions_are_refused_naming_the_field_the_value_and_what_is_allowed(expression: str, message: str) -> None:
    with pytest.raises(fn.SpecError) as caught:
        Cron(expression)
    assert message in str(caught.value)
    assert str(caught.value).endswith('e.g. fn.Cron("*/5 * * * *")')
    assert isinstance(caught.value, ValueError)


def test_a_non_string_expression_is_refused() -> None:
    with pytest.raises(fn.SpecError, match="expression must be a string"):
        Cron(5)  # type: ignore[arg-type]


@pytest.mark.parametrize("tz", ["Europe/Berln", "", "../etc/passwd", "/etc/localtime", "Europe", "Nowhere/\0", 3])
def test_an_unknown_time_zone_is_refused(tz: object) -> None:
    with pytest.raises(fn.SpecError, match=r"unknown time zone.*IANA name such as 'Europe/Berlin'") as caught:
        Cron("0 0 * * *", tz=tz)  # type: ignore[arg-type]
    assert str(caught.value).startswith(f"Cron(tz={tz!r}): unknown time zone")


def test_a_misspelt_time_zone_gets_a_suggestion() -> None:
    with pytest.raises(fn.SpecError, match=r"Cron\(tz='Europe/Berln'\): unknown time zone \(did you mean 'Europe/Berlin'\?\)"):
        Cron("*/5 * * * *", tz="Europe/Berln")


def test_day_of_month_never_occurring_is_fine_when_day_of_week_can_match() -> None:
    assert Cron("0 0 31 2 mon").next_after(utc(2024, 1, 1)) == utc(2024, 2, 5)  # Vixie OR: the Mondays of February


# --- day-of-month and day-of-week ---------------------------------------------------------------


def test_vixie_either_rule_when_both_days_are_restricted() -> None:
    cron, ticks, t = Cron("0 0 13 * fri"), [], utc(2024, 9, 1)
    for _ in range(6):
        t = cron.next_after(t)
        ticks.append(t.date())
    # the 13th of each month AND every Friday; 2024-09-13 is both, fires once
    assert ticks == [date(2024, 9, 6), date(2024, 9, 13), date(2024, 9, 20), date(2024, 9, 27), date(2024, 10, 4),
                     date(2024, 10, 11)]
    assert Cron("0 0 13 * fri").next_after(utc(2024, 10, 12)) == utc(2024, 10, 13)


def test_a_day_field_starting_with_a_star_makes_it_an_and_as_in_vixie_cron() -> None:
    # */2 day-of-month starts with '*': odd days that are also Mondays
    assert Cron("0 0 */2 * mon").next_after(utc(2024, 5, 1)) == utc(2024, 5, 13)
    assert Cron("0 0 1 * */7").next_after(utc(2024, 5, 1)) == utc(2024, 9, 1)  # the 1st, when it is a Sunday


# --- boundaries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (utc(2024, 5, 1, 12, 50), utc(2024, 5, 1, 13)),
        (utc(2024, 5, 1, 12, 45), utc(2024, 5, 1, 13)),
        (utc(2024, 5, 1, 23, 59, 59, 999999), utc(2024, 5, 2)),
        (utc(2024, 1, 31, 23, 45), utc(2024, 2, 1)),
        (utc(2024, 2, 29, 23, 46), utc(2024, 3, 1)),
        (utc(2023, 12, 31, 23, 45), utc(2024, 1, 1)),
        (utc(2024, 5, 1, 12, 14, 59), utc(2024, 5, 1, 12, 15)),
        (utc(2024, 5, 1, 12, 15), utc(2024, 5, 1, 12, 30)),
    ],
)
def test_every_15_minutes_across_hour_day_month_and_year(after: datetime, expected: datetime) -> None:
    assert Cron("*/15 * * * *").next_after(after) == expected


def test_leap_day_fires_only_in_leap_years_and_skips_2100() -> None:
    cron = Cron("0 0 29 2 *")
    assert cron.next_after(utc(2024, 3, 1)) == utc(2028, 2, 29)
    assert cron.next_after(utc(2024, 2, 28, 12)) == utc(2024, 2, 29)
    assert cron.next_after(utc(2096, 3, 1)) == utc(2104, 2, 29)


def test_rare_expressions_are_found_years_ahead() -> None:
    # Feb 29 that is a Sunday (day-of-week starts with '*': AND): 2004, 2032, 2060, 2088, then 2128 across 2100
    cron = Cron("0 0 29 2 */7")
    assert cron.next_after(utc(2004, 3, 1)) == utc(2032, 2, 29)
    assert cron.next_after(utc(2088, 3, 1)) == utc(2128, 2, 29)


def test_no_fire_time_left_raises_instead_of_looping() -> None:
    with pytest.raises(ValueError, match=r"Cron\('0 0 29 2 \*'\) has no fire time before 9999"):
        Cron("0 0 29 2 *").next_after(utc(9997, 3, 1))


def _reference(cron: Cron, after: datetime) -> datetime:
    """A brute force in UTC: every minute of every matching day, in order."""
    day = after.date()
    while True:
        dom, dow = day.day in cron._doms, day.isoweekday() % 7 in cron._dows
        either = not (cron._dom_star or cron._dow_star)
        if day.month in cron._months and ((dom or dow) if either else (dom and dow)):
            for hour in cron._hours:
                for minute in cron._minutes:
                    t = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                    if t > after:
                        return t
        day += timedelta(days=1)


def test_random_expressions_agree_with_a_brute_force() -> None:
    rng = random.Random(20240501)

    def part(lo: int, hi: int) -> str:
        a, b = sorted(rng.sample(range(lo, hi + 1), 2))
        forms = ["*", f"*/{rng.randint(2, 9)}", str(a), f"{a}-{b}", f"{a}-{b}/{rng.randint(1, 4)}", f"{a},{b}", f"{a}/7"]
        return rng.choice(forms)

    for _ in range(300):
        expression = " ".join(part(lo, hi) for _, lo, hi in _schedule._FIELDS)
        try:
            cron = Cron(expression)
        except fn.SpecError:
            continue
        after = utc(2020, 1, 1) + timedelta(minutes=rng.randint(0, 6 * 365 * 1440), seconds=rng.choice([0, 30]))
        for _ in range(3):
            tick = cron.next_after(after)
            assert tick == _reference(cron, after), expression
            after = tick


# --- time zones ---------------------------------------------------------------------------------


def test_cron_is_evaluated_in_its_time_zone() -> None:
    assert Cron("0 9 * * *", tz="Europe/Berlin").next_after(utc(2024, 1, 15)) == utc(2024, 1, 15, 8)  # CET: UTC+1
    assert Cron("0 9 * * *", tz="Europe/Berlin").next_after(utc(2024, 7, 15)) == utc(2024, 7, 15, 7)  # CEST: UTC+2
    assert Cron("0 0 * * mon", tz="America/New_York").next_after(utc(2024, 7, 15, 3)) == utc(2024, 7, 15, 4)


def test_a_time_skipped_by_spring_forward_does_not_fire_berlin() -> None:
    cron = Cron("30 2 * * *", tz="Europe/Berlin")  # 2024-03-31: 02:00 CET -> 03:00 CEST
    assert cron.next_after(datetime(2024, 3, 30, 2, 30, tzinfo=BERLIN)) == datetime(2024, 4, 1, 2, 30, tzinfo=BERLIN)
    every = Cron("*/15 * * * *", tz="Europe/Berlin")
    assert every.next_after(datetime(2024, 3, 31, 1, 45, tzinfo=BERLIN)) == utc(2024, 3, 31, 1)  # 03:00 CEST


def test_a_time_repeated_by_fall_back_fires_once_berlin() -> None:
    cron = Cron("30 2 * * *", tz="Europe/Berlin")  # 2024-10-27: 03:00 CEST -> 02:00 CET, 02:30 happens twice
    first = cron.next_after(utc(2024, 10, 26, 12))
    assert first == utc(2024, 10, 27, 0, 30)  # 02:30 CEST, the first (fold=0)
    assert cron.next_after(first) == utc(2024, 10, 28, 1, 30)  # not 02:30 CET the same night
    second_pass = datetime(2024, 10, 27, 2, 10, fold=1, tzinfo=BERLIN)  # between the two 02:30s
    assert cron.next_after(second_pass) == utc(2024, 10, 28, 1, 30)
    # each wall-clock minute fires once: after 02:45 CEST comes 03:00 CET, the repeated hour does not fire again
    assert Cron("*/15 * * * *", tz="Europe/Berlin").next_after(utc(2024, 10, 27, 0, 45)) == utc(2024, 10, 27, 2)


def test_dst_in_new_york() -> None:
    cron = Cron("30 2 * * *", tz="America/New_York")  # 2024-03-10: 02:00 EST -> 03:00 EDT
    assert cron.next_after(utc(2024, 3, 9, 12)) == utc(2024, 3, 11, 6, 30)
    fall = Cron("30 1 * * *", tz="America/New_York")  # 2024-11-03: 02:00 EDT -> 01:00 EST
    first = fall.next_after(utc(2024, 11, 2, 12))
    assert first == utc(2024, 11, 3, 5, 30)  # 01:30 EDT
    assert fall.next_after(first) == utc(2024, 11, 4, 6, 30)  # 01:30 EST the next day
    hourly = Cron("0 * * * *", tz="America/New_York")
    assert hourly.next_after(utc(2024, 3, 10, 6)) == utc(2024, 3, 10, 7)  # 01:00 EST -> 03:00 EDT, one hour later


def test_after_may_be_in_any_time_zone() -> None:
    cron = Cron("*/15 * * * *", tz="Europe/Berlin")
    assert cron.next_after(datetime(2024, 5, 1, 7, 5, tzinfo=timezone(timedelta(hours=-5)))) == utc(2024, 5, 1, 12, 15)


# --- Period -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "after", "expected"),
    [
        (Period(seconds=30), utc(2024, 5, 1, 12, 0, 10), utc(2024, 5, 1, 12, 0, 30)),
        (Period(seconds=30), utc(2024, 5, 1, 12, 0, 30), utc(2024, 5, 1, 12, 1)),
        (Period(seconds=30), utc(2024, 5, 1, 12, 0, 29, 999999), utc(2024, 5, 1, 12, 0, 30)),
        (Period(minutes=5), utc(2024, 5, 1, 12, 3), utc(2024, 5, 1, 12, 5)),
        (Period(hours=1, minutes=30), utc(2024, 5, 1), utc(2024, 5, 1, 1, 30)),  # 19844 days = 317504 periods
        (Period(hours=7), utc(1970, 1, 1, 6), utc(1970, 1, 1, 7)),
        (Period(hours=7), utc(2024, 5, 1), utc(2024, 5, 1, 3)),  # 476256 h since the epoch = 7 * 68036 + 4
        (Period(seconds=1.5), utc(2024, 5, 1, 0, 0, 0, 400000), utc(2024, 5, 1, 0, 0, 1, 500000)),
        (Period(seconds=30), utc(1969, 12, 31, 23, 59, 50), utc(1970, 1, 1)),
        (Period(seconds=30), datetime(2024, 5, 1, 14, 0, 10, tzinfo=BERLIN), utc(2024, 5, 1, 12, 0, 30)),
    ],
)
def test_period_ticks_are_multiples_since_the_epoch(period: Period, after: datetime, expected: datetime) -> None:
    tick = period.next_after(after)
    assert tick == expected
    assert tick.tzinfo is UTC
    assert (tick - _schedule._EPOCH) % timedelta(seconds=period.every_s) == timedelta(0)


def test_period_ticks_are_exact_over_many_steps() -> None:
    period, t = Period(seconds=0.1 + 1.2), utc(2024, 5, 1)
    ticks = [t := period.next_after(t) for _ in range(10_000)]
    assert {b - a for a, b in itertools.pairwise(ticks)} == {timedelta(seconds=1.3)}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "Period(seconds=0): the period must be at least 1 second and at most 366 days in total, got 0 s"),
        ({"seconds": 0}, "Period(seconds=0): the period must be at least 1 second"),
        ({"seconds": 0.5}, "got 0.5 s"),
        ({"seconds": -5}, "Period(seconds=-5): seconds must be a finite number of 0 or more, got -5"),
        ({"hours": 1, "minutes": -1}, "Period(hours=1, minutes=-1): minutes must be a finite number of 0 or more"),
        ({"hours": 366 * 24, "seconds": 1}, "at most 366 days in total, got 31622401 s"),
        ({"hours": 10**400}, "at most 366 days"),
        ({"seconds": float("nan")}, "seconds must be a finite number of 0 or more, got nan"),
        ({"minutes": float("inf")}, "minutes must be a finite number of 0 or more, got inf"),
        ({"seconds": True}, "seconds must be a finite number of 0 or more, got True"),
        ({"seconds": "30"}, "seconds must be a finite number of 0 or more, got '30'"),
    ],
)
def test_bad_periods_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(fn.SpecError) as caught:
        Period(**kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert "e.g. fn.Period(seconds=30)" in str(caught.value)


def test_period_limits_are_inclusive() -> None:
    assert Period(seconds=1).every_s == 1.0
    assert Period(hours=366 * 24).every_s == 366 * 86400.0


# --- naive datetimes, next_tick -------------------------------------------------------------------


@pytest.mark.parametrize("schedule", [Cron("* * * * *"), Period(seconds=30)])
def test_naive_datetimes_are_refused(schedule: Cron | Period) -> None:
    with pytest.raises(ValueError, match=r"must be an aware datetime"):
        schedule.next_after(datetime(2024, 5, 1, 12))
    with pytest.raises(ValueError, match=r"must be an aware datetime"):
        next_tick(schedule, datetime(2024, 5, 1, 12))


def test_next_tick_is_next_after() -> None:
    after = utc(2024, 5, 1, 12, 0, 10)
    assert next_tick(Period(seconds=30), after) == utc(2024, 5, 1, 12, 0, 30)
    assert next_tick(Cron("*/5 * * * *", tz="Europe/Berlin"), after) == utc(2024, 5, 1, 12, 5)


# --- JSON, describe, value semantics ------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "data"),
    [
        (Cron("*/5 * * * *", tz="Europe/Berlin"), {"cron": "*/5 * * * *", "tz": "Europe/Berlin"}),
        (Cron("@daily"), {"cron": "@daily", "tz": "UTC"}),
        (Period(seconds=30), {"every_s": 30.0}),
        (Period(hours=1, minutes=30), {"every_s": 5400.0}),
        (Period(seconds=1.1), {"every_s": 1.1}),
    ],
)
def test_json_round_trip(schedule: Cron | Period, data: dict[str, object]) -> None:
    assert schedule_to_json(schedule) == data
    assert schedule_from_json(data) == schedule
    assert schedule_from_json(schedule_to_json(schedule)) == schedule


def test_json_tz_defaults_to_utc() -> None:
    assert schedule_from_json({"cron": "0 0 * * *"}) == Cron("0 0 * * *", tz="UTC")


@pytest.mark.parametrize(
    "data",
    [{}, {"cron": "* * * * *", "every_s": 30}, {"every_s": "30"}, {"every_s": True}, {"every_s": None}, {"every_s": 0},
     {"cron": "* * * *"}, {"cron": 5}, {"cron": "* * * * *", "tz": "Mars/Olympus"}, {"cron": "* * * * *", "zone": "UTC"},
     {"period": 30}, [("every_s", 30)], "every 30 s", None],
)
def test_bad_json_raises_value_error(data: object) -> None:
    with pytest.raises(ValueError):
        schedule_from_json(data)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("schedule", "text"),
    [
        (Period(seconds=30), "every 30 s"),
        (Period(seconds=1.5), "every 1.5 s"),
        (Period(minutes=5), "every 5 min"),
        (Period(hours=1, minutes=30), "every 1 h 30 min"),
        (Period(seconds=3661), "every 1 h 1 min 1 s"),
        (Cron("*/5 * * * *", tz="Europe/Berlin"), "cron */5 * * * * (Europe/Berlin)"),
        (Cron("@hourly"), "cron @hourly (UTC)"),
    ],
)
def test_describe(schedule: Cron | Period, text: str) -> None:
    assert describe(schedule) == text


def test_repr() -> None:
    assert repr(Cron("*/5 * * * *", tz="Europe/Berlin")) == "Cron('*/5 * * * *', tz='Europe/Berlin')"
    assert repr(Cron("0 0 * * *")) == "Cron('0 0 * * *')"
    assert repr(Period(seconds=30)) == "Period(seconds=30)"
    assert repr(Period(hours=1, minutes=30)) == "Period(hours=1, minutes=30)"
    assert repr(Period(seconds=1.5)) == "Period(seconds=1.5)"
    assert repr(schedule_from_json({"every_s": 300.0})) == "Period(seconds=300)"


def test_equality_and_hash() -> None:
    assert Cron("*/5 * * * *", tz="Europe/Berlin") == Cron("*/5  * * * *", tz="Europe/Berlin")
    assert Cron("*/5 * * * *") != Cron("*/5 * * * *", tz="Europe/Berlin")
    assert Cron("*/5 * * * *") != Cron("*/10 * * * *")
    assert Period(minutes=5) == Period(seconds=300) == Period(seconds=300.0)
    assert Period(minutes=5) != Period(minutes=6)
    others: list[object] = [Period(hours=1), "0 * * * *"]
    assert all(Cron("0 * * * *") != other for other in others)
    assert len({Cron("0 * * * *"), Cron("0 * * * *"), Period(minutes=1), Period(seconds=60), Cron("0 * * * *", tz="UTC")}) == 2


def test_schedules_are_immutable() -> None:
    cron, period = Cron("0 * * * *"), Period(seconds=30)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cron.tz = "Europe/Berlin"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        period._us = 1  # type: ignore[misc]


@pytest.mark.parametrize("schedule", [Cron("*/5 * * * *", tz="Europe/Berlin"), Period(hours=1, minutes=30)])
def test_schedules_pickle(schedule: Cron | Period) -> None:
    copy = pickle.loads(pickle.dumps(schedule))
    assert copy == schedule
    assert repr(copy) == repr(schedule)
    assert copy.next_after(utc(2024, 5, 1)) == schedule.next_after(utc(2024, 5, 1))


def test_the_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(_schedule.__file__).read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert {name.split(".")[0] for name in names} <= set(sys.stdlib_module_names) | {"__future__"}
