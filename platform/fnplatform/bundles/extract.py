"""Unpacking a bundle on a replica's node: the server's checks again, then every member streamed to
disk with the caps applied to the bytes actually written (a lying header cannot unpack more)."""

from __future__ import annotations

import os
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from .safety import BundleError, BundleLimits, open_checked, too_big_unpacked

CHUNK = 1 << 20


def extract_bundle(archive_path: Path, dest: Path, limits: BundleLimits) -> int:
    """Unpack the bundle at *archive_path* into *dest* (created, must not exist); the bytes written."""
    with archive_path.open("rb") as fp:
        archive, infos = open_checked(fp, archive_path.stat().st_size, limits)
        with archive:
            dest.mkdir(mode=0o755)
            total = 0
            for info in infos:
                target = dest.joinpath(*PurePosixPath(info.filename).parts)
                if info.filename.endswith("/"):
                    target.mkdir(mode=0o755, parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                total += _write_member(archive, info, target, limits, total)
    return total


def _write_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limits: BundleLimits,
                  total_before: int) -> int:
    executable = bool(stat.S_IMODE(info.external_attr >> 16) & 0o100)
    # O_EXCL | O_NOFOLLOW: never write through a link or over a file, whatever the names checked said.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    written = 0
    try:
        with os.fdopen(os.open(target, flags, 0o755 if executable else 0o644), "wb") as out, \
                archive.open(info) as member:
            while chunk := member.read(min(CHUNK, info.file_size - written + 1)):
                written += len(chunk)
                if written > info.file_size:
                    raise BundleError(f"entry {info.filename!r} unpacks to more than the {info.file_size:,} bytes "
                                      f"its header declares; the bundle is damaged or crafted")
                if total_before + written > limits.max_unpacked_bytes:
                    raise too_big_unpacked(total_before + written, limits, written=True)
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise BundleError(f"entry {info.filename!r} cannot be unpacked: {exc}") from None
    if written != info.file_size:
        raise BundleError(f"entry {info.filename!r} unpacked to {written:,} bytes, not the {info.file_size:,} "
                          f"its header declares; the bundle is damaged")
    return written
