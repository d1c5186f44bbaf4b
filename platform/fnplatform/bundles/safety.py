"""What a bundle may hold and how big it may unpack: one set of rules for the packager (before upload),
the control plane (on upload, from the zip's central directory, before anything is inflated) and the
replica (while it extracts, counting the bytes it actually writes).

A bundle is code and small data. Refused: entries that are not regular files or folders (symlinks,
devices), names that could land outside the bundle folder, duplicates, native code and files that
change how Python imports (``.so``, ``.pyc``, ``.pth``), top-level modules that would shadow the
standard library or the platform, and anything over the caps in ``BundleLimits``.
"""

from __future__ import annotations

import re
import stat
import struct
import sys
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import IO, Any

from fn import ConfigError, SpecError

MIB = 1024 * 1024
MANIFEST_NAME = "fn-manifest.json"
# Names a bundle's top-level modules must not take: they would shadow what the replica imports.
RESERVED_MODULES = frozenset(sys.stdlib_module_names) | {"ray", "fn", "fnctl", "fnplatform", "pydantic", "starlette"}
# Below this many bytes an entry's compression ratio is not judged: small files of blanks compress
# well and cost nothing (the same grace as Apache POI's ZipSecureFile).
RATIO_GRACE_BYTES = 100 * 1024
MAX_NAME_CHARS = 1024
_REFUSED_SUFFIXES = {
    ".so": "native code (a compiled extension); list the package in requirements.txt instead",
    ".pyc": "compiled bytecode, which runs without its source; ship the .py file",
    ".pyo": "compiled bytecode, which runs without its source; ship the .py file",
    ".pth": "a path-configuration file, which changes how the replica imports; remove it",
}
_VERSIONED_SO = re.compile(r"\.so(\.\d+)+$")
_ALLOWED_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_EOCD = struct.Struct("<4s4H2LH")
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL_HEADER = struct.Struct("<4s6H3L5H2L")


class BundleError(SpecError):
    """A project or bundle that cannot be deployed; nothing has been uploaded."""


class BundleTooLarge(BundleError):
    """A bundle over one of the caps in ``BundleLimits`` (the control plane answers 413)."""


@dataclass(frozen=True)
class BundleLimits:
    """Caps on what a bundle unpacks to; the control plane's settings, passed to replicas as plain data."""

    max_unpacked_bytes: int = 64 * MIB  # FN_MAX_UNPACKED_MB
    max_entries: int = 10_000  # FN_MAX_BUNDLE_ENTRIES
    max_manifest_bytes: int = 1 * MIB  # FN_MAX_MANIFEST_KB
    max_ratio: float = 100.0  # FN_MAX_COMPRESSION_RATIO: uncompressed / compressed, per entry and overall

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise ConfigError(f"bundle limit {name}={value!r} must be positive; "
                                  f"fix {_SETTING[name]} in the control plane's environment")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> BundleLimits:
        known = {name: value for name, value in (data or {}).items() if name in cls.__dataclass_fields__}
        return cls(**known)


_SETTING = {"max_unpacked_bytes": "FN_MAX_UNPACKED_MB", "max_entries": "FN_MAX_BUNDLE_ENTRIES",
            "max_manifest_bytes": "FN_MAX_MANIFEST_KB", "max_ratio": "FN_MAX_COMPRESSION_RATIO"}


def _over(what: str, found: str, cap: str, setting: str, fix: str) -> BundleTooLarge:
    return BundleTooLarge(f"{what} is {found}, over the limit of {cap} ({setting}); {fix}, "
                          f"or raise {setting} in the control plane's environment")


def too_many_entries(count: int | str, limits: BundleLimits) -> BundleTooLarge:
    return _over("the bundle's entry count", str(count), f"{limits.max_entries:,}", "FN_MAX_BUNDLE_ENTRIES",
                 "list generated or data files in .fnignore")


def too_big_unpacked(total: int, limits: BundleLimits, *, written: bool = False) -> BundleTooLarge:
    what = "what the bundle wrote while unpacking" if written else "the bundle's unpacked size"
    return _over(what, f"{total:,} bytes", f"{limits.max_unpacked_bytes:,}", "FN_MAX_UNPACKED_MB",
                 "list large files in .fnignore or declare model files as artifacts")


def entry_problem(name: str) -> str | None:
    """Why an archive name may not be in a bundle (None when it may), whatever the entry holds."""
    if not name or len(name) > MAX_NAME_CHARS:
        return f"unsafe entry {name[:80]!r}: a name must have 1 to {MAX_NAME_CHARS} characters"
    if any(ord(char) < 32 for char in name) or "\\" in name:
        return f"unsafe entry {name!r}: control characters and backslashes are not allowed in names"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return f"unsafe entry {name!r}: an absolute path would write outside the bundle folder"
    parts = name.removesuffix("/").split("/")
    if ".." in parts:
        return f"unsafe entry {name!r}: a '..' component would write outside the bundle folder"
    if any(part in {"", "."} for part in parts):
        return f"unsafe entry {name!r}: empty and '.' path components are not allowed"
    if any(len(part.encode()) > 255 for part in parts):
        return f"unsafe entry {name!r}: a path component is longer than 255 bytes"
    if name.endswith("/"):
        return None
    suffix = PurePosixPath(name).suffix
    why = _REFUSED_SUFFIXES.get(suffix) or (_REFUSED_SUFFIXES[".so"] if _VERSIONED_SO.search(name) else None)
    if why:
        return f"entry {name!r} is refused: {why}"
    return None


def top_level_modules(names: Iterable[str]) -> set[str]:
    """Top-level importable names in a list of archive names (``x.py`` -> x, ``x/...py`` -> x)."""
    modules = set()
    for name in names:
        parts = PurePosixPath(name).parts
        if len(parts) == 1 and parts[0].endswith(".py"):
            modules.add(parts[0][:-3])
        elif len(parts) > 1 and parts[-1].endswith(".py"):
            modules.add(parts[0])
    return modules


def check_module_names(names: Iterable[str]) -> None:
    names = list(names)
    clashes = sorted(top_level_modules(names) & RESERVED_MODULES)
    if clashes:
        entries = [n for n in names if PurePosixPath(n).parts[0] in {clashes[0], f"{clashes[0]}.py"}]
        raise BundleError(
            f"top-level module(s) {', '.join(repr(c) for c in clashes)} would shadow the standard library or "
            f"the platform in the replica (entry {entries[0]!r}); rename them "
            f"(e.g. {clashes[0]!r} -> 'my_{clashes[0]}') or move them into a package"
        )


@dataclass(frozen=True)
class Entry:
    """One archive member as the rules see it: its name, type and declared sizes."""

    name: str
    size: int  # uncompressed bytes, as declared
    compressed: int | None = None  # None before the zip is built (at packaging time)
    kind: str = "file"  # "file" | "dir" | a refused type ("symlink", "device or other special file")

    @classmethod
    def of(cls, info: zipfile.ZipInfo) -> Entry:
        return cls(name=info.filename, size=info.file_size, compressed=info.compress_size, kind=_kind(info))


def _kind(info: zipfile.ZipInfo) -> str:
    fmt = stat.S_IFMT(info.external_attr >> 16)
    is_dir = info.filename.endswith("/")
    if fmt == stat.S_IFLNK:
        return "symlink"
    if is_dir and fmt in {0, stat.S_IFDIR}:
        return "dir"
    if not is_dir and fmt in {0, stat.S_IFREG}:  # tools that write no Unix mode write plain files
        return "file"
    if fmt in {stat.S_IFDIR, stat.S_IFREG}:
        return "folder/file whose type and name disagree"
    return "device or other special file"


def check_names(names: Iterable[str]) -> None:
    """The rules on names alone: safe paths, no refused file types, no shadowing top-level modules."""
    names = list(names)
    for name in names:
        problem = entry_problem(name)
        if problem:
            raise BundleError(f"the bundle has an {problem}" if problem.startswith("unsafe") else problem)
    check_module_names(name for name in names if not name.endswith("/"))


def check_entries(entries: list[Entry], limits: BundleLimits, *, archive_bytes: int | None = None) -> None:
    """Every rule that needs only names, types and declared sizes; raises on the first problem."""
    if len(entries) > limits.max_entries:
        raise too_many_entries(f"{len(entries):,}", limits)
    check_names(entry.name for entry in entries)
    seen: set[str] = set()
    files: set[str] = set()
    total = 0
    for entry in entries:
        if entry.kind not in {"file", "dir"}:
            raise BundleError(f"the bundle has an unsafe entry {entry.name!r}: it is a {entry.kind}; "
                              f"only regular files and folders are allowed")
        if entry.name in seen:
            raise BundleError(f"the bundle has an unsafe entry {entry.name!r}: the name appears twice")
        seen.add(entry.name)
        if entry.kind == "dir":
            if entry.size:
                raise BundleError(f"the bundle has an unsafe entry {entry.name!r}: a folder that holds {entry.size:,} bytes")
            continue
        files.add(entry.name)
        if entry.name == MANIFEST_NAME and entry.size > limits.max_manifest_bytes:
            raise _over(f"{MANIFEST_NAME}'s size", f"{entry.size:,} bytes", f"{limits.max_manifest_bytes:,}",
                        "FN_MAX_MANIFEST_KB", "declare fewer functions")
        total += entry.size
        if total > limits.max_unpacked_bytes:
            raise too_big_unpacked(total, limits)
        if entry.compressed is not None and entry.size > RATIO_GRACE_BYTES \
                and entry.size > limits.max_ratio * max(entry.compressed, 1):
            ratio = entry.size / max(entry.compressed, 1)
            raise _over(f"entry {entry.name!r}'s compression ratio ({entry.size:,} bytes from {entry.compressed:,})",
                        f"{ratio:,.0f}:1", f"{limits.max_ratio:g}:1", "FN_MAX_COMPRESSION_RATIO",
                        "such a file is mostly padding: leave it out")
    for name in files:  # a file where another entry needs a folder cannot be unpacked
        parts = name.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in files:
                raise BundleError(f"the bundle has an unsafe entry {name!r}: {'/'.join(parts[:depth])!r} is a file")
    if archive_bytes is not None and total > RATIO_GRACE_BYTES and total > limits.max_ratio * max(archive_bytes, 1):
        raise _over(f"the bundle's compression ratio ({total:,} bytes from {archive_bytes:,})",
                    f"{total / max(archive_bytes, 1):,.0f}:1", f"{limits.max_ratio:g}:1", "FN_MAX_COMPRESSION_RATIO",
                    "leave padding-like files out")


def count_entries(fp: IO[bytes], size: int, limits: BundleLimits) -> int:
    """Walk the central directory's headers without keeping them; refuse more than ``max_entries``.

    ``zipfile`` builds an object per header whatever the end record says, so a small upload could hold
    a million headers; this walk stops at the cap instead.
    """
    tail_len = min(size, _EOCD.size + 0xFFFF)
    fp.seek(size - tail_len)
    tail = fp.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(tail):
        raise BundleError("the bundle is not a zip file: no end of central directory record")
    _, _, _, _, count, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, at)
    eocd_pos = size - tail_len + at
    if count == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        locator_pos = eocd_pos - _EOCD64_LOCATOR.size
        fp.seek(max(locator_pos, 0))
        locator = fp.read(_EOCD64_LOCATOR.size)
        if locator_pos < 0 or len(locator) < _EOCD64_LOCATOR.size or locator[:4] != b"PK\x06\x07":
            raise BundleError("the bundle is not a zip file: a zip64 end record is missing")
        record_pos = _EOCD64_LOCATOR.unpack(locator)[2]
        fp.seek(record_pos)
        record = fp.read(_EOCD64.size)
        if len(record) < _EOCD64.size or record[:4] != b"PK\x06\x06":
            raise BundleError("the bundle is not a zip file: its zip64 end record is damaged")
        count, _, cd_size, cd_offset = _EOCD64.unpack(record)[-4:]
        eocd_pos = record_pos
    if count > limits.max_entries:
        raise too_many_entries(f"{count:,}", limits)
    if cd_offset + cd_size != eocd_pos:
        raise BundleError("the bundle's central directory is not where its end record says (data was prepended "
                          "or the zip is damaged); build it again with 'fnctl deploy'")
    fp.seek(cd_offset)
    found = 0
    end = cd_offset + cd_size
    while fp.tell() < end:
        header = fp.read(_CENTRAL_HEADER.size)
        if len(header) < _CENTRAL_HEADER.size or header[:4] != b"PK\x01\x02":
            raise BundleError("the bundle is not a zip file: its central directory is damaged")
        found += 1
        if found > limits.max_entries:
            raise too_many_entries(f"more than {limits.max_entries:,}", limits)
        name_len, extra_len, comment_len = _CENTRAL_HEADER.unpack(header)[10:13]
        fp.seek(name_len + extra_len + comment_len, 1)
    return found


def open_checked(fp: IO[bytes], size: int, limits: BundleLimits) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """Open a bundle and check every rule from its central directory; nothing is inflated."""
    try:
        count_entries(fp, size, limits)
        fp.seek(0)
        archive = zipfile.ZipFile(fp)
    except BundleError:
        raise
    except (zipfile.BadZipFile, UnicodeDecodeError, OverflowError, ValueError, struct.error) as exc:
        # A crafted directory (a name flagged UTF-8 that is not, an offset past 2**63) is a bad zip, not a 500.
        raise BundleError(f"the bundle is not a zip file fn can read: {exc}") from None
    try:
        infos = archive.infolist()
        for info in infos:
            if info.flag_bits & 0x1:
                raise BundleError(f"the bundle has an encrypted entry {info.filename!r}; bundles are not encrypted")
            if info.compress_type not in _ALLOWED_METHODS:
                raise BundleError(f"entry {info.filename!r} uses compression method {info.compress_type}; "
                                  f"only stored and deflated are allowed (build the bundle with 'fnctl deploy')")
        check_entries([Entry.of(info) for info in infos], limits, archive_bytes=size)
    except BaseException:
        archive.close()
        raise
    return archive, infos


def read_manifest(archive: zipfile.ZipFile, limits: BundleLimits) -> bytes:
    """The manifest's bytes, read with a bound whatever its header declares."""
    try:
        info = archive.getinfo(MANIFEST_NAME)
    except KeyError:
        raise BundleError(f"the bundle has no {MANIFEST_NAME} at its root; build it with 'fnctl deploy'") from None
    try:
        with archive.open(info) as member:
            data = member.read(limits.max_manifest_bytes + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise BundleError(f"{MANIFEST_NAME} cannot be read: {exc}") from None
    if len(data) > limits.max_manifest_bytes:
        raise _over(f"{MANIFEST_NAME}'s size", f"over {limits.max_manifest_bytes:,} bytes",
                    f"{limits.max_manifest_bytes:,}", "FN_MAX_MANIFEST_KB", "declare fewer functions")
    return data
