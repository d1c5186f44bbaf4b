"""The platform's parts by the process they run in (fnplatform/__init__.py), held by reading every import.

Lazy imports inside functions count too: they run in the same process when called.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import REPO_ROOT
from .test_imports import run_python

PACKAGE = REPO_ROOT / "platform" / "fnplatform"
# Lower layers never import higher ones; a layer may import its own modules and anything below.
LAYERS = {"pools": 0, "keys": 0, "bundles": 1, "storage": 2, "serving": 3, "flows": 4, "jobs": 4, "state": 4,
          "control": 5}
NEVER = {
    "serving": {"fnplatform.control", "fnplatform.flows", "fnplatform.storage.registry", "fnplatform.storage.db",
                "sqlalchemy", "fastapi", "prometheus_client"},
    "jobs": {"fnplatform.flows"},  # beside flows, not on top of them
    "flows": {"fnplatform.jobs", "fnplatform.state"},
    "state": {"fnplatform.flows", "fnplatform.jobs"},  # its own process: the database and the actor, nothing else
    "bundles": {"ray"},
    "storage": {"ray"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of every module *path* imports (relative imports resolved)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names if (PACKAGE.parent / module.replace(".", "/")
                                                                            / f"{alias.name}.py").is_file()}
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "fnplatform" and len(parts) > 1 else None


def test_no_part_imports_what_its_process_must_not_load() -> None:
    wrong = []
    for module, imported in graph().items():
        banned = NEVER.get(layer(module) or "", set())
        wrong += [f"{module} imports {name}" for name in sorted(imported)
                  if any(name == b or name.startswith(b + ".") for b in banned)]
    assert wrong == []


def test_imports_only_point_down_the_layers() -> None:
    wrong = []
    for module, imported in graph().items():
        mine = LAYERS.get(layer(module) or "")
        for name in sorted(imported):
            theirs = LAYERS.get(layer(name) or "")
            if mine is not None and theirs is not None and theirs > mine:
                wrong.append(f"{module} ({layer(module)}) imports {name} ({layer(name)})")
    assert wrong == []


def test_the_import_graph_has_no_cycle() -> None:
    edges = {m: {i for i in imported if i in graph_modules} for m, imported in graph().items()} if (
        graph_modules := set(graph())) else {}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node] - {node}):
            if nxt.startswith(node + "."):
                continue  # a package importing its own submodule is not a cycle
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_the_replica_loads_no_database_web_framework_or_control_plane_code(tmp_path: Path) -> None:
    code = ("import json, sys\nimport fnplatform.serving.replica, fnplatform.serving.gateway\n"
            "print(json.dumps(sorted(sys.modules)))")
    loaded = run_python(code, cwd=tmp_path)
    banned = [m for m in loaded if m.split(".")[0] in {"sqlalchemy", "fastapi", "psycopg", "boto3", "prometheus_client"}
              or m.startswith(("fnplatform.control", "fnplatform.storage.registry", "fnplatform.storage.db"))]
    assert banned == []


PRIVATE_RAY = ("ray.serve._private", "_get_global_client", "_get_serve_request_context", "_blocking", "deployment._version",
               "._controller")


def test_private_ray_apis_are_used_in_ray_compat_only() -> None:
    wrong = [f"{path.relative_to(REPO_ROOT)}: {marker}" for path in sorted(PACKAGE.rglob("*.py"))
             if path.name != "ray_compat.py" for marker in PRIVATE_RAY if marker in path.read_text()]
    assert wrong == []


def test_another_ray_version_is_refused_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    import fn
    from fnplatform.serving import ray_compat

    ray_compat.check_ray_version()  # the pinned version is the installed one
    monkeypatch.setattr(ray_compat, "RAY_VERSION", "0.0.1")
    with pytest.raises(fn.ConfigError, match=f"fn needs ray==0.0.1 .* but ray {ray.__version__} is installed"):
        ray_compat.check_ray_version()
