"""The node cache: unpacked bundles (``<sha256>/``) and model files (``artifacts/<sha256>``) shared by
every replica process on a node, bounded by bytes.

Several processes use one cache and none knows what the others hold, so "in use" is a timestamp:
each process refreshes the mtime of what it uses (its bundle's ``.verified`` marker, its artifact
files) when it takes it and then every ``idle_s / 5`` seconds from a daemon thread. When a new
entry is added and the cache is over ``max_bytes``, the least recently used entries that no process
has touched for ``idle_s`` (and that this process does not use) are evicted. An eviction renames the
entry away first and checks its mtime again, putting it back if a process touched it meanwhile; a
process that finds its entry gone unpacks it again.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fnplatform.bundles.safety import BundleLimits

GIB = 1024**3
MARKER = ".verified"
SIZE_FILE = ".size"
_SHA = re.compile(r"[0-9a-f]{64}")
_lock = threading.Lock()
_in_use: set[Path] = set()  # the markers and artifact files this process uses
_heartbeat: threading.Thread | None = None


@dataclass(frozen=True)
class CachePolicy:
    """How a node's cache is bounded, and the caps unpacking enforces: plain data for replicas' init args."""

    max_bytes: int = 10 * GIB  # FN_CACHE_MAX_MB
    idle_s: float = 900.0  # FN_CACHE_IDLE_S: an entry untouched this long may be evicted
    limits: BundleLimits = field(default_factory=BundleLimits)

    def to_dict(self) -> dict[str, Any]:
        return {"max_bytes": self.max_bytes, "idle_s": self.idle_s, "limits": self.limits.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CachePolicy:
        if not data:
            return cls()
        return cls(max_bytes=int(data["max_bytes"]), idle_s=float(data["idle_s"]),
                   limits=BundleLimits.from_dict(data.get("limits")))


def use(path: Path, policy: CachePolicy) -> bool:
    """Mark *path* used now and keep it marked while this process lives; False if it is not there."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    with _lock:
        _in_use.add(path)
    _start_heartbeat(max(1.0, min(60.0, policy.idle_s / 5)))
    return True


def in_use() -> frozenset[Path]:
    with _lock:
        return frozenset(_in_use)


def _start_heartbeat(interval_s: float) -> None:
    global _heartbeat
    with _lock:
        if _heartbeat is not None and _heartbeat.is_alive():
            return
        _heartbeat = threading.Thread(target=_beat, args=(interval_s,), name="fn-cache-heartbeat", daemon=True)
        _heartbeat.start()


def _beat(interval_s: float) -> None:
    while True:
        time.sleep(interval_s)
        touch_in_use()


def touch_in_use() -> None:
    """Refresh the mtime of everything this process uses, so other processes do not evict it."""
    for path in in_use():
        with contextlib.suppress(OSError):
            os.utime(path)


@dataclass(frozen=True)
class _Item:
    last_used_ns: int
    size: int
    path: Path  # what is removed
    stamp: Path  # whose mtime says when it was last used


def _tree_size(path: Path) -> int:
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _bundle_size(folder: Path) -> int:
    try:
        return int((folder / SIZE_FILE).read_text())
    except (OSError, ValueError):
        return _tree_size(folder)


def _items(root: Path, now_ns: int, idle_ns: int) -> list[_Item]:
    items: list[_Item] = []
    folders = [root, root / "artifacts"]
    for folder in folders:
        with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                    if entry.name.startswith("."):  # a crashed unpacking or eviction: garbage once idle
                        if now_ns - info.st_mtime_ns > idle_ns:
                            _remove(Path(entry.path))
                    elif folder == root and _SHA.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                        marker = Path(entry.path) / MARKER
                        items.append(_Item(marker.stat().st_mtime_ns, _bundle_size(Path(entry.path)),
                                           Path(entry.path), marker))
                    elif folder != root and _SHA.fullmatch(entry.name):
                        items.append(_Item(info.st_mtime_ns, info.st_size, Path(entry.path), Path(entry.path)))
                except FileNotFoundError:
                    continue  # evicted by another process while we looked
    return items


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _evict(item: _Item) -> bool:
    away = item.path.with_name(f".evict-{item.path.name[:12]}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(item.path, away)
    except FileNotFoundError:
        return False
    stamp = away / MARKER if item.stamp != item.path else away
    try:
        touched = stamp.stat().st_mtime_ns != item.last_used_ns
    except FileNotFoundError:
        touched = False
    if touched:  # a process took it between our look and the rename: put it back
        try:
            os.rename(away, item.path)
            return False
        except OSError:
            pass  # it was unpacked again meanwhile: that copy holds the same bytes
    _remove(away)
    return not touched


def prune(cache_dir: str | Path, policy: CachePolicy, *, now: float | None = None) -> list[Path]:
    """Evict least recently used, idle entries until the cache fits ``max_bytes``; what was evicted."""
    now_ns = int((time.time() if now is None else now) * 1e9)
    idle_ns = int(policy.idle_s * 1e9)
    items = _items(Path(cache_dir), now_ns, idle_ns)
    total = sum(item.size for item in items)
    keep = in_use()
    evicted = []
    for item in sorted(items, key=lambda i: i.last_used_ns):
        if total <= policy.max_bytes:
            break
        if item.stamp in keep or now_ns - item.last_used_ns < idle_ns:
            continue
        if _evict(item):
            total -= item.size
            evicted.append(item.path)
    return evicted
