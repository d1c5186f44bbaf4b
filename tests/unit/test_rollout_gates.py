"""Canary gates: windows over real hub snapshots, the verdicts, and the parsers the CLI and API share."""

from __future__ import annotations

import pytest

from fn import BadRequest
from fnplatform.control.rollout_gates import (
    Gates,
    VersionWindow,
    judge,
    parse_duration,
    parse_percent,
    window,
)
from fnplatform.serving.metrics import BUCKETS, Delta, Recorder, Totals


class Hub:
    """The hub's totals, fed by a replica's recorder the way the shipper does."""

    def __init__(self) -> None:
        self.totals = Totals()
        self.recorder = Recorder()
        self.seq = 0

    def calls(self, n: int, *, function: str = "add", version: int = 3, code: int = 200, seconds: float = 0.02) -> None:
        for _ in range(n):
            self.recorder.call_finished(function, str(version), code, seconds)
        self.seq += 1
        self.totals.add("replica-1", self.seq, self.recorder.drain())

    def snapshot(self) -> Delta:
        return self.totals.snapshot()


def vw(version: int, calls: int, errors: int = 0, p99_s: float | None = 0.05) -> VersionWindow:
    return VersionWindow(version, calls, errors, errors / calls if calls else 0.0, p99_s)


GATES = Gates(max_error_rate=0.01, max_p99_ratio=1.5, min_calls=10)


def test_window_since_start_counts_only_5xx_as_errors() -> None:
    hub = Hub()
    hub.calls(45)
    hub.calls(2, code=500)
    hub.calls(1, code=503)
    hub.calls(1, code=499)  # the caller went away: not the version's fault
    hub.calls(3, code=404)
    hub.calls(7, version=4, code=500)  # another version
    hub.calls(5, function="other", code=500)  # another function
    got = window(None, hub.snapshot(), "add", 3)
    assert (got.version, got.calls, got.errors) == (3, 52, 3)
    assert got.error_rate == pytest.approx(3 / 52)
    assert got.p99_s == 0.025


def test_window_is_the_difference_of_two_snapshots() -> None:
    hub = Hub()
    hub.calls(100, code=500, seconds=2.0)
    before = hub.snapshot()
    hub.calls(20, seconds=0.02)
    hub.calls(1, code=502, seconds=0.02)
    got = window(before, hub.snapshot(), "add", 3)
    assert (got.calls, got.errors) == (21, 1)
    assert got.p99_s == 0.025  # the slow calls before the window do not count


def test_a_hub_restart_between_snapshots_uses_the_new_totals_alone() -> None:
    old = Hub()
    old.calls(100)
    before = old.snapshot()
    new = Hub()  # the hub restarted: its totals start from zero
    new.calls(4, code=500, seconds=0.3)
    new.calls(1, seconds=0.3)
    got = window(before, new.snapshot(), "add", 3)
    assert (got.calls, got.errors) == (5, 4)
    assert got.p99_s == 0.5


def test_a_restart_seen_only_in_the_histogram_still_drops_before() -> None:
    labels = ("add", "3")
    before = Delta(counters={("fn_requests_total", ("add", "3", "200")): 3.0},
                   histograms={("fn_request_duration_seconds", labels): [0.0] * 7 + [50.0] + [0.0] * 11 + [50.0]})
    counts = [0.0] * (len(BUCKETS) + 2)
    counts[0] = 5.0
    now = Delta(counters={("fn_requests_total", ("add", "3", "200")): 5.0},
                histograms={("fn_request_duration_seconds", labels): counts})
    got = window(before, now, "add", 3)
    assert got.calls == 5  # not 5 - 3: the histogram went down, so the counter's difference is not trusted
    assert got.p99_s == BUCKETS[0]


def test_p99_uses_ceil_rank() -> None:
    hub = Hub()
    hub.calls(99, seconds=0.02)
    hub.calls(2, seconds=0.4)
    # 101 samples: rank ceil(99.99) = 100, past the 99 fast ones (a floor rank would say 0.025)
    assert window(None, hub.snapshot(), "add", 3).p99_s == 0.5
    hub = Hub()
    hub.calls(99, seconds=0.02)
    hub.calls(1, seconds=0.4)
    assert window(None, hub.snapshot(), "add", 3).p99_s == 0.025


def test_p99_in_the_inf_bucket_is_the_largest_finite_bound() -> None:
    hub = Hub()
    hub.calls(10, seconds=5000.0)
    assert window(None, hub.snapshot(), "add", 3).p99_s == BUCKETS[-1] == 3600.0


def test_calls_without_durations_have_no_p99_and_no_calls_give_zero_rate() -> None:
    now = Delta(counters={("fn_requests_total", ("add", "3", "200")): 4.0})
    got = window(None, now, "add", 3)
    assert (got.calls, got.p99_s) == (4, None)
    empty = window(None, Delta(), "add", 3)
    assert (empty.calls, empty.errors, empty.error_rate, empty.p99_s) == (0, 0, 0.0, None)


def test_a_canary_failing_every_call_fails_before_min_calls() -> None:
    verdict = judge(vw(4, 3, errors=3), vw(3, 200), GATES)
    assert verdict.outcome == "fail"
    assert "3 of its first 3 calls" in verdict.reason and "10 calls" in verdict.reason


def test_a_few_errors_that_min_calls_could_still_absorb_wait() -> None:
    gates = Gates(max_error_rate=0.2, max_p99_ratio=1.5, min_calls=10)
    # 2 errors: 0.2 * max(3, 10) = 2 allowed, not exceeded; 3 would be.
    assert judge(vw(4, 3, errors=2), vw(3, 200), gates).outcome == "wait"
    assert judge(vw(4, 3, errors=3), vw(3, 200), gates).outcome == "fail"


def test_error_rate_above_stable_plus_allowance_fails() -> None:
    verdict = judge(vw(4, 50, errors=6), vw(3, 200), GATES)
    assert verdict.outcome == "fail"
    assert verdict.reason == ("canary v4 error rate 12.0% (6 of 50) exceeds stable v3's 0.0% "
                              "by more than the allowed 1.0%")
    assert verdict.canary.version == 4 and verdict.stable.version == 3


def test_error_rate_exactly_at_the_limit_passes_despite_float_rounding() -> None:
    gates = Gates(max_error_rate=0.06, max_p99_ratio=1.5)
    assert 0.01 + 0.06 < 0.07  # the float sum lands below the exact limit
    assert judge(vw(4, 100, errors=7), vw(3, 100, errors=1), gates).outcome == "pass"
    assert judge(vw(4, 100, errors=8), vw(3, 100, errors=1), gates).outcome == "fail"


def test_wait_below_min_calls_says_how_many() -> None:
    verdict = judge(vw(4, 3), vw(3, 200), GATES)
    assert verdict.outcome == "wait"
    assert "3 of the 10 calls" in verdict.reason


def test_p99_in_the_same_bucket_passes_even_below_ratio_one() -> None:
    strict = Gates(max_error_rate=0.01, max_p99_ratio=0.5)
    assert judge(vw(4, 200, p99_s=0.25), vw(3, 200, p99_s=0.25), strict).outcome == "pass"


def test_p99_above_the_ratio_fails_and_within_passes() -> None:
    verdict = judge(vw(4, 200, p99_s=0.1), vw(3, 200, p99_s=0.05), GATES)
    assert verdict.outcome == "fail"
    assert "0.1s" in verdict.reason and "0.05s" in verdict.reason and "x1.5" in verdict.reason
    loose = Gates(max_error_rate=0.01, max_p99_ratio=2.0)
    assert judge(vw(4, 200, p99_s=0.1), vw(3, 200, p99_s=0.05), loose).outcome == "pass"


def test_p99_is_not_compared_until_stable_has_min_calls() -> None:
    verdict = judge(vw(4, 200, p99_s=60.0), vw(3, 4, p99_s=0.05), GATES)
    assert verdict.outcome == "pass"
    assert "p99 not compared" in verdict.reason and "v3 has 4 of the 100 calls" in verdict.reason
    one_slow_first_call = judge(vw(4, 60, p99_s=0.5), vw(3, 60, p99_s=0.01), GATES)
    assert one_slow_first_call.outcome == "pass" and "v4 has 60 of the 100" in one_slow_first_call.reason


def test_pass_reason_gives_both_rates_and_p99s() -> None:
    verdict = judge(vw(4, 150, p99_s=0.05), vw(3, 200, errors=2, p99_s=0.05), GATES)
    assert verdict.outcome == "pass"
    assert "0.0% (0 of 150)" in verdict.reason and "1.0% (2 of 200)" in verdict.reason
    assert "p99 0.05s vs 0.05s" in verdict.reason


def test_judging_real_windows_end_to_end() -> None:
    hub = Hub()
    hub.calls(200, version=3, seconds=0.02)
    before = hub.snapshot()
    hub.calls(30, version=3, seconds=0.02)
    hub.calls(12, version=4, seconds=0.02)
    hub.calls(3, version=4, code=500, seconds=0.02)
    now = hub.snapshot()
    verdict = judge(window(before, now, "add", 4), window(before, now, "add", 3), GATES)
    assert verdict.outcome == "fail"
    assert "20.0% (3 of 15)" in verdict.reason


@pytest.mark.parametrize("bad", [{"max_error_rate": 1.5}, {"max_p99_ratio": 0.0}, {"min_calls": 0}])
def test_gates_refuse_impossible_settings(bad: dict[str, float]) -> None:
    settings: dict[str, float] = {"max_error_rate": 0.01, "max_p99_ratio": 1.5, **bad}
    with pytest.raises(ValueError, match=next(iter(bad))):
        Gates(settings["max_error_rate"], settings["max_p99_ratio"], int(settings.get("min_calls", 10)))


@pytest.mark.parametrize(("text", "expected"), [("1%", 0.01), ("0.5%", 0.005), ("0.01", 0.01), (" 100% ", 1.0),
                                                ("0", 0.0)])
def test_parse_percent(text: str, expected: float) -> None:
    assert parse_percent(text, "max-error-rate") == pytest.approx(expected)


@pytest.mark.parametrize(("text", "wrong"), [("abc", "not a percentage"), ("150%", "above 100%"),
                                             ("-1%", "negative"), ("nan", "not a percentage"), ("", "not a percentage"),
                                             ("5", "write 5%")])
def test_parse_percent_errors_name_the_parameter(text: str, wrong: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_percent(text, "max-error-rate")
    assert caught.value.status == 400
    assert caught.value.message.startswith("max-error-rate: ")
    assert wrong in caught.value.message and "0% to 100%" in caught.value.message


@pytest.mark.parametrize(("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("1.5m", 90.0),
                                               ("1h", 3600.0), ("168h", 7 * 24 * 3600.0)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text, "window") == seconds


@pytest.mark.parametrize(("text", "wrong"), [("0", "not above 0"), ("169h", "longer than 7 days"),
                                             ("-5s", "not a duration"), ("5 minutes", "not a duration"),
                                             ("inf", "not a duration")])
def test_parse_duration_errors_name_the_parameter(text: str, wrong: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_duration(text, "window")
    assert caught.value.status == 400
    assert caught.value.message.startswith("window: ") and wrong in caught.value.message
