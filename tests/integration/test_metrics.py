"""GET /metrics against the real platform: replicas' counts reach the hub and the control plane exactly,
N HTTP calls and M SDK calls growing fn_requests_total by N + M, a raising call counted once as a 500."""

from __future__ import annotations

import json
import time

import httpx
from harness import Platform, wait_for
from prometheus_client.parser import text_string_to_metric_families

import fn
from fnplatform.serving.metrics import PUSH_INTERVAL_S

N_HTTP = 37
M_SDK = 5


def requests_total(platform: Platform, function: str, code: str) -> float:
    """fn_requests_total of *function* with *code*, summed over its versions."""
    response = httpx.get(f"{platform.api_url}/metrics", headers={"Authorization": f"Bearer {platform.key}"}, timeout=30)
    assert response.status_code == 200, response.text
    return sum(sample.value for family in text_string_to_metric_families(response.text) for sample in family.samples
               if sample.name == "fn_requests_total" and sample.labels["function"] == function
               and sample.labels["code"] == code)


def settled(platform: Platform, function: str, code: str) -> float:
    """The count once earlier tests' calls have all been pushed: the same over two push intervals."""
    before = requests_total(platform, function, code)
    while True:
        time.sleep(2 * PUSH_INTERVAL_S + 0.5)
        now = requests_total(platform, function, code)
        if now == before:
            return now
        before = now


def test_calls_are_counted_exactly_once_each_with_their_status_code(basic: Platform) -> None:
    ok_before = settled(basic, "add", "200")
    failed_before = settled(basic, "boom", "500")
    with basic.client() as client:
        for n in range(N_HTTP):
            assert client.post("/add", json={"a": n, "b": 1}).json() == n + 1
        assert client.post("/boom", json={"key": "x"}).status_code == 500
    for n in range(M_SDK):
        assert fn.call("add", a=n, b=2) == n + 2
    expected = ok_before + N_HTTP + M_SDK
    wait_for(lambda: requests_total(basic, "add", "200") >= expected, timeout=30)
    time.sleep(2 * PUSH_INTERVAL_S + 0.5)  # a count pushed twice would show by now
    assert requests_total(basic, "add", "200") == expected
    assert requests_total(basic, "boom", "500") == failed_before + 1


def scrape(platform: Platform, name: str, **labels: str) -> float:
    response = httpx.get(f"{platform.api_url}/metrics", headers={"Authorization": f"Bearer {platform.key}"}, timeout=30)
    assert response.status_code == 200, response.text
    return sum(sample.value for family in text_string_to_metric_families(response.text) for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


def test_a_call_that_waited_for_a_replica_says_why_in_its_header_metrics_and_describe(basic: Platform) -> None:
    from fnplatform.serving.coldstart import PHASES, parse_breakdown

    assert fn.call("add", a=1, b=1) == 2
    wait_for(lambda: basic.fnctl("describe", "add", "--json").output.count('"state"') == 0, timeout=90, interval=1)
    totals_before = scrape(basic, "fn_cold_start_seconds_count", function="add", phase="total")
    with basic.client() as client:
        started = time.time()
        cold = client.post("/add", json={"a": 2, "b": 3})
        waited = time.time() - started
        warm = client.post("/add", json={"a": 2, "b": 4})
    assert cold.status_code == 200 and cold.json() == 5, cold.text
    phases = parse_breakdown(cold.headers["fn-cold-start"])
    assert list(phases) == ["total", *PHASES], cold.headers["fn-cold-start"]
    parts = sum(phases[name] for name in PHASES)
    assert abs(parts - phases["total"]) <= 0.1 * phases["total"] + 0.02  # rounded to 10 ms each
    assert 0 < phases["total"] <= waited + 0.05  # the wait was inside the caller's own
    assert phases["fetch"] + phases["import"] + phases["start"] + phases["place"] > 0  # a replica did start
    assert warm.status_code == 200 and "fn-cold-start" not in warm.headers  # served warm: nothing to explain
    wait_for(lambda: scrape(basic, "fn_cold_start_seconds_count", function="add", phase="total") > totals_before,
             timeout=30)
    assert scrape(basic, "fn_cold_start_seconds_count", function="add", phase="fetch") >= 1
    replicas = httpx.get(f"{basic.api_url}/metrics", headers={"Authorization": f"Bearer {basic.key}"}, timeout=30).text
    for state in ("starting", "running", "stopping"):  # add scales to zero within a second: its count may be 0 again
        assert f'fn_replicas{{function="add",state="{state}"}}' in replicas, replicas
    request_id = cold.headers.get_list("x-request-id")[0]  # Serve's proxy repeats the replica's id
    described = json.loads(basic.fnctl("describe", "add", "--json").output)
    assert request_id in [c["request_id"] for c in described["cold_starts"]]
    shown = basic.fnctl("describe", "add").output
    assert "last cold starts (seconds):" in shown  # the table itself wraps to the terminal's width
    # the same wait in the call's trace: a cold-start span under the edge's, a child span per phase, end to end
    spans = json.loads(basic.fnctl("trace", request_id, "--json", "--wait", "30").output)["spans"]
    edge = next(span for span in spans if span["name"] == "POST /add")
    started = next(span for span in spans if span["name"] == "cold start")
    children = sorted((span for span in spans if span["parent"] == started["span"]), key=lambda span: span["start"])
    assert started["parent"] == edge["span"] and [span["name"] for span in children] == list(PHASES)
    assert abs((started["end"] - started["start"]) - phases["total"]) <= 0.02
    assert edge["start"] == started["start"] and children[-1]["end"] <= edge["end"]
