"""Secrets through the control plane's real API and fnctl, with no Ray: the real app over a real registry
(SQLite) and ControlPlane, the deployer and hub stood in by test_control_plane's fakes. Checks the edge's
validation, deploys that name secrets, rolling on a change, refusing removal, and that no value comes back."""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

import fn
from fnctl import _api
from fnctl.main import cli
from fnplatform.bundles.packaging import build_bundle
from fnplatform.control import secrets_api
from fnplatform.control.api import create_app
from fnplatform.control.deployer import DeployContext, Deployer, version_tag
from fnplatform.control.plane import ControlPlane, DeployJob
from fnplatform.control.settings import PlatformSettings
from fnplatform.flows.state import FlowState
from fnplatform.storage.blobs import StoreConfig, open_store, put_bundle
from fnplatform.storage.registry import Registry, VersionRecord

from .conftest import ProjectFactory
from .test_control_plane import FakeDeployer, InProcessHub

VALUE = "sk-live-0123456789abcdef"
NEW_VALUE = "sk-live-rotated-fedcba9876"


class RecordingDeployer(FakeDeployer):
    """Also notes which secrets the hub held when each version's load check ran."""

    def __init__(self, hub: InProcessHub) -> None:
        super().__init__()
        self.hub = hub
        self.held_at_check: dict[str, list[str]] = {}

    def validate(self, versions: list[VersionRecord]) -> dict[str, str | None]:
        for version in versions:
            self.held_at_check[version.function] = sorted(self.hub.hub._secrets)
        return super().validate(versions)


@pytest.fixture
def plane(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ControlPlane:
    settings = PlatformSettings.from_env(home=tmp_path / "home", store=StoreConfig(kind="local", root=str(tmp_path / "store")))
    settings.home.mkdir()
    hub = InProcessHub()
    control = ControlPlane(settings, Registry(settings.database_url), open_store(settings.store),
                           RecordingDeployer(hub), hub, FlowState(settings.database_url))  # type: ignore[arg-type]
    monkeypatch.setattr(control, "_details", dict)  # Serve's replica table: none without Ray
    return control


@pytest.fixture
def api(plane: ControlPlane) -> Iterator[TestClient]:
    _, key = plane.registry.create_key("tests", "deploy")
    with TestClient(create_app(plane), headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def deploy(plane: ControlPlane, make_project: ProjectFactory, options: str = "secrets=['openai']") -> DeployJob:
    source = f"import fn\n\n\n@fn.function({options})\ndef add(a: int, b: int) -> int:\n    return a + b\n"
    bundle = build_bundle(make_project({"main.py": source}))
    put_bundle(plane.store, bundle.sha256, bundle.data)
    job = plane.start_deploy(bundle.sha256)
    deadline = time.monotonic() + 30
    while job.state == "running" and time.monotonic() < deadline:
        job.wait(len(job.events), timeout=1)
    return job


def hub_secrets(plane: ControlPlane) -> dict[str, Any]:
    return dict(plane.hub.hub._secrets)  # type: ignore[attr-defined]


# the API -----------------------------------------------------------------------------------------
def test_put_creates_then_replaces_and_no_answer_carries_a_value(api: TestClient) -> None:
    created = api.put("/v1/secrets/openai", json={"values": {"OPENAI_API_KEY": VALUE, "ORG": "acme"}})
    assert created.status_code == 201, created.text
    assert created.json() | {"created_at": "", "updated_at": ""} == {
        "name": "openai", "keys": ["OPENAI_API_KEY", "ORG"], "revision": 1, "changed": True, "used_by": [],
        "restarting": [], "created_at": "", "updated_at": ""}
    same = api.put("/v1/secrets/openai", json={"values": {"OPENAI_API_KEY": VALUE, "ORG": "acme"}})
    assert (same.status_code, same.json()["changed"], same.json()["revision"]) == (200, False, 1)
    replaced = api.put("/v1/secrets/openai", json={"values": {"OPENAI_API_KEY": NEW_VALUE}})
    assert (replaced.status_code, replaced.json()["keys"], replaced.json()["revision"]) == (200, ["OPENAI_API_KEY"], 2)
    listed = api.get("/v1/secrets")
    assert [(s["name"], s["keys"], s["revision"], s["used_by"]) for s in listed.json()] == [
        ("openai", ["OPENAI_API_KEY"], 2, [])]
    assert api.get("/v1/secrets/openai").json()["keys"] == ["OPENAI_API_KEY"]
    for response in (created, same, replaced, listed):
        assert VALUE not in response.text and NEW_VALUE not in response.text


def test_every_secrets_route_needs_a_key_and_it_is_checked_before_the_body(plane: ControlPlane) -> None:
    client = TestClient(create_app(plane))
    assert client.get("/v1/secrets").status_code == 401
    assert client.delete("/v1/secrets/x").status_code == 401
    huge = client.put("/v1/secrets/x", content=b"{" * (secrets_api.MAX_BODY_BYTES + 10))
    assert huge.status_code == 401  # not 413 and not 400: nothing was read before the key check


@pytest.mark.parametrize(("name", "body", "status", "expected"), [
    ("Bad_Name", {"values": {"K": "v"}}, 400, "secret name 'Bad_Name' is invalid"),
    ("ok", None, 400, "the body must be JSON"),
    ("ok", {"values": {}}, 422, "give at least one KEY=VALUE"),
    ("ok", {"values": {"K": 1}}, 422, "values.K: Input should be a valid string"),
    ("ok", {"values": {"K": "v"}, "extra": 1}, 422, "extra: Extra inputs are not permitted"),
    ("ok", {"vals": {"K": "v"}}, 422, "values: Field required"),
    ("ok", {"values": {"1BAD": "v"}}, 422, "values.1BAD: not an environment variable name"),
    ("ok", {"values": {"K": "a\x00b"}}, 422, "values.K: contains a NUL character"),
    ("ok", {"values": {"K": "x" * (64 * 1024 + 1)}}, 422, "values.K: 65,537 bytes, over the limit of 65,536 per value"),
    ("ok", {"values": {f"K{i}": "v" for i in range(101)}}, 422, "101 keys, over the limit of 100"),
    ("ok", {"values": {f"K{i}": "x" * 60_000 for i in range(5)}}, 422, "300,000 bytes in all, over the limit of 262,144"),
])
def test_bad_input_is_a_clear_4xx_naming_what_is_wrong(api: TestClient, name: str, body: Any, status: int,
                                                       expected: str) -> None:
    response = api.put(f"/v1/secrets/{name}", content=b"not json" if body is None else json.dumps(body).encode(),
                       headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert expected in response.json()["error"]["message"]
    assert "xxxxxxxx" not in response.text  # a value is never quoted back


def test_a_body_over_the_limit_is_413_by_its_length_or_by_what_arrives(api: TestClient) -> None:
    big = b" " * (secrets_api.MAX_BODY_BYTES + 1)
    assert api.put("/v1/secrets/ok", content=big).status_code == 413
    streamed = api.put("/v1/secrets/ok", content=iter([big[:1_500_000], big[1_500_000:]]))
    assert streamed.status_code == 413
    assert "over the limit of 2,097,152 bytes" in streamed.json()["error"]["message"]


def test_unknown_secrets_are_404(api: TestClient) -> None:
    assert "no secret named 'nope'" in api.get("/v1/secrets/nope").json()["error"]["message"]
    assert api.delete("/v1/secrets/nope").status_code == 404


# deploys, rolling, removal -----------------------------------------------------------------------
def test_a_deploy_naming_a_missing_secret_is_refused_naming_it(plane: ControlPlane, make_project: ProjectFactory) -> None:
    with pytest.raises(fn.NotFound) as info:
        deploy(plane, make_project, "secrets=['openai', 'db']")
    assert info.value.status == 404
    assert "add: secrets 'openai', 'db' do not exist; create them with 'fnctl secrets set openai KEY=-'" in str(info.value)
    assert plane.jobs == {}


def test_a_deployed_function_gets_its_secret_through_the_hub_and_shows_only_its_name(
        plane: ControlPlane, api: TestClient, make_project: ProjectFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api.put("/v1/secrets/openai", json={"values": {"OPENAI_API_KEY": VALUE}})
    api.put("/v1/secrets/unused", json={"values": {"OTHER": "not-for-anyone"}})
    assert hub_secrets(plane) == {}  # nothing deployed names them: the hub holds none
    job = deploy(plane, make_project)
    assert job.state == "succeeded", job.events
    assert plane.deployer.held_at_check == {"add": ["openai"]}  # type: ignore[attr-defined]  # before it was active
    assert hub_secrets(plane) == {"openai": {"revision": 1, "values": {"OPENAI_API_KEY": VALUE}}}
    described = api.get("/v1/functions/add")
    assert described.json()["spec"]["secrets"] == ["openai"]
    assert api.get("/v1/secrets").json()[0]["used_by"] == ["add"]
    for text in (described.text, json.dumps(job.to_json()), caplog.text):
        assert VALUE not in text


def test_changing_a_secret_rolls_the_functions_that_use_it(plane: ControlPlane, api: TestClient,
                                                          make_project: ProjectFactory) -> None:
    api.put("/v1/secrets/openai", json={"values": {"OPENAI_API_KEY": VALUE}})
    deploy(plane, make_project)
    deployer: RecordingDeployer = plane.deployer  # type: ignore[assignment]
    assert deployer.applied == [("add", 1, True)]
    changed = api.put("/v1/secrets/openai", json={"values": {"OPENAI_API_KEY": NEW_VALUE}}).json()
    assert (changed["revision"], changed["restarting"]) == (2, ["add"])
    assert deployer.applied == [("add", 1, True), ("add", 1, False)]  # the same version, re-applied without waiting
    assert hub_secrets(plane)["openai"] == {"revision": 2, "values": {"OPENAI_API_KEY": NEW_VALUE}}
    assert NEW_VALUE not in json.dumps(changed)


def test_a_secrets_revision_is_part_of_the_serve_version_so_serve_replaces_replicas(tmp_path: Path) -> None:
    from fnplatform.storage.secrets import LocalKeyCipher, SecretStore

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    store = SecretStore(url, LocalKeyCipher(b"k" * 32))
    deployer = Deployer(Registry(url), DeployContext(store=StoreConfig(kind="local", root=str(tmp_path)), cache_dir=""))
    spec = fn.FunctionSpec(name="add", secrets=("openai", "db"))
    version = VersionRecord(function="add", number=1, spec=spec, bundle_sha256="0" * 64, status="ready", error=None,
                            created_at=None)  # type: ignore[arg-type]
    store.put("openai", {"K": VALUE})
    store.put("db", {"P": "x"})
    first = deployer.secrets_tag(spec)
    assert first == "openai:1,db:1"
    store.put("openai", {"K": VALUE})  # unchanged: same Serve version, nothing restarts
    assert deployer.secrets_tag(spec) == first
    store.put("openai", {"K": NEW_VALUE})
    assert deployer.secrets_tag(spec) == "openai:2,db:1"
    assert version_tag(version, first) != version_tag(version, deployer.secrets_tag(spec))
    assert version_tag(version) == version_tag(version, deployer.secrets_tag(fn.FunctionSpec(name="add")))


def test_a_secret_in_use_is_not_removed_without_force(plane: ControlPlane, api: TestClient,
                                                     make_project: ProjectFactory) -> None:
    api.put("/v1/secrets/openai", json={"values": {"OPENAI_API_KEY": VALUE}})
    deploy(plane, make_project)
    refused = api.delete("/v1/secrets/openai")
    assert refused.status_code == 409
    assert "secret 'openai' is used by function 'add'" in refused.json()["error"]["message"]
    assert "--force" in refused.json()["error"]["message"]
    assert refused.json()["error"]["detail"] == {"used_by": ["add"]}
    forced = api.delete("/v1/secrets/openai", params={"force": "true"})
    assert forced.json() == {"removed": "openai", "used_by": ["add"]}
    assert hub_secrets(plane) == {}
    assert api.get("/v1/secrets").json() == []


def test_a_key_set_twice_for_one_function_is_refused(plane: ControlPlane, api: TestClient,
                                                    make_project: ProjectFactory) -> None:
    api.put("/v1/secrets/openai", json={"values": {"OPENAI_API_KEY": VALUE}})
    with pytest.raises(fn.Conflict, match="add: OPENAI_API_KEY is set by both env and secret 'openai'"):
        deploy(plane, make_project, "env={'OPENAI_API_KEY': 'x'}, secrets=['openai']")
    deploy(plane, make_project, "env={'MODE': 'fast'}, secrets=['openai']")
    clash = api.put("/v1/secrets/openai", json={"values": {"OPENAI_API_KEY": VALUE, "MODE": "slow"}})
    assert clash.status_code == 409
    assert "function 'add' uses it, and MODE is set by both env and secret 'openai'" in clash.json()["error"]["message"]
    api.put("/v1/secrets/db", json={"values": {"DB_PASSWORD": "pw"}})
    deploy(plane, make_project, "secrets=['openai', 'db']")
    clash = api.put("/v1/secrets/db", json={"values": {"OPENAI_API_KEY": "other"}})
    assert clash.status_code == 409
    assert "OPENAI_API_KEY is set by both secret 'openai' and secret 'db'" in clash.json()["error"]["message"]


# fnctl secrets -----------------------------------------------------------------------------------
class _WithoutTimeout:
    """fnctl's client passes a timeout, which the TestClient (no sockets) warns about."""

    def __init__(self, client: TestClient) -> None:
        self._client = client

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        kwargs.pop("timeout", None)
        return self._client.request(method, url, **kwargs)


@pytest.fixture
def fnctl(api: TestClient, monkeypatch: pytest.MonkeyPatch) -> Any:
    """fnctl against the in-process app: its HTTP client is the TestClient."""
    monkeypatch.setenv("FN_API_URL", "http://testserver")
    monkeypatch.setenv("FN_API_KEY", "in-the-test-client")
    monkeypatch.setattr(_api, "shared_client", lambda settings: _WithoutTimeout(api))

    def run(*args: str, stdin: str | None = None) -> Any:
        return CliRunner().invoke(cli, list(args), input=stdin)

    return run


def test_fnctl_secrets_set_reads_values_from_stdin_or_a_file_and_never_prints_them(
        fnctl: Any, plane: ControlPlane, tmp_path: Path) -> None:
    result = fnctl("secrets", "set", "openai", "OPENAI_API_KEY=-", "ORG=acme", stdin=VALUE + "\n")
    assert result.exit_code == 0, result.output
    assert result.output == "secret openai set (revision 1): keys OPENAI_API_KEY, ORG\n"
    assert plane.secrets.store.values(["openai"]) == {"openai": {"OPENAI_API_KEY": VALUE, "ORG": "acme"}}
    env_file = tmp_path / "prod.env"
    env_file.write_text(f"# prod\nexport DB_PASSWORD='{NEW_VALUE}'\n\nDB_USER=app\n")
    result = fnctl("secrets", "set", "db", "--from-env-file", str(env_file))
    assert result.exit_code == 0, result.output
    assert plane.secrets.store.values(["db"])["db"] == {"DB_PASSWORD": NEW_VALUE, "DB_USER": "app"}
    listed = fnctl("secrets", "ls")
    assert listed.exit_code == 0
    assert "openai" in listed.output and "OPENAI_API_KEY, ORG" in listed.output and "DB_PASSWORD, DB_USER" in listed.output
    again = fnctl("secrets", "set", "db", "--from-env-file", str(env_file))
    assert again.output.startswith("secret db unchanged (revision 1)")
    for text in (listed.output, fnctl("secrets", "ls", "--json").output, again.output):
        assert VALUE not in text and NEW_VALUE not in text


@pytest.mark.parametrize(("args", "stdin", "expected"), [
    (["openai"], None, "give at least one KEY=-, KEY=VALUE or --from-env-file FILE"),
    (["openai", "NOEQUALS"], None, "'NOEQUALS' is not KEY=VALUE or KEY=-"),
    (["openai", "1KEY=v"], None, "'1KEY' is not an environment variable name"),
    (["openai", "A=-", "B=-"], "x", "standard input is already read for another value"),
    (["openai", "A=1", "A=2"], None, "A is given twice"),
    (["openai", "--from-env-file", "/nonexistent/file"], None, "cannot read /nonexistent/file"),
])
def test_fnctl_secrets_set_usage_errors_are_one_clear_message(fnctl: Any, args: list[str], stdin: str | None,
                                                              expected: str) -> None:
    result = fnctl("secrets", "set", *args, stdin=stdin)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_fnctl_secrets_set_env_file_errors_name_the_line(fnctl: Any, tmp_path: Path) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_text("GOOD=1\nthis line is wrong\n")
    result = fnctl("secrets", "set", "x", "--from-env-file", str(env_file))
    assert result.exit_code == 2
    assert "line 2 is not KEY=VALUE" in result.output


def test_fnctl_secrets_server_errors_are_one_line(fnctl: Any) -> None:
    result = fnctl("secrets", "set", "Bad_Name", "K=v")
    assert result.exit_code == 1
    assert result.output.startswith("Error: BadRequest: secret name 'Bad_Name' is invalid")


def test_fnctl_secrets_rm_refuses_a_secret_in_use_unless_forced(fnctl: Any, plane: ControlPlane,
                                                               make_project: ProjectFactory) -> None:
    assert fnctl("secrets", "set", "openai", "OPENAI_API_KEY=-", stdin=VALUE).exit_code == 0
    deploy(plane, make_project)
    refused = fnctl("secrets", "rm", "openai")
    assert refused.exit_code == 1
    assert "secret 'openai' is used by function 'add'" in refused.output
    forced = fnctl("secrets", "rm", "openai", "--force")
    assert forced.exit_code == 0
    assert forced.output == "removed secret openai (still named by add)\n"
    assert fnctl("secrets", "ls").output.strip() == "no secrets; create one with 'fnctl secrets set NAME KEY=-'"


def test_fnctl_describe_shows_the_secret_names_a_function_uses_never_values(fnctl: Any, plane: ControlPlane,
                                                                           make_project: ProjectFactory) -> None:
    assert fnctl("secrets", "set", "openai", "OPENAI_API_KEY=-", stdin=VALUE).exit_code == 0
    deploy(plane, make_project)
    for args in (["describe", "add"], ["describe", "add", "--json"], ["ls", "--json"]):
        result = fnctl(*args)
        assert result.exit_code == 0, result.output
        assert VALUE not in result.output
    assert "secrets: ['openai']" in fnctl("describe", "add").output


def test_a_function_without_secrets_keeps_the_serve_version_it_had_before_the_option() -> None:
    import hashlib

    spec = fn.FunctionSpec(name="add")
    version = VersionRecord(function="add", number=1, spec=spec, bundle_sha256="0" * 64, status="ready", error=None,
                            created_at=None)  # type: ignore[arg-type]
    before = spec.model_dump_json(exclude={"secrets"}) + "0" * 64  # how the tag was computed until now
    assert version_tag(version) == hashlib.sha256(before.encode()).hexdigest()[:16]


def test_the_openapi_document_describes_the_body(api: TestClient) -> None:
    operation = api.get("/openapi.json").json()["paths"]["/v1/secrets/{name}"]["put"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["required"] == ["values"]
