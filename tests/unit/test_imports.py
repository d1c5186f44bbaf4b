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
    ["fnplatform.packaging", "fnplatform.store", "fnplatform.registry", "fnplatform.signature",
     "fnplatform._http", "fnplatform.settings"],
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
