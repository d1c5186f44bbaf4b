"""Metrics, in-process: a process's exact counts (threads included), its deltas, histogram buckets, the
shipper's numbered pushes (a failed one resent, never counted twice), the hub's sums and gauges, the
replica counting each call once with its code, the Prometheus text, and who may read ``GET /metrics``. No Ray."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

import fn
from fnplatform.bundles.packaging import build_bundle
from fnplatform.control.api import create_app
from fnplatform.control.metrics import ControlMetrics, render
from fnplatform.control.plane import ControlPlane
from fnplatform.control.settings import PlatformSettings
from fnplatform.flows import metrics as flow_metrics
from fnplatform.flows.state import FlowState
from fnplatform.keys import Grant, hash_key
from fnplatform.serving import metrics
from fnplatform.serving.hub import Hub
from fnplatform.serving.logs import LogShipper
from fnplatform.serving.metrics import BUCKETS, Delta, MetricsShipper, Recorder, Totals, bucket_of
from fnplatform.serving.replica import FunctionReplica, Loaded
from fnplatform.serving.signature import Signature
from fnplatform.storage.blobs import StoreConfig, open_store, put_bundle
from fnplatform.storage.registry import Registry

from .conftest import ProjectFactory
from .test_control_plane import FakeDeployer, InProcessHub, project
from .test_gateway import InProcessActor, serve_like
from .test_replica import AUTH, KEY, add, explode, refuse, replica, slow

REQUESTS = "fn_requests_total"


def codes(delta: Delta, function: str = "add") -> dict[str, float]:
    return {labels[2]: n for (name, labels), n in delta.counters.items() if name == REQUESTS and labels[0] == function}


# the recorder --------------------------------------------------------------------------------------------
def test_calls_from_many_threads_are_counted_exactly() -> None:
    recorder = Recorder()
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for _ in range(2000):
            with recorder.call("add", "3") as code:
                code[0] = 200

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    delta = recorder.drain()
    assert delta.counters == {(REQUESTS, ("add", "3", "200")): 16000}
    assert sum(delta.histograms[("fn_request_duration_seconds", ("add", "3"))][:-1]) == 16000
    assert delta.gauges == {("fn_requests_in_flight", ("add",)): 0}


def test_drain_returns_what_changed_since_the_last_drain_and_gauges_as_they_are() -> None:
    recorder = Recorder()
    for _ in range(3):
        recorder.count(REQUESTS, ("add", "1", "200"))
    recorder.call_started("add")
    first = recorder.drain()
    assert first.counters == {(REQUESTS, ("add", "1", "200")): 3}
    assert first.gauges == {("fn_requests_in_flight", ("add",)): 1}
    recorder.count(REQUESTS, ("add", "1", "200"), 2)
    assert recorder.drain().counters == {(REQUESTS, ("add", "1", "200")): 2}
    empty = recorder.drain()
    assert not empty.has_counts() and empty.gauges == {("fn_requests_in_flight", ("add",)): 1}  # still in flight


def test_a_raise_is_500_and_a_cancelled_call_499() -> None:
    recorder = Recorder()
    with pytest.raises(KeyError), recorder.call("add", "1"):
        raise KeyError("x")
    with pytest.raises(asyncio.CancelledError), recorder.call("add", "1"):
        raise asyncio.CancelledError
    assert codes(recorder.drain()) == {"500": 1, "499": 1}


def test_histogram_buckets_hold_their_upper_bound_and_the_rest_goes_to_inf() -> None:
    assert bucket_of(0.0) == 0 and bucket_of(BUCKETS[0]) == 0  # an upper bound is inclusive ("le")
    assert bucket_of(BUCKETS[0] + 1e-9) == 1
    assert bucket_of(BUCKETS[-1] * 2) == len(BUCKETS)  # +Inf
    recorder = Recorder()
    for seconds in (0.001, 0.3, 0.3, 7200.0):
        recorder.observe("fn_request_duration_seconds", ("add", "1"), seconds)
    buckets = recorder.drain().histograms[("fn_request_duration_seconds", ("add", "1"))]
    assert len(buckets) == len(BUCKETS) + 2
    assert (buckets[0], buckets[BUCKETS.index(0.5)], buckets[len(BUCKETS)]) == (1, 2, 1)
    assert buckets[-1] == pytest.approx(7200.601)


def test_label_sets_past_the_bound_are_dropped_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "MAX_SERIES", 3)
    recorder = Recorder()
    for n in range(5):
        recorder.count(REQUESTS, (f"f{n}", "1", "200"))
    delta = recorder.drain()
    assert len(delta.counters) == 3 and delta.dropped == 2


# the shipper and the hub ---------------------------------------------------------------------------------
class FlakyHub:
    """The hub's add_metrics, which fails on demand before or after applying a push (an answer lost)."""

    def __init__(self) -> None:
        self.totals = Totals()
        self.fail: str | None = None  # None | "before" | "after"
        self.seqs: list[int] = []

    def push(self, source: str, seq: int, delta: Delta) -> None:
        self.seqs.append(seq)
        if self.fail == "before":
            raise TimeoutError("the hub did not answer")
        self.totals.add(source, seq, delta)
        if self.fail == "after":
            raise TimeoutError("the answer was lost")


def test_a_failed_push_is_resent_unchanged_and_counted_once_whether_or_not_it_arrived() -> None:
    recorder, hub = Recorder(), FlakyHub()
    shipper = MetricsShipper(recorder, hub.push, source="r1")
    recorder.count(REQUESTS, ("add", "1", "200"), 5)
    hub.fail = "after"  # applied, but the replica does not know it
    assert shipper.ship() is False
    recorder.count(REQUESTS, ("add", "1", "200"), 2)
    hub.fail = "before"
    assert shipper.ship() is False
    hub.fail = None
    assert shipper.ship() is True  # push 1 again (ignored: applied already), then push 2 with the later counts
    assert hub.seqs == [1, 1, 1, 2]
    assert hub.totals.snapshot().counters == {(REQUESTS, ("add", "1", "200")): 7}
    assert shipper.ship() is True and hub.seqs[-1] == 2  # nothing new, nothing sent


def test_the_shipper_thread_pushes_every_interval_and_once_more_on_stop() -> None:
    recorder, hub = Recorder(), FlakyHub()
    shipper = MetricsShipper(recorder, hub.push, source="r1", interval_s=0.05)
    shipper.start()
    recorder.count(REQUESTS, ("add", "1", "200"))
    deadline = time.monotonic() + 5
    while not hub.seqs and time.monotonic() < deadline:
        time.sleep(0.01)
    recorder.count(REQUESTS, ("add", "1", "200"))
    shipper.stop()
    assert hub.totals.snapshot().counters == {(REQUESTS, ("add", "1", "200")): 2}


def test_the_hub_sums_processes_and_drops_the_gauges_of_silent_ones() -> None:
    hub = Hub()
    now = [1000.0]
    hub._metrics = Totals(clock=lambda: now[0])
    a, b = Recorder(), Recorder()
    for recorder, n in ((a, 3), (b, 4)):
        recorder.count(REQUESTS, ("add", "1", "200"), n)
        recorder.observe("fn_request_duration_seconds", ("add", "1"), 0.02)
        recorder.call_started("add")
    assert asyncio.run(hub.add_metrics("a", 1, a.drain())) is True
    assert asyncio.run(hub.add_metrics("b", 1, b.drain())) is True
    assert asyncio.run(hub.add_metrics("b", 1, Delta(counters={(REQUESTS, ("add", "1", "200")): 4}))) is False
    totals = asyncio.run(hub.metrics())
    assert totals.counters == {(REQUESTS, ("add", "1", "200")): 7}
    assert sum(totals.histograms[("fn_request_duration_seconds", ("add", "1"))][:-1]) == 2
    assert totals.gauges == {("fn_requests_in_flight", ("add",)): 2}
    now[0] += metrics.GAUGE_STALE_S - 1
    asyncio.run(hub.add_metrics("a", 2, a.drain()))  # "a" is still there; "b" went silent
    now[0] += 2
    totals = asyncio.run(hub.metrics())
    assert totals.gauges == {("fn_requests_in_flight", ("add",)): 1}
    assert totals.counters == {(REQUESTS, ("add", "1", "200")): 7}  # counts stay when their process goes


# the replica -----------------------------------------------------------------------------------------------
def test_each_http_request_is_counted_once_with_its_status_code() -> None:
    hub, recorder = Hub(), Recorder()
    asyncio.run(hub.publish("keys", {hash_key(KEY): Grant(key_id="k1", role="invoke").to_json()}))
    loaded = Loaded(target=add, signature=Signature(add, "add"), is_async=False)
    target = FunctionReplica.around(fn.FunctionSpec(name="add"), loaded, InProcessActor(hub), LogShipper("add", "r1", None),
                                    recorder=recorder, version=4)
    client = TestClient(serve_like(target))
    for n in range(37):
        assert client.post("/", json={"a": n, "b": 1}, headers=AUTH).status_code == 200
    assert client.post("/", json={"a": "x"}, headers=AUTH).status_code == 422
    assert client.post("/", json={"a": 1}).status_code == 401
    delta = recorder.drain()
    assert codes(delta) == {"200": 37, "422": 1, "401": 1}
    assert {labels[1] for (_, labels) in delta.counters} == {"4"}
    assert sum(delta.histograms[("fn_request_duration_seconds", ("add", "4"))][:-1]) == 39
    assert delta.gauges == {("fn_requests_in_flight", ("add",)): 0}


def test_each_handle_call_is_counted_once_with_the_status_its_error_travels_with() -> None:
    for target, call, code in ((add, {"a": 1, "b": 2}, "200"), (explode, {"x": 1}, "500"), (refuse, {"x": 1}, "400")):
        served = replica(target)
        with contextlib.suppress(fn.ClientError):
            asyncio.run(served.call("rid", **call))
        assert codes(served.metrics.drain(), target.__name__) == {code: 1}
    timed_out = replica(slow, timeout_s=0.2)
    with pytest.raises(fn.Timeout):
        asyncio.run(timed_out.call("rid", x=1))
    assert codes(timed_out.metrics.drain(), "slow") == {"504": 1}


def test_a_flow_run_counts_its_steps_and_its_end_in_the_process_recorder() -> None:
    metrics.RECORDER.drain()
    flow_metrics.step_succeeded("kyc", "ocr", 0.4)
    flow_metrics.run_finished("kyc", "succeeded")
    delta = metrics.RECORDER.drain()
    assert delta.counters == {("fn_flow_runs_total", ("kyc", "succeeded")): 1}
    assert sum(delta.histograms[("fn_flow_step_duration_seconds", ("kyc", "ocr"))][:-1]) == 1


# the Prometheus text -------------------------------------------------------------------------------------
def parse(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode()) for s in family.samples}


def test_the_exposition_parses_back_to_the_same_numbers() -> None:
    recorder = Recorder()
    recorder.count(REQUESTS, ("add", "2", "200"), 37)
    recorder.count(REQUESTS, ("add", "2", "500"))
    for seconds in (0.003, 0.2, 4.0):
        recorder.observe("fn_request_duration_seconds", ("add", "2"), seconds)
    recorder.call_started("add")
    recorder.count("fn_cold_starts_total", ("add",))
    control = ControlMetrics()
    control.deploy_finished("succeeded", 12.0)
    samples = parse(render(recorder.drain(), control.totals()))
    assert samples[(REQUESTS, (("code", "200"), ("function", "add"), ("version", "2")))] == 37
    assert samples[(REQUESTS, (("code", "500"), ("function", "add"), ("version", "2")))] == 1
    duration = (("function", "add"), ("version", "2"))
    for le, count in (("0.005", 1), ("0.25", 2), ("5.0", 3), ("+Inf", 3)):  # cumulative
        assert samples[("fn_request_duration_seconds_bucket", (("function", "add"), ("le", le), ("version", "2")))] == count
    assert samples[("fn_request_duration_seconds_count", duration)] == 3
    assert samples[("fn_request_duration_seconds_sum", duration)] == pytest.approx(4.203)
    assert samples[("fn_requests_in_flight", (("function", "add"),))] == 1
    assert samples[("fn_cold_starts_total", (("function", "add"),))] == 1
    assert samples[("fn_deploys_total", (("status", "succeeded"),))] == 1
    assert samples[("fn_deploy_duration_seconds_count", ())] == 1
    assert samples[("fn_data_plane_metrics_up", ())] == 1
    without_hub = parse(render(None, control.totals()))
    assert without_hub[("fn_data_plane_metrics_up", ())] == 0
    assert without_hub[("fn_deploys_total", (("status", "succeeded"),))] == 1


# GET /metrics ----------------------------------------------------------------------------------------------
@pytest.fixture
def plane(tmp_path: Path) -> ControlPlane:
    settings = PlatformSettings.from_env(home=tmp_path / "home", store=StoreConfig(kind="local", root=str(tmp_path / "store")))
    settings.home.mkdir()
    return ControlPlane(settings, Registry(settings.database_url), open_store(settings.store), FakeDeployer(),
                        InProcessHub(), FlowState(settings.database_url))  # type: ignore[arg-type]


@pytest.fixture
def api(plane: ControlPlane) -> Iterator[TestClient]:
    with TestClient(create_app(plane)) as client:
        yield client


def key(plane: ControlPlane, role: str, **scope: Any) -> dict[str, str]:
    _, plaintext = plane.registry.create_key(f"{role} key", role, **scope)
    return {"authorization": f"Bearer {plaintext}"}


def test_metrics_need_a_key_that_is_not_scoped(plane: ControlPlane, api: TestClient) -> None:
    assert api.get("/metrics").status_code == 401
    assert api.get("/metrics", headers={"authorization": "Bearer fn_wrong"}).status_code == 401
    for scope in ({"functions": ["add"]}, {"flows": ["kyc"]}):
        refused = api.get("/metrics", headers=key(plane, "invoke", **scope))
        assert refused.status_code == 403
        assert "without a scope" in refused.json()["error"]["message"]
    for role in ("invoke", "deploy", "admin"):
        response = api.get("/metrics", headers=key(plane, role))
        assert response.status_code == 200, role
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "/metrics" not in api.get("/openapi.json", headers=key(plane, "invoke")).json()["paths"]


def test_metrics_show_the_hubs_sums_and_each_deploy_job_that_ended(plane: ControlPlane, api: TestClient,
                                                                   make_project: ProjectFactory) -> None:
    recorder = Recorder()
    recorder.count(REQUESTS, ("add", "1", "200"), 37)
    asyncio.run(plane.hub.hub.add_metrics("r1", 1, recorder.drain()))  # type: ignore[attr-defined]
    plane.deployer.load_errors["add"] = "boom"  # type: ignore[attr-defined]
    bundle = build_bundle(make_project(project()))
    put_bundle(plane.store, bundle.sha256, bundle.data)
    for _ in range(2):
        job = plane.start_deploy(bundle.sha256)
        deadline = time.monotonic() + 30
        while job.state == "running" and time.monotonic() < deadline:
            job.wait(len(job.events), timeout=1)
    samples = parse(api.get("/metrics", headers=key(plane, "invoke")).content)
    assert samples[(REQUESTS, (("code", "200"), ("function", "add"), ("version", "1")))] == 37
    assert samples[("fn_deploys_total", (("status", "failed"),))] == 2
    assert samples[("fn_deploy_duration_seconds_count", ())] == 2


def test_replicas_by_state_count_every_active_function_zero_included() -> None:
    from fnplatform.control.metrics import replica_gauges

    applications = {
        "add": {"deployments": {"add": {"replicas": [{"state": "RUNNING"}, {"state": "STARTING"}, {"state": "RUNNING"},
                                                      {"state": "STOPPING"}, {"state": "UPDATING"}]}}},
        "gone": {"deployments": {"gone": {"replicas": [{"state": "RUNNING"}]}}},  # no longer active: left out
        "fn-gateway": {"deployments": {"Gateway": {"replicas": [{"state": "RUNNING"}]}}},  # not a function
    }
    replicas = replica_gauges(applications, ["add", "idle"])
    samples = parse(render(Recorder().drain(), ControlMetrics().totals(), replicas))
    state = {labels: value for (name, labels), value in samples.items() if name == "fn_replicas"}
    assert state == {(("function", "add"), ("state", "running")): 2, (("function", "add"), ("state", "starting")): 2,
                     (("function", "add"), ("state", "stopping")): 1, (("function", "idle"), ("state", "running")): 0,
                     (("function", "idle"), ("state", "starting")): 0, (("function", "idle"), ("state", "stopping")): 0}
    assert not any(name == "fn_replicas" for name, _ in parse(render(None, ControlMetrics().totals())))


def test_cold_start_phases_are_a_histogram_by_function_and_phase() -> None:
    recorder = Recorder()
    recorder.observe("fn_cold_start_seconds", ("add", "scale"), 0.6)
    recorder.observe("fn_cold_start_seconds", ("add", "total"), 1.2)
    samples = parse(render(recorder.drain(), ControlMetrics().totals()))
    assert samples[("fn_cold_start_seconds_count", (("function", "add"), ("phase", "scale")))] == 1
    assert samples[("fn_cold_start_seconds_sum", (("function", "add"), ("phase", "total")))] == pytest.approx(1.2)
