"""The store's garbage collection (control/blob_gc.py) through the control plane: deploys, retention and
removal decide what is unused; the store is a local folder and S3 over HTTP (moto's server)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from fn import ConfigError
from fn._flow import FlowSpec, StepSpec
from fnplatform.bundles.packaging import Bundle, build_bundle
from fnplatform.control.blob_gc import Collected
from fnplatform.control.plane import ControlPlane, DeployJob
from fnplatform.control.settings import PlatformSettings
from fnplatform.flows.state import FlowState
from fnplatform.storage.blobs import (
    LocalStore,
    S3Store,
    StoreConfig,
    artifact_key,
    bundle_key,
    open_store,
    put_artifact,
    put_bundle,
)
from fnplatform.storage.db import utcnow
from fnplatform.storage.registry import Registry

from .conftest import ProjectFactory
from .test_control_plane import FakeDeployer, InProcessHub

DAY = 86400.0
LATER = time.time() + 2 * DAY  # a collection pass run two days from now: everything unused is old enough


def project(body: str, weights: bytes) -> dict[str, str]:
    source = (f"import fn\n\n\n@fn.model(cpus=0.25, artifacts={{'weights': 'weights.bin'}})\nclass Add:\n"
              f"    def __call__(self, a: int, b: int) -> int:\n        {body}\n")
    return {"main.py": source, "weights.bin": weights.decode()}


@pytest.fixture(params=["local", "s3"])
def plane(request: pytest.FixtureRequest, tmp_path: Path) -> ControlPlane:
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = "fn-gc-" + hashlib.sha256(request.node.name.encode()).hexdigest()[:16]
        config = StoreConfig(kind="s3", bucket=bucket, prefix="team/", endpoint=endpoint)
    else:
        config = StoreConfig(kind="local", root=str(tmp_path / "store"))
    settings = PlatformSettings.from_env(home=tmp_path / "home", store=config)
    settings.home.mkdir()
    settings.keep_versions = 1
    store = open_store(config)
    if isinstance(store, S3Store):
        store.ensure_bucket()
    return ControlPlane(settings, Registry(settings.database_url), store, FakeDeployer(),  # type: ignore[arg-type]
                        InProcessHub(), FlowState(settings.database_url))


Deploy = Callable[[dict[str, str]], tuple[str, set[str]]]


@pytest.fixture
def deploy(plane: ControlPlane, make_project: ProjectFactory) -> Deploy:
    """Upload the project's bundle and artifacts as fnctl does, deploy it to its end; its bundle and artifact hashes."""

    def run(files: dict[str, str]) -> tuple[str, set[str]]:
        bundle = upload(plane, make_project(files))
        finished(plane.start_deploy(bundle.sha256))
        plane.traffic.retain("add")
        return bundle.sha256, set(bundle.artifact_files)

    return run


def upload(plane: ControlPlane, folder: Path) -> Bundle:
    """What fnctl deploy uploads before it deploys: the artifacts, then the bundle."""
    bundle = build_bundle(folder)
    for sha, path in bundle.artifact_files.items():
        put_artifact(plane.store, sha, path)
    put_bundle(plane.store, bundle.sha256, bundle.data)
    return bundle


def finished(job: DeployJob) -> DeployJob:
    deadline = time.monotonic() + 30
    while job.state == "running" and time.monotonic() < deadline:
        job.wait(len(job.events), timeout=1)
    assert job.state == "succeeded", job.events
    return job


def stored(plane: ControlPlane) -> set[str]:
    return {key for prefix in ("bundles/", "artifacts/") for key, _, _ in plane.store.listing(prefix)}


def test_what_retention_collected_goes_once_old_and_what_versions_share_stays(plane: ControlPlane,
                                                                             deploy: Deploy) -> None:
    first, first_artifacts = deploy(project("return a + b", b"weights one"))
    shared, _ = deploy(project("return b + a", b"weights one"))  # new code, the same weights
    newest, newest_artifacts = deploy(project("return a + b + 0", b"weights two"))
    assert [v.status for v in plane.registry.versions("add")] == ["collected", "collected", "ready"]
    everything = stored(plane)
    assert len(everything) == 5  # three bundles, two artifacts

    assert plane.collect_blobs() is not None and stored(plane) == everything  # all younger than a day

    done = plane.blobs.collect(now=LATER)
    assert (done.bundles, done.artifacts) == (2, 1) and done.bytes > 0
    assert stored(plane) == {bundle_key(newest)} | {artifact_key(sha) for sha in newest_artifacts}
    assert first_artifacts.isdisjoint(newest_artifacts) and shared != first
    # what stays is what the active version needs: its bundle still reads and deploys again
    finished(plane.start_deploy(newest))


def test_a_shared_artifact_stays_while_any_version_in_use_names_it(plane: ControlPlane, deploy: Deploy) -> None:
    deploy(project("return a + b", b"the same weights"))
    newest, artifacts = deploy(project("return b + a", b"the same weights"))
    plane.blobs.collect(now=LATER)
    assert stored(plane) == {bundle_key(newest)} | {artifact_key(sha) for sha in artifacts}


def test_a_removed_function_leaves_nothing_behind_once_old(plane: ControlPlane, deploy: Deploy) -> None:
    sha, artifacts = deploy(project("return a + b", b"weights"))
    plane.blobs.collect(now=LATER)
    assert bundle_key(sha) in stored(plane)
    plane.delete("add")
    assert plane.blobs.collect(now=time.time()).bundles == 0  # not a day old yet
    done = plane.blobs.collect(now=LATER)
    assert (done.bundles, done.artifacts) == (1, len(artifacts)) and stored(plane) == set()


def test_an_upload_no_deploy_named_yet_and_a_deploy_under_way_keep_their_bundles(plane: ControlPlane,
                                                                                make_project: ProjectFactory) -> None:
    bundle = upload(plane, make_project(project("return a + b", b"weights")))
    assert plane.blobs.collect(now=time.time()).bundles == 0  # just uploaded: fnctl deploy names it next
    # a deploy under way (its versions not recorded yet) keeps its bundle and, through its manifest, its artifacts
    assert plane.blobs.collect(in_flight=lambda: {bundle.sha256}, now=LATER).bundles == 0
    assert len(stored(plane)) == 2
    assert plane.blobs.collect(now=LATER).bundles == 1 and stored(plane) == set()


def test_a_deploy_of_a_bundle_collected_meanwhile_is_a_404_that_says_to_upload_it(plane: ControlPlane,
                                                                                 make_project: ProjectFactory) -> None:
    bundle = build_bundle(make_project(project("return a + b", b"weights")))
    put_bundle(plane.store, bundle.sha256, bundle.data)
    plane.blobs.collect(now=LATER)
    with pytest.raises(Exception, match=f"bundle {bundle.sha256} is not in the store; upload it first") as info:
        plane.start_deploy(bundle.sha256)
    assert getattr(info.value, "status", None) == 404


def test_collection_is_off_with_zero_hours_and_a_negative_number_is_refused(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert PlatformSettings.from_env(home=tmp_path).bundle_gc_after_s == DAY
    monkeypatch.setenv("FN_BUNDLE_GC_HOURS", "0")
    assert PlatformSettings.from_env(home=tmp_path).bundle_gc_after_s == 0
    monkeypatch.setenv("FN_BUNDLE_GC_HOURS", "-1")
    with pytest.raises(ConfigError, match="FN_BUNDLE_GC_HOURS must be a number of hours"):
        PlatformSettings.from_env(home=tmp_path)


def test_the_local_listing_names_keys_as_the_store_does_with_their_age_and_size(tmp_path: Path) -> None:
    store = LocalStore(StoreConfig(kind="local", root=str(tmp_path)))
    assert list(store.listing("bundles/")) == []
    store.write("bundles/a.zip", b"12345")
    ((key, modified, size),) = store.listing("bundles/")
    assert (key, size) == ("bundles/a.zip", 5) and abs(modified - time.time()) < 60


def test_the_s3_listing_pages_and_strips_the_stores_prefix(s3_endpoint: str) -> None:
    store = S3Store(StoreConfig(kind="s3", bucket="fn-listing", prefix="team/", endpoint=s3_endpoint))
    store.ensure_bucket()
    for i in range(1005):  # more than one page of list_objects_v2 (1,000 keys)
        store._client.put_object(Bucket="fn-listing", Key=f"team/artifacts/{i:04d}", Body=b"x")
    store.write("bundles/b.zip", b"123")
    keys = {key: size for key, _, size in store.listing("artifacts/")}
    assert len(keys) == 1005 and keys["artifacts/0000"] == 1
    assert [(k, s) for k, _, s in store.listing("bundles/")] == [("bundles/b.zip", 3)]


def test_a_deployed_flow_and_a_kept_runs_evidence_keep_their_bundle(plane: ControlPlane,
                                                                     make_project: ProjectFactory) -> None:
    bundle = upload(plane, make_project(project("return a + b", b"weights")))
    flow = FlowSpec(name="f", inputs=("a",), output="s", ttl_s=60, max_input_bytes=10,
                    steps=(StepSpec(name="s", function="add", inputs={"a": "input:a", "b": "input:a"}, retries=0),))
    plane.flows.put_flow(flow, bundle.sha256)
    assert plane.blobs.collect(now=LATER).bundles == 0 and len(stored(plane)) == 2  # the deployed flow's
    run_id = plane.flows.create_run(flow)
    plane.flows.delete_flow("f")
    assert plane.blobs.collect(now=LATER).bundles == 0 and len(stored(plane)) == 2  # the run's evidence names it
    plane.flows.finish_run(run_id, output_json="3")
    plane.flows.expire_runs(utcnow() + timedelta(days=1))  # its retention over
    assert plane.blobs.collect(now=LATER).bundles == 1 and stored(plane) == set()


def test_runs_past_fn_run_retention_days_take_their_uploads_out_of_the_store(
        plane: ControlPlane, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    flow = FlowSpec(name="f", inputs=("a",), output="s", ttl_s=60, max_input_bytes=10,
                    steps=(StepSpec(name="s", function="add", inputs={"a": "input:a", "b": "input:a"}, retries=0),))
    done, running = plane.flows.create_run(flow), plane.flows.create_run(flow)
    for run_id in (done, running):
        plane.store.write(f"flows/{run_id}/inputs/a", b"a selfie")
        assert plane.flows.add_input(run_id, "a", blob_key=f"flows/{run_id}/inputs/a")
    plane.flows.finish_run(done, output_json="1")
    assert plane.expire_runs() == 0  # finished just now: kept for FN_RUN_RETENTION_DAYS
    plane.settings.run_retention_s = 0.001
    time.sleep(0.01)
    assert plane.expire_runs() == 1
    left = {key for key, _, _ in plane.store.listing("flows/")}
    assert left == {f"flows/{running}/inputs/a"}  # the unfinished run keeps its upload
    monkeypatch.setenv("FN_RUN_RETENTION_DAYS", "0")
    with pytest.raises(ConfigError, match="FN_RUN_RETENTION_DAYS must be a positive number of days"):
        PlatformSettings.from_env(home=tmp_path)


def test_a_running_deploy_job_keeps_its_bundle_through_the_control_planes_pass(plane: ControlPlane,
                                                                                make_project: ProjectFactory) -> None:
    bundle = upload(plane, make_project(project("return a + b", b"weights")))
    plane.jobs["j1"] = DeployJob(id="j1", bundle_sha256=bundle.sha256, functions=["add"])  # its versions not recorded yet
    assert plane.collect_blobs(now=LATER) == Collected() and len(stored(plane)) == 2
    plane.jobs["j1"].state = "failed"
    done = plane.collect_blobs(now=LATER)
    assert done is not None and (done.bundles, done.artifacts) == (1, 1) and stored(plane) == set()


def test_what_fnctl_deploy_was_told_the_store_has_stays_for_its_deploy(plane: ControlPlane,
                                                                       make_project: ProjectFactory) -> None:
    bundle = upload(plane, make_project(project("return a + b", b"weights")))
    plane.blobs.min_age_s = 0.5
    time.sleep(0.6)  # old enough to go, and not named for a while
    (artifact,) = bundle.artifact_files
    assert plane.has_bundle(bundle.sha256) and plane.has_artifact(artifact)  # fnctl deploy will not upload them
    assert plane.blobs.collect() == Collected() and len(stored(plane)) == 2
    time.sleep(0.6)  # no deploy named them: they go
    assert plane.blobs.collect().bundles == 1 and stored(plane) == set()


def test_no_artifact_goes_while_a_bundle_in_use_cannot_be_read(plane: ControlPlane, deploy: Deploy) -> None:
    sha, artifacts = deploy(project("return a + b", b"weights"))
    plane.store.delete(bundle_key(sha))  # by hand: putting it back must find its artifacts still there
    assert plane.blobs.collect(now=LATER) == Collected()
    assert stored(plane) == {artifact_key(a) for a in artifacts}


def test_the_objects_clients_asked_about_are_remembered_within_a_bound_newest_kept(plane: ControlPlane) -> None:
    from fnplatform.control.blob_gc import MAX_NAMED

    now = time.time()
    for i in range(MAX_NAMED + 1):  # a flood of HEADs for hashes no deploy will name
        plane.blobs.named(f"bundles/{i}.zip", now=now + i * 1e-6)
    assert len(plane.blobs._named) <= MAX_NAMED
    assert f"bundles/{MAX_NAMED}.zip" in plane.blobs._named and "bundles/0.zip" not in plane.blobs._named
