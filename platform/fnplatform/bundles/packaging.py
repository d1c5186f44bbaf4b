"""Packaging: a project folder -> a deterministic, content-addressed zip bundle with a manifest.

Same files -> same bytes -> same sha256: entries sorted, timestamps and permissions fixed. The
manifest (``fn-manifest.json``) always sits at the zip's root, which also keeps Ray from stripping
a lone top-level folder. Functions are discovered by importing the project in a subprocess
(``fnplatform.bundles.discovery``), so user code never runs inside the CLI or the control plane.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from fn import FlowSpec, FunctionSpec
from fn import __version__ as sdk_version

from .safety import MANIFEST_NAME as MANIFEST_NAME
from .safety import RESERVED_MODULES as RESERVED_MODULES
from .safety import BundleError as BundleError
from .safety import BundleLimits, Entry, check_entries, check_names, open_checked, read_manifest
from .safety import check_module_names as check_module_names
from .safety import top_level_modules as top_level_modules

IGNORE_FILE = ".fnignore"
DEFAULT_MAX_BUNDLE_BYTES = 100 * 1024 * 1024
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_ALWAYS_EXCLUDED = {
    ".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox",
    ".venv", "venv", "node_modules", ".DS_Store", ".ipynb_checkpoints", ".fn",
}
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")  # caches the interpreter writes beside sources: left out, not refused


@dataclass(frozen=True)
class ArtifactRef:
    """A model file kept in the store beside the bundle, at ``artifacts/<sha256>``."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    functions: tuple[FunctionSpec, ...]
    requirements: tuple[str, ...] = ()
    sdk_version: str = sdk_version
    flows: tuple[FlowSpec, ...] = ()
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)  # by project-relative path

    def artifacts_of(self, spec: FunctionSpec) -> dict[str, ArtifactRef]:
        """The artifacts *spec* declares, by the name it reads them with."""
        return {name: self.artifacts[path] for name, path in spec.artifacts.items()}

    def to_json(self) -> bytes:
        body = {
            "format": 1,
            "sdk_version": self.sdk_version,
            "requirements": list(self.requirements),
            "functions": [spec.model_dump(mode="json") for spec in sorted(self.functions, key=lambda s: s.name)],
        }
        if self.artifacts:
            body["artifacts"] = {path: {"sha256": ref.sha256, "size": ref.size}
                                 for path, ref in sorted(self.artifacts.items())}
        if self.flows:
            body["flows"] = [flow.model_dump(mode="json") for flow in sorted(self.flows, key=lambda f: f.name)]
        return json.dumps(body, sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            body = json.loads(data)
            specs = tuple(FunctionSpec.model_validate(item) for item in body["functions"])
            flows = tuple(FlowSpec.model_validate(item) for item in body.get("flows", ()))
            artifacts = {str(path): ArtifactRef(sha256=str(ref["sha256"]), size=int(ref["size"]))
                         for path, ref in body.get("artifacts", {}).items()}
            manifest = cls(functions=specs, requirements=tuple(body.get("requirements", ())),
                           sdk_version=str(body.get("sdk_version", "")), flows=flows, artifacts=artifacts)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise BundleError(f"{MANIFEST_NAME} is invalid: {exc}"[:500]) from None
        for spec in specs:
            for name, path in spec.artifacts.items():
                if path not in artifacts:
                    raise BundleError(f"{MANIFEST_NAME} is invalid: artifact {name!r} of {spec.name!r} ({path}) has no hash")
        for path, ref in artifacts.items():
            if not re.fullmatch(r"[0-9a-f]{64}", ref.sha256):
                raise BundleError(f"{MANIFEST_NAME} is invalid: artifact {path} has a malformed sha256")
        return manifest


@dataclass(frozen=True)
class Bundle:
    data: bytes
    sha256: str
    manifest: Manifest
    files: tuple[str, ...] = field(default=())
    artifact_files: dict[str, Path] = field(default_factory=dict)  # sha256 -> the local file to upload


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _artifacts(root: Path, specs: tuple[FunctionSpec, ...]) -> dict[str, tuple[ArtifactRef, Path]]:
    found: dict[str, tuple[ArtifactRef, Path]] = {}
    for spec in specs:
        for name, rel in spec.artifacts.items():
            path = root / rel
            if rel in found:
                continue
            if not path.is_file():
                raise BundleError(f"function {spec.name!r}: artifact {name!r} is {path}, which does not exist; "
                                  f"create the file before deploying (see the project's README)")
            found[rel] = (ArtifactRef(sha256=hash_file(path), size=path.stat().st_size), path)
    return found


def _ignore_patterns(root: Path) -> list[str]:
    path = root / IGNORE_FILE
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _ignored(rel: PurePosixPath, is_dir: bool, patterns: list[str]) -> bool:
    if rel.name in _ALWAYS_EXCLUDED or (not is_dir and rel.name.endswith(_EXCLUDED_SUFFIXES)):
        return True
    for pattern in patterns:
        dir_only = pattern.endswith("/")
        pat = pattern.rstrip("/")
        if dir_only and not is_dir:
            continue
        if "/" in pat:
            if fnmatch.fnmatch(str(rel), pat.lstrip("/")):
                return True
        elif fnmatch.fnmatch(rel.name, pat):
            return True
    return False


def collect_files(root: Path) -> list[tuple[str, Path]]:
    """(archive name, real path) of every file that goes into the bundle, sorted."""
    root = root.resolve()
    patterns = _ignore_patterns(root)
    found: list[tuple[str, Path]] = []
    seen_dirs: set[Path] = set()

    def walk(directory: Path, rel_dir: PurePosixPath) -> None:
        real = directory.resolve()
        if real in seen_dirs:
            return
        seen_dirs.add(real)
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            rel = rel_dir / entry.name
            path = Path(entry.path)
            if entry.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(root):
                    raise BundleError(f"{rel} is a symlink to {target}, outside the project {root}; copy the file in instead")
                if not target.exists():
                    raise BundleError(f"{rel} is a broken symlink")
            is_dir = entry.is_dir()
            if is_dir and (path / "pyvenv.cfg").exists():
                continue  # a virtualenv, whatever its name
            if _ignored(rel, is_dir, patterns):
                continue
            if is_dir:
                walk(path, rel)
            elif entry.is_file():
                found.append((str(rel), path))

    walk(root, PurePosixPath())
    return sorted(found)


def read_requirements(root: Path) -> tuple[str, ...]:
    path = root / "requirements.txt"
    if not path.is_file():
        return ()
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return tuple(line for line in lines if line)


def build_zip(files: list[tuple[str, Path]], manifest: Manifest, max_bytes: int) -> bytes:
    total = sum(path.stat().st_size for _, path in files)
    if total > max_bytes:
        raise BundleError(f"the project's files total {total:,} bytes, over the bundle limit of {max_bytes:,}; "
                          f"list large files in {IGNORE_FILE} or raise the limit (FN_MAX_BUNDLE_MB)")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entries = [(MANIFEST_NAME, manifest.to_json(), False)]
        entries += [(name, path.read_bytes(), os.access(path, os.X_OK)) for name, path in files if name != MANIFEST_NAME]
        for name, data, executable in sorted(entries, key=lambda item: item[0]):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = ((0o755 if executable else 0o644) | 0o100000) << 16
            archive.writestr(info, data, compresslevel=6)
    data = buffer.getvalue()
    if len(data) > max_bytes:
        raise BundleError(f"the bundle is {len(data):,} bytes, over the limit of {max_bytes:,}")
    return data


def discover(root: Path, *, timeout_s: float = 120) -> Manifest:
    """Import the project in a subprocess and return the manifest of its decorated functions."""
    proc = subprocess.run(
        [sys.executable, "-m", "fnplatform.bundles.discovery", str(root)],
        capture_output=True, text=True, timeout=timeout_s, cwd=root, check=False,
    )
    try:
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    except ValueError:
        result = {}
    if "error" in result:
        raise BundleError(str(result["error"]))
    if proc.returncode != 0 or "functions" not in result:
        raise BundleError(f"importing the project {root} failed:\n{proc.stderr.strip()[-4000:]}")
    specs = tuple(FunctionSpec.model_validate(item) for item in result["functions"])
    flows = tuple(FlowSpec.model_validate(item) for item in result.get("flows", ()))
    return Manifest(functions=specs, requirements=read_requirements(root), flows=flows)


def build_bundle(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
                 limits: BundleLimits | None = None) -> Bundle:
    """Check, discover and zip the project at *path*, refusing what the control plane would refuse."""
    limits = limits or BundleLimits()
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise BundleError(f"project path {str(path)!r} is not a directory")
    files = collect_files(root)
    check_names([name for name, _ in files])  # before any of the project's code is imported
    manifest = discover(root)
    artifacts = _artifacts(root, manifest.functions)
    if artifacts:
        manifest = replace(manifest, artifacts={rel: ref for rel, (ref, _) in artifacts.items()})
        files = [(name, path) for name, path in files if name not in artifacts]  # stored beside the bundle
    check_entries([Entry(name, path.stat().st_size) for name, path in files if name != MANIFEST_NAME], limits)
    data = build_zip(files, manifest, max_bytes)
    _check_archive(data, limits).close()  # the server's own check: compression ratios and the manifest's size
    return Bundle(data=data, sha256=hashlib.sha256(data).hexdigest(), manifest=manifest,
                  files=tuple(name for name, _ in files),
                  artifact_files={ref.sha256: path for ref, path in artifacts.values()})


def _check_archive(data: bytes, limits: BundleLimits) -> zipfile.ZipFile:
    archive, _ = open_checked(io.BytesIO(data), len(data), limits)
    return archive


def inspect_bundle(data: bytes, *, expected_sha256: str | None = None, max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
                   limits: BundleLimits | None = None) -> Manifest:
    """Server-side checks of an uploaded bundle; returns its manifest (never trusts the client's).

    Every rule is checked from the central directory before anything is inflated; only the manifest
    is read, with a bound.
    """
    if len(data) > max_bytes:
        raise BundleError(f"the bundle is {len(data):,} bytes, over the limit of {max_bytes:,}")
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise BundleError(f"the bundle's sha256 is {digest}, not {expected_sha256} as named; upload it again")
    with _check_archive(data, limits or BundleLimits()) as archive:
        manifest = Manifest.from_json(read_manifest(archive, limits or BundleLimits()))
    if not manifest.functions and not manifest.flows:
        raise BundleError("the bundle's manifest lists no functions and no flows")
    return manifest
