"""Packaging: deterministic, content-addressed bundles with a manifest; server-side bundle checks."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import textwrap
import zipfile
from pathlib import Path

import pytest

import fn
from fnplatform.bundles.packaging import (
    MANIFEST_NAME,
    Bundle,
    BundleError,
    Manifest,
    build_bundle,
    build_zip,
    check_module_names,
    collect_files,
    inspect_bundle,
    read_requirements,
    top_level_modules,
)

from .conftest import ProjectFactory

APP = """
    import fn

    @fn.function(cpus=0.5, max_replicas=3)
    def add(a: int, b: int) -> int:
        return a + b

    @fn.model(pool="gpu", gpus=0.5)
    class Reverser:
        def setup(self) -> None:
            self.prefix = ">"

        def __call__(self, text: str) -> str:
            return self.prefix + text[::-1]
"""


def names(root: Path) -> list[str]:
    return [name for name, _ in collect_files(root)]


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def manifest_json(*function_names: str) -> bytes:
    specs = tuple(fn.FunctionSpec(name=n, entrypoint=f"app:{n}") for n in function_names)
    return Manifest(functions=specs).to_json()


# --- build_bundle -----------------------------------------------------------------------------


PROJECT = {"app.py": APP, "helpers/__init__.py": "", "helpers/text.py": "X = 1\n",
           "requirements.txt": "numpy>=2  # arrays\n\n# comment\nrequests\n"}


@pytest.fixture
def project(make_project: ProjectFactory) -> Path:
    return make_project(PROJECT)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Bundle]:
    """One project built once, for the tests that only read the result."""
    root = tmp_path_factory.mktemp("built")
    for rel, text in PROJECT.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text).lstrip())
    return root, build_bundle(root)


def test_bundle_has_the_manifest_at_its_root_and_every_file(built: tuple[Path, Bundle]) -> None:
    project, bundle = built
    assert bundle.sha256 == hashlib.sha256(bundle.data).hexdigest()
    assert bundle.files == ("app.py", "helpers/__init__.py", "helpers/text.py", "requirements.txt")
    with zipfile.ZipFile(io.BytesIO(bundle.data)) as archive:
        entries = archive.namelist()
        assert entries == sorted([MANIFEST_NAME, *bundle.files])
        assert archive.read("app.py") == (project / "app.py").read_bytes()
        manifest = json.loads(archive.read(MANIFEST_NAME))
        infos = archive.infolist()
    assert manifest["format"] == 1
    assert manifest["sdk_version"] == fn.__version__
    assert manifest["requirements"] == ["numpy>=2", "requests"]
    assert [(f["name"], f["kind"], f["entrypoint"]) for f in manifest["functions"]] == [
        ("add", "function", "app:add"), ("reverser", "model", "app:Reverser")]
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_manifest_matches_the_decorators(built: tuple[Path, Bundle]) -> None:
    manifest = built[1].manifest
    specs = {spec.name: spec for spec in manifest.functions}
    assert specs["add"] == fn.FunctionSpec(name="add", entrypoint="app:add", cpus=0.5, max_replicas=3)
    assert (specs["reverser"].pool, specs["reverser"].gpus) == ("gpu", 0.5)
    assert manifest.requirements == ("numpy>=2", "requests")


def test_same_files_give_the_same_bytes_and_sha(project: Path) -> None:
    first = build_bundle(project)
    (project / "__pycache__").mkdir(exist_ok=True)  # what running the code leaves behind
    (project / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\x00compiled")
    (project / "helpers" / "text.pyc").write_bytes(b"\x00compiled")
    for path in project.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    second = build_bundle(project)
    assert second.data == first.data
    assert second.sha256 == first.sha256
    assert second.files == first.files


def test_the_same_project_elsewhere_gives_the_same_sha(project: Path, built: tuple[Path, Bundle]) -> None:
    assert project != built[0]
    assert build_bundle(project).sha256 == built[1].sha256


def test_changing_a_file_changes_the_sha(project: Path) -> None:
    before = build_bundle(project).sha256
    (project / "helpers" / "text.py").write_text("X = 2\n")
    assert build_bundle(project).sha256 != before


def test_executable_bit_is_kept(make_project: ProjectFactory) -> None:
    root = make_project({"app.py": APP, "run.sh": "#!/bin/sh\necho hi\n"})
    (root / "run.sh").chmod(0o755)
    with zipfile.ZipFile(io.BytesIO(build_bundle(root).data)) as archive:
        modes = {info.filename: stat.S_IMODE(info.external_attr >> 16) for info in archive.infolist()}
    assert modes["run.sh"] == 0o755
    assert modes["app.py"] == 0o644


def test_project_path_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="is not a directory"):
        build_bundle(tmp_path / "missing")


def test_bundle_over_the_limit_is_refused(make_project: ProjectFactory) -> None:
    root = make_project({"app.py": APP, "weights.txt": "w" * 5000})
    with pytest.raises(BundleError) as info:
        build_bundle(root, max_bytes=2000)
    message = str(info.value)
    assert "over the bundle limit of 2,000" in message
    assert ".fnignore" in message


def test_bundle_error_is_a_spec_error() -> None:
    assert issubclass(BundleError, fn.SpecError)


# --- collect_files ----------------------------------------------------------------------------


def test_tooling_folders_caches_and_virtualenvs_are_left_out(make_project: ProjectFactory) -> None:
    root = make_project({
        "app.py": "", ".git/config": "", "__pycache__/app.cpython-311.pyc": "", "pkg/mod.pyc": "",
        "pkg/mod.py": "", "node_modules/x.js": "", ".venv/lib.py": "", "venv/lib.py": "",
        "myenv/pyvenv.cfg": "home = /usr\n", "myenv/lib/site.py": "", ".pytest_cache/x": "",
        "data/keep.txt": "",
    })
    assert names(root) == ["app.py", "data/keep.txt", "pkg/mod.py"]


def test_fnignore_patterns(make_project: ProjectFactory) -> None:
    root = make_project({
        ".fnignore": "# large files\n*.csv\ndata/\ndocs/*.md\n\n",
        "app.py": "", "table.csv": "", "sub/table.csv": "", "data/x.bin": "", "sub/data/y.bin": "",
        "docs/readme.md": "", "docs/guide.txt": "", "other/readme.md": "", "data.txt": "",
    })
    assert names(root) == [".fnignore", "app.py", "data.txt", "docs/guide.txt", "other/readme.md"]


def test_files_are_sorted_with_posix_names(make_project: ProjectFactory) -> None:
    root = make_project({"b.py": "", "a/z.py": "", "a/b/c.py": "", "A.py": ""})
    assert names(root) == ["A.py", "a/b/c.py", "a/z.py", "b.py"]


def test_symlink_inside_the_project_is_followed(make_project: ProjectFactory) -> None:
    root = make_project({"app.py": "", "real/data.txt": "payload"})
    (root / "alias.txt").symlink_to(root / "real" / "data.txt")
    files = dict(collect_files(root))
    assert files["alias.txt"].read_text() == "payload"


def test_symlink_leaving_the_project_is_refused(make_project: ProjectFactory, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    root = make_project({"app.py": ""})
    (root / "link.txt").symlink_to(outside)
    with pytest.raises(BundleError) as info:
        collect_files(root)
    message = str(info.value)
    assert "link.txt is a symlink to" in message
    assert "outside the project" in message
    assert "copy the file in instead" in message


def test_symlinked_folder_leaving_the_project_is_refused(make_project: ProjectFactory, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    root = make_project({"app.py": ""})
    (root / "lib").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(BundleError, match="outside the project"):
        collect_files(root)


def test_broken_symlink_is_refused(make_project: ProjectFactory) -> None:
    root = make_project({"app.py": ""})
    (root / "gone.txt").symlink_to(root / "nothing-here.txt")
    with pytest.raises(BundleError, match=r"gone\.txt is a broken symlink"):
        collect_files(root)


def test_symlink_loop_inside_the_project_terminates(make_project: ProjectFactory) -> None:
    root = make_project({"app.py": "", "pkg/mod.py": ""})
    (root / "pkg" / "again").symlink_to(root / "pkg", target_is_directory=True)
    assert names(root) == ["app.py", "pkg/mod.py"]


# --- module names -----------------------------------------------------------------------------


def test_top_level_modules() -> None:
    assert top_level_modules(["app.py", "pkg/__init__.py", "pkg/sub/x.py", "data/x.txt", "README.md"]) == {
        "app", "pkg"}


@pytest.mark.parametrize("name", ["json.py", "logging/__init__.py", "ray/__init__.py", "fn.py", "platform.py",
                                  "fnplatform/x.py", "typing.py"])
def test_modules_shadowing_the_stdlib_or_the_platform_are_refused(name: str) -> None:
    module = name.split("/")[0].removesuffix(".py")
    with pytest.raises(BundleError) as info:
        check_module_names(["app.py", name])
    message = str(info.value)
    assert repr(module) in message
    assert f"'my_{module}'" in message


def test_stdlib_names_inside_a_package_are_fine() -> None:
    check_module_names(["mypkg/__init__.py", "mypkg/json.py", "mypkg/logging.py", "json/data.txt"])


def test_build_refuses_a_shadowing_module_before_importing_anything(make_project: ProjectFactory) -> None:
    root = make_project({"app.py": APP, "json.py": "raise SystemExit('must not be imported')\n"})
    with pytest.raises(BundleError, match=r"top-level module\(s\) 'json' would shadow"):
        build_bundle(root)


def test_read_requirements(make_project: ProjectFactory) -> None:
    root = make_project({"requirements.txt": "# pinned\nnumpy==2.1  # fast\n\n  torch>=2\n"})
    assert read_requirements(root) == ("numpy==2.1", "torch>=2")
    assert read_requirements(make_project({"app.py": ""})) == ()


def test_build_zip_refuses_to_exceed_max_bytes(make_project: ProjectFactory) -> None:
    root = make_project({"big.txt": "x" * 100})
    manifest = Manifest(functions=(fn.FunctionSpec(name="f"),))
    with pytest.raises(BundleError, match="total 100 bytes, over the bundle limit of 99"):
        build_zip(collect_files(root), manifest, max_bytes=99)
    # compressible files under the raw limit can still make a zip over it (the manifest is added)
    with pytest.raises(BundleError, match=r"the bundle is [\d,]+ bytes, over the limit of 100$"):
        build_zip(collect_files(root), manifest, max_bytes=100)


# --- inspect_bundle (server side) -------------------------------------------------------------


def test_inspect_returns_the_bundles_own_manifest(built: tuple[Path, Bundle]) -> None:
    bundle = built[1]
    manifest = inspect_bundle(bundle.data, expected_sha256=bundle.sha256)
    assert manifest == bundle.manifest


def test_inspect_refuses_a_wrong_sha() -> None:
    data = zip_bytes({MANIFEST_NAME: manifest_json("add"), "app.py": b""})
    with pytest.raises(BundleError) as info:
        inspect_bundle(data, expected_sha256="0" * 64)
    assert hashlib.sha256(data).hexdigest() in str(info.value)
    assert "not " + "0" * 64 in str(info.value)


def test_inspect_refuses_what_is_not_a_zip() -> None:
    with pytest.raises(BundleError, match="the bundle is not a zip file"):
        inspect_bundle(b"PK\x03\x04 definitely not a zip")


def test_inspect_refuses_a_bundle_without_manifest() -> None:
    with pytest.raises(BundleError, match=f"has no {MANIFEST_NAME} at its root"):
        inspect_bundle(zip_bytes({"app.py": b"", f"sub/{MANIFEST_NAME}": manifest_json("add")}))


@pytest.mark.parametrize("entry", ["../evil.py", "pkg/../../evil.py", "/etc/evil.py"])
def test_inspect_refuses_unsafe_entries(entry: str) -> None:
    with pytest.raises(BundleError, match="unsafe entry"):
        inspect_bundle(zip_bytes({MANIFEST_NAME: manifest_json("add"), entry: b"x"}))


def test_inspect_refuses_an_oversized_bundle() -> None:
    data = zip_bytes({MANIFEST_NAME: manifest_json("add")})
    with pytest.raises(BundleError, match=f"the bundle is {len(data):,} bytes, over the limit of 10"):
        inspect_bundle(data, max_bytes=10)


def test_inspect_refuses_an_invalid_manifest() -> None:
    with pytest.raises(BundleError, match=f"{MANIFEST_NAME} is invalid"):
        inspect_bundle(zip_bytes({MANIFEST_NAME: b"{not json"}))
    bad_spec = json.dumps({"functions": [{"name": "Bad Name"}]}).encode()
    with pytest.raises(BundleError, match=f"{MANIFEST_NAME} is invalid"):
        inspect_bundle(zip_bytes({MANIFEST_NAME: bad_spec}))


def test_inspect_refuses_a_manifest_without_functions() -> None:
    with pytest.raises(BundleError, match="lists no functions"):
        inspect_bundle(zip_bytes({MANIFEST_NAME: Manifest(functions=()).to_json()}))


def test_inspect_refuses_shadowing_modules() -> None:
    with pytest.raises(BundleError, match="'os'"):
        inspect_bundle(zip_bytes({MANIFEST_NAME: manifest_json("add"), "os.py": b""}))
