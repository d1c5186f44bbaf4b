"""Discovery imports the project in a subprocess; user errors name the user's file and line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fnplatform.bundles.packaging import BundleError, build_bundle

from .conftest import ProjectFactory


def test_syntax_error_shows_the_users_file_and_line(make_project: ProjectFactory) -> None:
    root = make_project({"app.py": """
        import fn

        @fn.function()
        def add(a, b)
            return a + b
    """})
    with pytest.raises(BundleError) as info:
        build_bundle(root)
    message = str(info.value)
    assert f"syntax error in {root / 'app.py'}:4" in message
    assert "def add(a, b)" in message
    assert "Traceback" not in message
    assert "fnplatform" not in message


def test_exception_at_import_shows_type_message_and_user_frames(make_project: ProjectFactory) -> None:
    root = make_project({
        "app.py": """
            import fn
            from helpers import load

            WEIGHTS = load()

            @fn.function()
            def add(a, b): return a + b
        """,
        "helpers.py": """
            def load():
                raise FileNotFoundError("weights.bin is missing")
        """,
    })
    with pytest.raises(BundleError) as info:
        build_bundle(root)
    message = str(info.value)
    assert f"importing app ({root / 'app.py'}) failed: FileNotFoundError: weights.bin is missing" in message
    assert f'File "{root / "app.py"}", line 4, in <module>' in message
    assert "WEIGHTS = load()" in message
    assert f'File "{root / "helpers.py"}", line 2, in load' in message
    assert "importlib" not in message  # only the user's frames


def test_no_decorated_functions_is_a_clear_error(make_project: ProjectFactory) -> None:
    root = make_project({"app.py": """
        import fn

        def add(a, b):
            return a + b
    """})
    with pytest.raises(BundleError) as info:
        build_bundle(root)
    message = str(info.value)
    assert f"no decorated functions found in {root}" in message
    assert "@fn.function()" in message


def test_invalid_option_names_the_file_and_the_option(make_project: ProjectFactory) -> None:
    root = make_project({"app.py": """
        import fn

        @fn.function(max_replicas=0)
        def add(a, b): return a + b
    """})
    with pytest.raises(BundleError) as info:
        build_bundle(root)
    message = str(info.value)
    assert str(root / "app.py") in message
    assert "max_replicas=0 is invalid" in message


def test_functions_in_packages_and_modules_without_markers(make_project: ProjectFactory) -> None:
    root = make_project({
        "pkg/__init__.py": "",
        "pkg/models.py": """
            from fn import model

            @model(gpus=1)
            class Classifier:
                def __call__(self, text: str) -> str:
                    return text
        """,
        "scripts/train.py": "raise RuntimeError('a script, not imported by discovery')\n",
    })
    manifest = build_bundle(root).manifest
    assert [(s.name, s.entrypoint, s.gpus) for s in manifest.functions] == [
        ("classifier", "pkg.models:Classifier", 1)]


def test_duplicate_function_names_across_modules(make_project: ProjectFactory) -> None:
    source = """
        import fn

        @fn.function(name="add")
        def {name}(a, b): return a + b
    """
    root = make_project({"one.py": source.format(name="add"), "two.py": source.format(name="plus")})
    with pytest.raises(BundleError, match="the name 'add' is already used by one:add"):
        build_bundle(root)


def test_user_output_at_import_does_not_confuse_discovery(make_project: ProjectFactory) -> None:
    root = make_project({"app.py": """
        import fn
        print('{"error": "not really"}', end="")

        @fn.function()
        def add(a, b): return a + b
    """})
    assert [s.name for s in build_bundle(root).manifest.functions] == ["add"]


def test_discover_prints_one_json_line(make_project: ProjectFactory) -> None:
    root = make_project({"app.py": """
        import fn

        @fn.function()
        def add(a, b): return a + b
    """})
    proc = subprocess.run([sys.executable, "-m", "fnplatform.bundles.discovery", str(root)], capture_output=True,
                          text=True, cwd=root, check=True, timeout=60)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [f["entrypoint"] for f in result["functions"]] == ["app:add"]
