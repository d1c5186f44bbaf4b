"""Subprocess entry: import a project's modules and print its decorated functions as one JSON line.

Run as ``python -m fnplatform.bundles.discovery PROJECT``. Errors are reported as ``{"error": "..."}``
naming the user's file and line, never as a traceback of ours.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import traceback
from pathlib import Path

from fn import FunctionSpec, SpecError
from fn._platform import declared_flows, declared_path, registered

from .packaging import collect_files

_MARKERS = re.compile(r"(@\s*fn\s*\.\s*(function|model)\b|fn\s*\.\s*Flow\s*\(|from\s+fn\s+import\b)")


def _module_name(rel: str) -> str:
    parts = rel[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _user_frames(exc: BaseException, root: Path) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(str(root))]
    lines = [f'  File "{f.filename}", line {f.lineno}, in {f.name}\n    {(f.line or "").strip()}' for f in frames]
    return "\n".join(lines)


def _project_relative_artifacts(spec: FunctionSpec, root: Path) -> FunctionSpec:
    """Artifact paths are declared relative to their module; the bundle names them from the project root."""
    if not spec.artifacts:
        return spec
    resolved = {}
    for name, relative in spec.artifacts.items():
        path = declared_path(spec.entrypoint.split(":")[0], relative)
        if not path.is_relative_to(root):
            raise SpecError(f"function {spec.name!r}: artifact {name!r} ({path}) is outside the project {root}; "
                            f"move the file into the project")
        resolved[name] = path.relative_to(root).as_posix()
    return spec.model_copy(update={"artifacts": resolved})


def discover(root: Path) -> dict[str, object]:
    sys.path.insert(0, str(root))
    modules = []
    for rel, path in collect_files(root):
        if rel.endswith(".py") and _MARKERS.search(path.read_text(errors="replace")):
            modules.append((_module_name(rel), path))
    for name, path in modules:
        try:
            importlib.import_module(name)
        except SyntaxError as exc:
            where = f"{exc.filename}:{exc.lineno}" if exc.filename else str(path)
            text = (exc.text or "").rstrip()
            return {"error": f"syntax error in {where}: {exc.msg}" + (f"\n    {text}" if text else "")}
        except SpecError as exc:
            return {"error": f"{path}: {exc}"}
        except BaseException as exc:  # noqa: BLE001 - any failure of user code is reported, not raised
            frames = _user_frames(exc, root)
            return {"error": f"importing {name} ({path}) failed: {type(exc).__name__}: {exc}" + (f"\n{frames}" if frames else "")}
    found = [spec for spec, obj in registered().values()
             if str(getattr(sys.modules.get(spec.entrypoint.split(":")[0]), "__file__", "")).startswith(str(root))]
    try:
        found = [_project_relative_artifacts(spec, root) for spec in found]
    except SpecError as exc:
        return {"error": str(exc)}
    flows = [flow.spec() for flow in declared_flows().values()]  # only the project's modules ran here
    if not found and not flows:
        return {"error": f"no decorated functions found in {root}: decorate a module-level function with "
                         f"@fn.function() or a class with @fn.model()"}
    return {"functions": [spec.model_dump(mode="json") for spec in sorted(found, key=lambda s: s.name)],
            "flows": [flow.model_dump(mode="json") for flow in sorted(flows, key=lambda f: f.name)]}


def main() -> None:
    root = Path(sys.argv[1]).resolve()
    try:
        result = discover(root)
    except SpecError as exc:
        result = {"error": str(exc)}
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
