"""The web console, in-process (no Ray, no browser): sign-in and its cookie, which routes take the cookie (the
console's pages) and which never do (the JSON API), what each kind of key sees, the security headers, and
the time series' math. The browser test is tests/e2e/test_console_browser.py."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

from fn._flow import FlowSpec, StepSpec
from fnplatform.control.api import create_app
from fnplatform.control.console import data
from fnplatform.control.console.gantt import WIDTH, timeline
from fnplatform.control.console.history import History, Sample, point, quantile, samples_of
from fnplatform.control.console.routes import HEADERS, REFUSED
from fnplatform.control.edge import CONSOLE_COOKIE, rule_for
from fnplatform.flows.state import RunRecord, StoredValue
from fnplatform.serving.metrics import BUCKETS, Delta

from .console_site import Site, build_site, patch_serve

ORIGIN = {"origin": "http://testserver"}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    patch_serve(monkeypatch)
    return build_site(tmp_path)


@pytest.fixture
def browser(site: Site) -> Iterator[TestClient]:
    with TestClient(create_app(site.plane, history=site.history), follow_redirects=False) as client:
        yield client


def sign_in(client: TestClient, key: str) -> None:
    response = client.post("/console/sign-in", data={"key": key}, headers=ORIGIN)
    assert response.status_code == 303 and response.headers["location"] == "/", response.text


# signing in -------------------------------------------------------------------------------------------
def test_without_a_cookie_the_root_is_the_sign_in_form_and_other_pages_refuse_with_it(browser: TestClient) -> None:
    home = browser.get("/")
    assert home.status_code == 200 and '<input id="key" name="key" type="password"' in home.text
    for path in ("/console/flows", "/console/functions/add", "/console/keys"):
        page = browser.get(path)
        assert page.status_code == 401 and 'name="key"' in page.text, path
        assert page.headers["content-type"].startswith("text/html")


def test_a_key_signs_in_into_an_httponly_strict_cookie_and_signs_out(site: Site, browser: TestClient) -> None:
    response = browser.post("/console/sign-in", data={"key": site.keys["invoke"]}, headers=ORIGIN)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{CONSOLE_COOKIE}={site.keys['invoke']};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie and "Secure" not in cookie
    assert site.keys["invoke"] not in response.headers["location"]
    assert "add" in browser.get("/").text
    out = browser.post("/console/sign-out", headers=ORIGIN)
    assert out.status_code == 303 and f'{CONSOLE_COOKIE}=""' in out.headers["set-cookie"]
    assert 'name="key"' in browser.get("/").text


def test_over_https_the_cookie_is_secure(site: Site) -> None:
    with TestClient(create_app(site.plane), base_url="https://console.example", follow_redirects=False) as client:
        response = client.post("/console/sign-in", data={"key": site.keys["invoke"]},
                               headers={"origin": "https://console.example"})
    assert response.status_code == 303 and "Secure" in response.headers["set-cookie"]


def test_a_wrong_or_revoked_key_is_refused_and_nothing_is_set(site: Site, browser: TestClient) -> None:
    site.plane.revoke_key(site.plane.registry.verify_key(site.keys["other"]).id)  # type: ignore[union-attr]
    for key in ("fn_wrong", "", site.keys["other"]):
        response = browser.post("/console/sign-in", data={"key": key}, headers=ORIGIN)
        assert response.status_code == 401 and REFUSED in response.text, key
        assert "set-cookie" not in response.headers


def test_sign_in_and_out_must_be_posted_from_the_console_itself(site: Site, browser: TestClient) -> None:
    for headers in ({}, {"origin": "https://evil.example"}, {"origin": "null"}, {"origin": "https://testserver"},
                    {"referer": "http://evil.example/console"}):
        response = browser.post("/console/sign-in", data={"key": site.keys["admin"]}, headers=headers)
        assert response.status_code == 403 and "set-cookie" not in response.headers, headers
    assert browser.post("/console/sign-in", data={"key": site.keys["admin"]},
                        headers={"referer": "http://testserver/"}).status_code == 303  # no Origin: its Referer
    sign_in(browser, site.keys["admin"])
    assert browser.post("/console/sign-out", headers={"origin": "https://evil.example"}).status_code == 403
    assert browser.get("/console/keys").status_code == 200  # still signed in


def test_the_sign_in_form_is_small(browser: TestClient) -> None:
    response = browser.post("/console/sign-in", content=b"key=" + b"x" * 5000, headers={
        **ORIGIN, "content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413


# the cookie is the console's only -----------------------------------------------------------------------
def test_the_json_api_never_takes_the_cookie(site: Site, browser: TestClient) -> None:
    sign_in(browser, site.keys["admin"])
    for method, path in (("GET", "/v1/functions"), ("GET", "/v1/keys"), ("POST", "/v1/keys"), ("GET", "/metrics"),
                         ("DELETE", "/v1/functions/add"), ("GET", "/v1/functions/add/logs")):
        response = browser.request(method, path, json={"name": "x"} if method == "POST" else None)
        assert response.status_code == 401, (method, path)
    assert len(site.plane.registry.keys()) == 5 and site.plane.registry.active("add") is not None


def test_the_console_pages_take_the_cookie_only_not_a_header(site: Site, browser: TestClient) -> None:
    response = browser.get("/console/flows", headers={"authorization": f"Bearer {site.keys['admin']}"})
    assert response.status_code == 401
    assert all(rule_for("GET", p).cookie for p in ("/", "/console/flows", "/console/functions/add", "/console/keys",
                                                    "/console/flows/pair/runs/abc"))
    assert not any(rule_for(m, p).cookie for m, p in (("GET", "/v1/functions"), ("POST", "/console/sign-in"),
                                                       ("GET", "/console/functions/add/logs"), ("POST", "/")))


# what each key sees -------------------------------------------------------------------------------------
def test_an_admin_sees_functions_with_their_numbers_flows_runs_and_keys(site: Site, browser: TestClient) -> None:
    sign_in(browser, site.keys["admin"])
    home = browser.get("/")
    assert home.status_code == 200
    row = home.text.split('id="function-add"')[1].split("</tr>")[0]
    # 40 calls in the 10 s interval; p50 in the 0.01-0.025 bucket, p99 in 0.1-0.25; 4 of 40 answered 500
    assert "1/1" in row and "4.00/s" in row and "20.0 ms" in row and "244.0 ms" in row and "10.0%" in row
    assert 'data-chart="add"' in row and '<script type="application/json" id="fn-series">' in home.text
    assert "0/0" in home.text.split('id="function-mul"')[1].split("</tr>")[0]
    page = browser.get("/console/functions/add")
    assert page.status_code == 200
    for shown in ("req0001", "req0003", "1.21 s", "warm", "hello from the user", "add-r0", "main:add"):
        assert shown in page.text, shown
    cold_bar = page.text.split("<code>req0001</code>")[1].split("</tr>")[0]  # its phases, then its work, stacked
    assert [c.split('"')[0] for c in cold_bar.split('<rect class="')[1:]] == [
        "cold scale", "cold place", "cold start", "cold fetch", "cold import", "cold setup", "cold route", "work"]
    # where its calls go: version 1 active at 90 %, version 2 a canary at 10 %, who split them and why
    split = page.text.split('<svg class="split"')[1].split("</svg>")[0]
    assert 'aria-label="version 1 90%, version 2 10%"' in split
    assert [c.split('"')[0] for c in split.split('<rect class="')[1:]] == ["stable", "canary"]
    history = page.text.split('<table class="history">')[1].split("</table>")[0]
    assert "split" in history and "v1 90 %, v2 10 %" in history and "a canary by hand" in history
    assert "admin key (a1b2)" in history
    versions = page.text.split('<table class="versions">')[1].split("</table>")[0]
    rows = versions.split("<tr>")[2:]  # newest first
    assert ">2<" in rows[0] and "state-canary" in rows[0] and "code; cpus: 0.25 -&gt; 0.5" in rows[0]
    assert ">1<" in rows[1] and "state-active" in rows[1] and "first version" in rows[1]
    found = browser.get("/console/functions/add", params={"grep": "HELLO"}).text.split('<pre class="logs">')[1]
    assert "hello from the user" in found and "req0001" not in found
    flows = browser.get("/console/flows").text
    assert site.run_id in flows
    keys = browser.get("/console/keys")
    assert keys.status_code == 200 and "scoped key" in keys.text
    assert all(k not in keys.text for k in site.keys.values())  # ids and names, never a key


def test_an_invoke_key_sees_no_logs_and_no_keys_page(site: Site, browser: TestClient) -> None:
    sign_in(browser, site.keys["invoke"])
    page = browser.get("/console/functions/add")
    assert page.status_code == 200 and "need a deploy key" in page.text and "req0001" not in page.text
    # where calls go and who changed it are the deploy role's, as in the API; the versions are listed
    assert '<svg class="split"' not in page.text and "a canary by hand" not in page.text
    assert "cdcdcdcdcdcd" in page.text.split('<table class="versions">')[1]
    refused = browser.get("/console/keys")
    assert refused.status_code == 403 and "admin" in refused.text and "scoped key" not in refused.text
    sign_in(browser, site.keys["deploy"])
    page = browser.get("/console/functions/add")
    assert "req0001" in page.text and "a canary by hand" in page.text
    assert browser.get("/console/keys").status_code == 403


def test_a_scoped_key_sees_only_its_functions_and_flows(site: Site, browser: TestClient) -> None:
    sign_in(browser, site.keys["scoped"])
    home = browser.get("/").text
    assert 'id="function-add"' in home and "mul" not in home
    assert browser.get("/console/functions/mul").status_code == 404
    assert "pair" not in browser.get("/console/flows").text
    assert browser.get(f"/console/flows/pair/runs/{site.run_id}").status_code == 404


def test_a_run_is_shown_to_its_owner_and_admins_only(site: Site, browser: TestClient) -> None:
    path = f"/console/flows/pair/runs/{site.run_id}"
    sign_in(browser, site.keys["other"])
    assert browser.get(path).status_code == 404 and site.run_id not in browser.get("/console/flows").text
    for who in ("invoke", "admin"):
        sign_in(browser, site.keys[who])
        page = browser.get(path)
        assert page.status_code == 200, who
        assert '<svg class="gantt"' in page.text and 'class="work work-succeeded"' in page.text
        assert "Cold start per step: not measured" in page.text and "<code>3</code>" in page.text
    assert browser.get("/console/flows/other/runs/" + site.run_id).status_code == 404


def test_a_closed_run_shows_its_optional_input_as_not_given(site: Site, browser: TestClient) -> None:
    flow = FlowSpec(name="sides", inputs=("front", "back"), optional=("back",), output="read", ttl_s=60,
                    max_input_bytes=10, steps=(StepSpec(name="read", function="add",
                                                        inputs={"a": "input:front", "b": "input:back"}, retries=0),))
    site.plane.flows.put_flow(flow, "0" * 64)
    owner = site.plane.registry.verify_key(site.keys["invoke"])
    assert owner is not None
    run_id = site.plane.flows.create_run(flow, owner=owner.id)
    site.plane.flows.add_input(run_id, "front", value_json="1")
    assert site.plane.flows.close_inputs(run_id)
    sign_in(browser, site.keys["invoke"])
    assert "inputs: front, back? (? optional)" in browser.get("/console/flows").text
    page = browser.get(f"/console/flows/sides/runs/{run_id}").text
    assert "<td>back (optional)</td><td>not given (inputs closed " in page
    assert "<td>front</td>" in page


def test_pages_carry_the_security_headers(site: Site, browser: TestClient) -> None:
    responses = [browser.get("/"), browser.get("/console/keys"),
                 browser.post("/console/sign-in", data={"key": "wrong"}, headers=ORIGIN)]
    sign_in(browser, site.keys["admin"])
    responses += [browser.get(p) for p in ("/", "/console/functions/add", "/console/flows", "/console/keys",
                                           f"/console/flows/pair/runs/{site.run_id}", "/console/functions/nope")]
    for response in responses:
        for name, value in HEADERS.items():
            assert response.headers.get(name) == value, (response.url, name)
        assert "<script>" not in response.text and " style=" not in response.text and "onclick" not in response.text
    assert "script-src 'self'" in HEADERS["content-security-policy"]


def test_the_static_files_are_served_and_nothing_else(browser: TestClient) -> None:
    js = browser.get("/console/static/console.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript") and "fn-series" in js.text
    assert browser.get("/console/static/console.css").status_code == 200
    assert browser.get("/console/static/other.js").status_code == 404
    assert browser.get("/console/static/..%2Froutes.py").status_code == 401  # no rule but admin's: refused


# the numbers -----------------------------------------------------------------------------------------------
def test_quantiles_interpolate_within_their_bucket_like_prometheus() -> None:
    bounds = (1.0, 2.0, 4.0)
    assert quantile(0.5, [0, 0, 0, 0], bounds) is None
    assert quantile(0.5, [10, 0, 0, 0], bounds) == 0.5  # the first bucket starts at 0
    assert quantile(0.5, [2, 6, 2, 0], bounds) == 1.5  # rank 5: 3 of the 6 in (1, 2]
    assert quantile(0.99, [2, 6, 2, 0], bounds) == 2.0 + 2.0 * (9.9 - 8) / 2
    assert quantile(0.9, [0, 0, 1, 9], bounds) == 4.0  # in +Inf: the highest finite bound
    assert quantile(0.25, [1, 0, 3, 0], bounds) == 1.0  # rank 1 ends the first bucket
    assert quantile(0.5, [0.0] * 3 + [4.0] + [0.0] * (len(BUCKETS) - 2)) == 0.025 + 0.025 * 0.5


def test_samples_sum_versions_and_count_5xx_as_errors() -> None:
    totals = Delta(counters={("fn_requests_total", ("a", "1", "200")): 5, ("fn_requests_total", ("a", "2", "200")): 3,
                             ("fn_requests_total", ("a", "2", "503")): 2, ("fn_requests_total", ("a", "2", "404")): 1,
                             ("fn_requests_total", ("a", "2", "499")): 1, ("fn_cold_starts_total", ("a",)): 9},
                   histograms={("fn_request_duration_seconds", ("a", "1")): [1, 2, 3.5],
                               ("fn_request_duration_seconds", ("a", "2")): [4, 5, 9.0]})
    assert samples_of(totals, 7.0) == {"a": Sample(at=7.0, requests=12, errors=2, buckets=(5, 7))}


def test_a_point_is_the_difference_of_two_samples_and_a_lower_total_is_a_restart() -> None:
    before = Sample(at=100.0, requests=10, errors=1, buckets=(10, 0))
    after = Sample(at=110.0, requests=30, errors=3, buckets=(10, 20))
    p = point(before, after)
    assert (p.seconds, p.requests, p.rate, p.error_rate) == (10.0, 20, 2.0, 0.1)
    assert p.p50 == quantile(0.5, [0, 20]) and p.p99 == quantile(0.99, [0, 20])
    restarted = point(after, Sample(at=120.0, requests=5, errors=0, buckets=(5, 0)))
    assert (restarted.requests, restarted.rate, restarted.error_rate) == (5, 0.5, 0.0)
    idle = point(after, Sample(at=120.0, requests=30, errors=3, buckets=(10, 20)))
    assert (idle.rate, idle.error_rate, idle.p50, idle.p99) == (0.0, None, None, None)


def test_history_keeps_a_bounded_ring_per_function_and_forgets_removed_ones() -> None:
    history = History(kept=3)
    for i in range(6):
        history.add(Delta(counters={("fn_requests_total", ("a", "1", "200")): 10.0 * i,
                                    ("fn_requests_total", ("b", "1", "200")): 1.0}), 10.0 * i)
    points = history.points("a")
    assert [p.at for p in points] == [30.0, 40.0, 50.0] and all(p.rate == 1.0 for p in points)
    assert history.latest("a") == points[-1] and history.latest("nope") is None and history.points("nope") == []
    history.add(Delta(counters={("fn_requests_total", ("a", "1", "200")): 60.0}), 60.0)
    assert history.points("b") == [] and len(history.points("a")) == 3


def test_the_calls_are_read_from_the_replicas_lines() -> None:
    lines = ["2026-12-01T06:00:00.001Z INFO    replica=r1 request=aa POST /add -> 200 in 3.2 ms",
             "2026-12-01T06:00:00.002Z INFO    replica=r1 request=aa printed: -> 200 in 3 ms",
             "2026-12-01T06:00:01.000Z INFO    replica=r1 request=bb call add -> ok in 2.5 ms",
             "2026-12-01T06:00:02.000Z INFO    replica=r1 request=- call add -> 504 in 30001.0 ms"]
    assert data.calls(lines) == [data.Call("2026-12-01T06:00:02.000Z", "-", "handle", 504, 30001.0),
                                 data.Call("2026-12-01T06:00:01.000Z", "bb", "handle", 200, 2.5),
                                 data.Call("2026-12-01T06:00:00.001Z", "aa", "POST", 200, 3.2)]


def test_a_call_that_waited_for_a_replica_is_read_with_its_cold_start_phases() -> None:
    cold = "total=1.21, scale=0.66, place=0.02, start=0.12, fetch=0.01, import=0.05, setup=0.00, route=0.35"
    (call,) = data.calls([f"2026-12-01T06:00:00.001Z INFO    replica=r1 request=aa POST /add -> 200 in 3.0 ms, "
                          f"cold start: {cold}"])
    assert (call.request_id, call.status, call.ms) == ("aa", 200, 3.0)
    assert [phase for phase, _ in call.cold] == ["scale", "place", "start", "fetch", "import", "setup", "route"]
    assert call.cold_ms == pytest.approx(1210.0) and call.total_ms == pytest.approx(1213.0)
    assert call.segments()[0] == ("scale", pytest.approx(660.0)) and call.segments()[-1] == ("work", 3.0)


def test_the_timeline_draws_waiting_until_the_inputs_were_there_then_work() -> None:
    t0 = datetime(2026, 12, 1, 6, 0, 0)
    spec = FlowSpec(name="f", inputs=("a", "b"), output="last", ttl_s=60, max_input_bytes=10, steps=(
        StepSpec(name="last", function="g", inputs={"x": "step:first", "y": "input:b"}, retries=0),
        StepSpec(name="first", function="h", inputs={"x": "input:a"}, retries=0),
        StepSpec(name="side", function="h", inputs={"x": "step:last"}, retries=0)))

    def value(name: str, kind: str, seconds: float, attempts: int = 1) -> StoredValue:
        return StoredValue(name, kind, "done", None, 1, attempts, None, recorded_at=t0 + timedelta(seconds=seconds))

    record = RunRecord(id="r", flow="f", spec=spec, status="running", output=None, error=None, created_at=t0, values={
        "a": value("a", "input", 1.0), "b": value("b", "input", 4.0), "first": value("first", "step", 3.0, 2)})
    drawn = timeline(record, now=t0 + timedelta(seconds=8))
    assert [(b.step, b.status, b.attempts, b.waiting_s, b.work_s) for b in drawn.bars] == [
        ("first", "succeeded", 2, 1.0, 2.0), ("last", "running", 0, 4.0, 4.0), ("side", "waiting", 0, None, None)]
    assert drawn.span_s == 8.0
    first = drawn.bars[0]
    assert (first.wait_w, first.work_x, first.work_w) == (WIDTH / 8, WIDTH / 8, WIDTH / 4)
    assert drawn.ticks[0] == (0.0, "0 s") and drawn.ticks[-1][1] == "5 s"


def test_the_timeline_takes_the_close_as_the_arrival_of_an_optional_input_never_given() -> None:
    t0 = datetime(2026, 12, 1, 6, 0, 0)
    spec = FlowSpec(name="f", inputs=("a", "b"), optional=("b",), output="last", ttl_s=60, max_input_bytes=10, steps=(
        StepSpec(name="side", function="h", inputs={"x": "input:b"}, retries=0),
        StepSpec(name="last", function="g", inputs={"x": "input:a", "y": "step:side"}, retries=0)))

    def value(name: str, kind: str, seconds: float) -> StoredValue:
        return StoredValue(name, kind, "done", None, 1, 1, None, recorded_at=t0 + timedelta(seconds=seconds))

    values = {"a": value("a", "input", 1.0)}
    open_run = RunRecord(id="r", flow="f", spec=spec, status="running", output=None, error=None, created_at=t0,
                         values=values)
    assert [(b.step, b.status) for b in timeline(open_run, now=t0 + timedelta(seconds=8)).bars] == [
        ("side", "waiting"), ("last", "waiting")]  # not closed yet: the optional input may still come
    closed = RunRecord(id="r", flow="f", spec=spec, status="succeeded", output=1, error=None, created_at=t0,
                       inputs_closed_at=t0 + timedelta(seconds=2),
                       values={**values, "side": value("side", "step", 3.0), "last": value("last", "step", 5.0)})
    drawn = timeline(closed, now=t0 + timedelta(seconds=8))
    assert [(b.step, b.status, b.waiting_s, b.work_s) for b in drawn.bars] == [
        ("side", "succeeded", 2.0, 1.0), ("last", "succeeded", 3.0, 2.0)]
