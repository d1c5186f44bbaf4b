"""``fn.artifact(name)``: the local path of a model file declared with ``artifacts={...}``.

In a replica the platform has fetched every declared artifact into the node's cache (verified by
hash) and installed the paths here before user code is imported. Run locally, as plain Python,
the name resolves to the file next to the module that declared it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ._decorators import registered
from ._errors import NotFound

_installed: dict[str, Path] = {}


def install(paths: dict[str, Path]) -> None:
    """Called by the replica runtime once the artifacts are in the node cache."""
    _installed.update(paths)


def declared_path(module: str, relative: str) -> Path:
    """*relative* (as declared in the decorator) resolved against the declaring module's folder."""
    module_file = getattr(sys.modules.get(module), "__file__", None)
    base = Path(module_file).parent if module_file else Path.cwd()
    return (base / relative).resolve()


def artifact(name: str) -> Path:
    """The path of the artifact *name*; raises NotFound naming the declared ones."""
    if name in _installed:
        return _installed[name]
    found = {
        declared_path(spec.entrypoint.split(":")[0], spec.artifacts[name])
        for spec, _ in registered().values() if name in spec.artifacts
    }
    if len(found) > 1:
        paths = ", ".join(sorted(str(p) for p in found))
        raise NotFound(f"artifact {name!r} is declared with different files ({paths}); give them distinct names")
    if not found:
        known = sorted({a for spec, _ in registered().values() for a in spec.artifacts} | set(_installed))
        raise NotFound(f"no artifact named {name!r} is declared; declared: {', '.join(known) or 'none'} "
                       f"(declare one with @fn.function(artifacts={{'{name}': 'path/to/file'}}))")
    path = found.pop()
    if not path.is_file():
        raise NotFound(f"artifact {name!r}: {path} does not exist; create the file before running or deploying")
    return path
