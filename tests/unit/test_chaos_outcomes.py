"""The chaos suite's bookkeeping (bench/_chaos_outcomes.py): what counts as a clean fn error, refused, hung
or failed otherwise, what a flow run or a job ended as, and when a platform counts as recovered. The suite
itself needs Ray: tests/e2e/test_chaos.py."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

import fn
from fnplatform.serving.http import error_response

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

# bench/ is not a package: its folder goes on the path first
from _chaos_outcomes import (
    CLEAN,
    CUT,
    HUNG,
    OK,
    OTHER,
    REFUSED,
    FaultRow,
    JobRecord,
    Outcome,
    RunRecord,
    classify_response,
    classify_sdk_error,
    classify_transport,
    fill,
    recovery_s,
    table,
)


def _fn_error(status: int) -> httpx.Response:
    sent = error_response(status, "Unavailable", "echo is at capacity", "req-1", retry_after=1)
    return httpx.Response(status, content=bytes(sent.body), headers={"content-type": "application/json"})


@pytest.mark.parametrize(("response", "right", "kind"), [
    (httpx.Response(200, json=5), True, OK),
    (httpx.Response(200, json=6), False, OTHER),  # a wrong answer
    (_fn_error(503), False, CLEAN),
    (_fn_error(504), False, CLEAN),
    (_fn_error(500), False, OTHER),  # fn's JSON, but our functions never raise: a platform failure
    (_fn_error(404), False, OTHER),  # a registered function must never be "not found"
    (httpx.Response(503, text="<html><body><h1>503 Service Unavailable</h1></body></html>"), False, OTHER),
    (httpx.Response(503, json={"error": {"type": "Unavailable", "message": "x"}}), False, OTHER),  # no request id
])
def test_an_http_answer_is_clean_only_as_fns_json_error_with_a_status_worth_retrying(
        response: httpx.Response, right: bool, kind: str) -> None:
    assert classify_response(response, right)[0] == kind


def test_a_request_with_no_answer_is_refused_hung_or_cut_off() -> None:
    request = httpx.Request("POST", "http://127.0.0.1:1/echo")
    assert classify_transport(httpx.ConnectError("refused", request=request))[0] == REFUSED
    assert classify_transport(httpx.ReadTimeout("slow", request=request))[0] == HUNG
    assert classify_transport(httpx.ConnectTimeout("slow", request=request))[0] == HUNG
    assert classify_transport(httpx.RemoteProtocolError("closed", request=request))[0] == CUT
    assert classify_transport(httpx.ReadError("reset", request=request))[0] == CUT
    assert classify_transport(httpx.WriteError("broken", request=request))[0] == OTHER


def _raised_from(cause: httpx.TransportError, error: fn.ClientError) -> fn.ClientError:
    try:
        try:
            raise cause
        except httpx.TransportError:
            raise error from None  # as the SDK does: the cause stays as __context__
    except fn.ClientError as exc:
        return exc


def test_what_the_sdk_raises_is_classified_by_where_it_came_from() -> None:
    request = httpx.Request("POST", "http://127.0.0.1:1/echo")
    assert classify_sdk_error(fn.Unavailable("busy", status=503, request_id="r", error_type="Unavailable"))[0] == CLEAN
    assert classify_sdk_error(fn.Timeout("late", status=504, request_id="r", error_type="Timeout"))[0] == CLEAN
    assert classify_sdk_error(fn.RemoteError("boom", status=500, request_id="r", error_type="KeyError"))[0] == OTHER
    assert classify_sdk_error(fn.Unauthorized("no", status=401, request_id="r", error_type="Unauthorized"))[0] == OTHER
    own_timeout = _raised_from(httpx.ReadTimeout("slow", request=request), fn.Timeout("timed out", status=504))
    assert classify_sdk_error(own_timeout)[0] == HUNG
    refused = _raised_from(httpx.ConnectError("refused", request=request), fn.Unavailable("cannot reach", status=503))
    assert classify_sdk_error(refused)[0] == REFUSED
    html = fn.Unavailable("<html>503</html>", status=503)  # a page that is not fn's: no error type
    assert classify_sdk_error(html)[0] == OTHER
    assert classify_sdk_error(KeyError("x"))[0] == OTHER


def _at(*points: tuple[float, str]) -> list[Outcome]:
    return [Outcome("http echo", t, t + 0.1, kind) for t, kind in points]


def test_recovery_is_the_first_request_of_a_stretch_of_only_successes() -> None:
    oks = [(10 + i * 0.5, OK) for i in range(30)]  # 10 s .. 24.5 s
    outcomes = _at((8.0, OTHER), (11.0, OTHER), (12.2, CLEAN), *oks)
    outcomes = [o for o in outcomes if not (o.kind == OK and o.start in {11.0})]
    assert recovery_s(outcomes, fault_end=9.0, now=30.0, in_flight=[]) == pytest.approx(12.5 - 9.0)
    assert recovery_s(outcomes, fault_end=9.0, now=16.0, in_flight=[]) is None  # 12.5 + 5 s not seen yet
    assert recovery_s(outcomes, fault_end=9.0, now=30.0, in_flight=[14.0]) is None  # a request in the stretch is out
    assert recovery_s(_at(*oks), fault_end=9.0, now=30.0, in_flight=[]) == pytest.approx(1.0)
    assert recovery_s(_at((10.0, OK), (20.0, OK)), fault_end=9.0, now=30.0, in_flight=[]) is None  # too few requests


@pytest.mark.parametrize(("job", "verdict"), [
    (JobRecord("j", 0.0, 12, status="succeeded", result=12, attempts=1), "right"),
    (JobRecord("j", 0.0, 12, status="succeeded", result=12, attempts=3), "right"),  # run again after a lost run: right
    (JobRecord("j", 0.0, 12, status="succeeded", result=13), "wrong"),
    (JobRecord("j", 0.0, 12, status="succeeded", result=None), "wrong"),
    (JobRecord("j", 0.0, 12, status="failed", error={"type": "Timeout", "status": 504, "message": "late"}), "failed"),
    (JobRecord("j", 0.0, 12, status="cancelled"), "failed"),  # the load never cancels: ended, but not right
    (JobRecord("j", 0.0, 12), "lost"),  # never ended within the grace period
])
def test_a_job_is_right_only_when_it_succeeded_with_the_expected_result(job: JobRecord, verdict: str) -> None:
    assert job.verdict == verdict


def test_a_fault_row_counts_its_own_phase_and_the_table_shows_every_row() -> None:
    row = FaultRow("hub", note="SIGKILL the hub", start=0.0, end=10.0, recovery_s=2.5)
    outcomes = _at((1.0, OK), (2.0, CLEAN), (3.0, HUNG), (11.0, OTHER))
    runs = [RunRecord("a", 1.0, 4, status="succeeded", output=4), RunRecord("b", 2.0, 4, status="succeeded", output=5),
            RunRecord("c", 3.0, 4), RunRecord("d", 12.0, 4)]
    jobs = [JobRecord("j1", 0.5, 6, status="succeeded", result=6), JobRecord("j2", 1.5, 7, status="succeeded", result=7),
            JobRecord("j3", 2.5, 8, status="failed"), JobRecord("j4", 9.5, 9), JobRecord("j5", 10.0, 6, status="succeeded")]
    fill(row, outcomes, runs, jobs)
    assert row.requests == {"sent": 3, OK: 1, CLEAN: 1, REFUSED: 0, CUT: 0, OTHER: 0, HUNG: 1}
    assert row.flows == {"runs": 3, "right": 1, "wrong": 1, "failed": 0, "lost": 1}
    assert row.jobs == {"accepted": 4, "right": 2, "wrong": 0, "failed": 1, "lost": 1}  # j5 is the next phase's
    assert row.as_json()["jobs"] == row.jobs
    assert list(row.examples) == [CLEAN, HUNG]
    lines = table([row, FaultRow("store", error="moto did not stop")]).splitlines()
    assert lines[0].split()[:3] == ["fault", "sent", "ok"]
    header = lines[0].split("  ")
    assert [h.strip() for h in header if h.strip()][8:19] == ["flow runs", "right", "failed", "wrong", "lost", "jobs",
                                                               "right", "failed", "wrong", "lost", "recovery"]
    assert lines[1].split()[8:18] == ["3", "1", "0", "1", "1", "4", "2", "1", "0", "1"]
    assert "2.5 s" in lines[1] and "SIGKILL the hub" in lines[1]
    assert "not recovered" in lines[2] and "error: moto did not stop" in lines[2]
