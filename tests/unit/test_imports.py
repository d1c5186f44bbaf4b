"""Import hygiene: the SDK and CLI never import Ray, and the repo's platform/ folder never shadows the stdlib."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from .conftest import REPO_ROOT

STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


def run_python(code: str, *, cwd: Path, env: dict[str, str] | None = None) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("modules", [
    ["fn"],
    ["fnctl.main"],
    ["fnplatform.bundles.packaging", "fnplatform.storage.blobs", "fnplatform.storage.registry", "fnplatform.serving.signature",
     "fnplatform.serving.http", "fnplatform.control.settings"],
])
def test_sdk_cli_and_packaging_do_not_import_ray(modules: list[str], tmp_path: Path) -> None:
    code = (f"import importlib, json, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "print(json.dumps({'ray': sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))}))")
    assert run_python(code, cwd=tmp_path) == {"ray": []}


PLATFORM_CODE = (
    "import json, platform\n"
    "print(json.dumps({'file': platform.__file__, 'system': platform.system(), 'python': platform.python_version()}))"
)


def check_stdlib_platform(result: dict[str, object]) -> None:
    assert Path(str(result["file"])).resolve().parent == STDLIB
    assert result["system"] == os.uname().sysname
    assert result["python"] == ".".join(map(str, sys.version_info[:3]))


def test_import_platform_from_the_repo_root_is_the_stdlib() -> None:
    check_stdlib_platform(run_python(PLATFORM_CODE, cwd=REPO_ROOT))


def test_import_platform_with_the_repo_first_on_sys_path(tmp_path: Path) -> None:
    code = f"import sys\nsys.path.insert(0, {str(REPO_ROOT)!r})\n" + PLATFORM_CODE
    check_stdlib_platform(run_python(code, cwd=tmp_path))
    check_stdlib_platform(run_python(PLATFORM_CODE, cwd=tmp_path, env={"PYTHONPATH": str(REPO_ROOT)}))


def test_platform_folder_is_not_a_package() -> None:
    assert (REPO_ROOT / "platform" / "fnplatform").is_dir()
    assert not (REPO_ROOT / "platform" / "__init__.py").exists()


def _fn_imports(path: Path) -> list[tuple[int, str]]:
    """Every ``fn`` name *path* imports: ``fn.x`` modules and ``from fn import x`` names, with line numbers."""
    import ast

    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name == "fn" or a.name.startswith("fn.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "fn":
                found += [(node.lineno, f"fn.{a.name}") for a in node.names]
            elif node.module.startswith("fn."):
                found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("folder", ["platform/fnplatform", "cli/fnctl", "functions"])
def test_the_platform_cli_and_applications_use_only_the_declared_sdk_interface(folder: str) -> None:
    import fn
    from fn import _platform

    public = {f"fn.{name}" for name in fn.__all__} | {"fn", "fn.testing"}

    def allowed(path: Path) -> set[str]:
        # Applications get the public API only; their fnctl command groups (fnctl_* packages) are CLI code.
        cli_code = folder != "functions" or any(part.startswith("fnctl_") for part in path.parts)
        return public | {"fn._platform"} if cli_code else public

    wrong = [f"{path.relative_to(REPO_ROOT)}:{line}: {name}" for path in sorted((REPO_ROOT / folder).rglob("*.py"))
             for line, name in _fn_imports(path) if name not in allowed(path)]
    assert wrong == [], "import these through fn (public) or fn._platform (declared for the platform):\n" + "\n".join(wrong)
    assert all(hasattr(_platform, name) for name in _platform.__all__)
