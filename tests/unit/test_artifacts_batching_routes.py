"""Model artifacts, server-side batching and routes: declaration, packaging, the store, matching."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import Field

import fn
from fn import _artifacts, _decorators
from fnplatform.bundles.packaging import MANIFEST_NAME, BundleError, Manifest, build_bundle
from fnplatform.serving.gateway import Route
from fnplatform.serving.signature import Signature
from fnplatform.storage.blobs import LocalStore, StoreConfig, artifact_key, fetch_artifact, put_artifact

from .conftest import ProjectFactory

PROJECT = """
    import fn

    @fn.model(artifacts={"weights": "models/weights.bin"}, max_batch_size=8, max_wait_ms=5)
    class Embed:
        def __call__(self, texts: list[str]) -> list[int]:
            return [len(t) for t in texts]
"""


@pytest.fixture(autouse=True)
def empty_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_decorators, "_registry", {})
    monkeypatch.setattr(_artifacts, "_installed", {})


@pytest.mark.parametrize(("options", "expected"), [
    ({"artifacts": {"m": "../outside.onnx"}}, "must be a relative path inside the project"),
    ({"artifacts": {"m": "/abs/model.onnx"}}, "must be a relative path inside the project"),
    ({"artifacts": {"Bad Name": "m.onnx"}}, "artifact name 'Bad Name'"),
    ({"max_batch_size": 0}, "max_batch_size=0 is invalid"),
    ({"max_wait_ms": -1}, "max_wait_ms=-1 is invalid"),
    ({"route": "search/{c}"}, "route='search/{c}' is invalid"),
    ({"route": "/v1/x"}, "/v1 is the platform's own route"),
])
def test_bad_options_name_the_option(options: dict[str, object], expected: str) -> None:
    with pytest.raises(fn.SpecError, match=None) as info:
        fn.function(**options)(_plain)
    assert expected in str(info.value)


def _plain(texts: list[str]) -> list[str]:
    return texts


def test_batched_function_must_take_lists() -> None:
    def scalar(text: str) -> str:
        return text

    scalar.__qualname__ = "scalar"
    with pytest.raises(fn.SpecError, match="parameter 'text' must be annotated as a list"):
        fn.function(max_batch_size=4)(scalar)


def test_batched_signature_validates_one_item_per_call() -> None:
    signature = Signature(_plain, "plain", batched=True)
    assert signature.validate({"texts": "one"}) == {"texts": "one"}
    with pytest.raises(fn.ValidationFailed, match="texts"):
        signature.validate({"texts": ["a", "list"]})


def test_artifact_resolves_next_to_the_declaring_module_when_run_locally(make_project: ProjectFactory,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project({"embed.py": PROJECT, "models/weights.bin": "w"})
    monkeypatch.syspath_prepend(str(root))
    import embed  # noqa: F401 - registers the model

    assert fn.artifact("weights") == (root / "models" / "weights.bin").resolve()
    with pytest.raises(fn.NotFound, match=r"no artifact named 'other'.*declared: weights"):
        fn.artifact("other")


def test_bundle_keeps_artifacts_out_of_the_zip_and_their_hashes_in_the_manifest(make_project: ProjectFactory) -> None:
    root = make_project({"embed.py": PROJECT, "models/weights.bin": "version 1"})
    bundle = build_bundle(root)
    with zipfile.ZipFile(io.BytesIO(bundle.data)) as archive:
        assert "models/weights.bin" not in archive.namelist()
        manifest = Manifest.from_json(archive.read(MANIFEST_NAME))
    ref = manifest.artifacts_of(manifest.functions[0])["weights"]
    assert ref.size == len("version 1")
    assert bundle.artifact_files == {ref.sha256: root / "models" / "weights.bin"}
    (root / "models" / "weights.bin").write_text("version 2")
    assert build_bundle(root).sha256 != bundle.sha256  # a new model file is a new version


def test_missing_artifact_fails_packaging_with_the_path(make_project: ProjectFactory) -> None:
    root = make_project({"embed.py": PROJECT})
    with pytest.raises(BundleError, match=r"artifact 'weights' is .*models/weights.bin, which does not exist"):
        build_bundle(root)


def test_manifest_without_an_artifact_hash_is_refused() -> None:
    body = {"format": 1, "functions": [{"name": "e", "entrypoint": "e:E", "artifacts": {"w": "w.bin"}}]}
    with pytest.raises(BundleError, match=r"artifact 'w' of 'e' .* has no hash"):
        Manifest.from_json(json.dumps(body).encode())


def test_store_keeps_an_artifact_once_and_the_cache_refuses_tampered_bytes(tmp_path: Path) -> None:
    config = StoreConfig(kind="local", root=str(tmp_path / "store"))
    source = tmp_path / "model.onnx"
    source.write_bytes(b"weights")
    from fnplatform.bundles.packaging import hash_file

    sha = hash_file(source)
    store = LocalStore(config)
    assert put_artifact(store, sha, source) is True
    assert put_artifact(store, sha, source) is False
    cached = fetch_artifact(config, sha, tmp_path / "cache")
    assert cached.read_bytes() == b"weights"
    assert fetch_artifact(config, sha, tmp_path / "cache") == cached
    store.write(artifact_key("0" * 64), b"not what the name says")
    with pytest.raises(BundleError, match="refusing to load it"):
        fetch_artifact(config, "0" * 64, tmp_path / "cache")
    assert not (tmp_path / "cache" / "artifacts" / ("0" * 64)).exists()
    with pytest.raises(BundleError, match="is not in the store"):
        fetch_artifact(config, "1" * 64, tmp_path / "cache")


def test_route_matching_fills_path_parameters() -> None:
    spec = fn.FunctionSpec(name="vector-search", route="/search/{collection}")
    route = Route.of(spec)
    assert route.match(["search", "docs"]) == {"collection": "docs"}
    assert route.match(["search"]) is None
    assert route.match(["search", "docs", "extra"]) is None
    assert route.match(["other", "docs"]) is None
    assert spec.route_root == "search"


def test_annotated_field_limits_are_enforced() -> None:
    def search(top_k: Annotated[int, Field(ge=1, le=100)] = 5) -> int:
        return top_k

    signature = Signature(search, "search")
    assert signature.validate({}) == {"top_k": 5}
    with pytest.raises(fn.ValidationFailed, match="top_k: Input should be greater than or equal to 1"):
        signature.validate({"top_k": 0})


def test_replicas_get_a_runtime_env_only_for_what_the_function_asks() -> None:
    from fnplatform.control.deployer import actor_options

    plain = actor_options(fn.FunctionSpec(name="plain", cpus=2))
    assert plain["runtime_env"] == {}  # so Ray may start it on an idle worker process
    assert plain["num_cpus"] == 2
    custom = actor_options(fn.FunctionSpec(name="custom", env={"A": "1"}, requirements=("numpy",)))
    assert custom["runtime_env"] == {"env_vars": {"A": "1"}, "pip": {"packages": ["numpy"], "pip_check": False}}
