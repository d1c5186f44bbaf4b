"""Platform settings: everything the control plane reads from its environment, in one place.

All local state lives under FN_HOME (default ``~/.fn``, any path): the SQLite registry, the local
bundle store, the bundle cache, the credentials file and logs. Sockets (Ray's, HAProxy's) live in a
short private runtime folder instead, because socket paths have a length limit and FN_HOME's length
is the user's.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fn import ConfigError, fn_home
from fnplatform.bundles.packaging import DEFAULT_MAX_BUNDLE_BYTES
from fnplatform.bundles.safety import BundleLimits
from fnplatform.serving.tracing import SAMPLE_VARIABLE, sample_ratio
from fnplatform.storage.blobs import StoreConfig
from fnplatform.storage.cache import CachePolicy

STATE_FILE = "platform.json"
# Socket paths are capped: 107 bytes by the kernel, 97 by HAProxy. Under the folder it is given, Ray
# nests its session (``ray/session_<date>_<pid>/sockets/plasma_store``, about 65 bytes) and Serve's
# HAProxy the node id (``h/<56 hex>/metrics.sock``, 72 bytes), so that folder must be at most 25 bytes.
RUNTIME_DIR_MAX_LEN = 25


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


@dataclass
class PlatformSettings:
    home: Path = field(default_factory=fn_home)
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    ray_address: str | None = None  # None: start a local Ray
    cpus: float | None = None
    gpus: float = 0
    database_url: str = ""
    store: StoreConfig | None = None
    cache_dir: str = ""
    max_bundle_bytes: int = DEFAULT_MAX_BUNDLE_BYTES
    max_artifact_bytes: int = 8 * 2**30  # model files (FN_MAX_ARTIFACT_MB)
    bundle_limits: BundleLimits = field(default_factory=BundleLimits)  # FN_MAX_UNPACKED_MB and the others
    cache_max_bytes: int = CachePolicy.max_bytes  # FN_CACHE_MAX_MB: each node's bundle cache
    cache_idle_s: float = CachePolicy.idle_s  # FN_CACHE_IDLE_S: only entries idle this long are evicted
    deploy_timeout_s: float = 300.0
    run_retention_s: float = 7 * 86400  # FN_RUN_RETENTION_DAYS: finished flow runs are forgotten after this
    log_retention_s: float = 72 * 3600  # FN_LOG_RETENTION_HOURS: stored log lines are deleted after this
    log_max_bytes: int = 512 * 2**20  # FN_LOG_MAX_MB: the oldest stored log lines are deleted past this (estimated)
    keep_versions: int = 10  # FN_KEEP_VERSIONS: each function's newest versions kept callable (and running ones)
    pin_idle_s: float = 3600.0  # FN_PIN_IDLE_HOURS: a version started for pinned calls stops after this without one
    bundle_gc_after_s: float = 24 * 3600  # FN_BUNDLE_GC_HOURS: unused bundles, artifacts kept this long; 0: kept
    ingress: str = "haproxy"  # FN_INGRESS: "haproxy" (in front of the replicas' own ports) or "proxy" (Serve's)
    warm_workers: int = 2  # idle worker processes kept ready for replicas starting from zero (FN_WARM_WORKERS)
    # FN_ADMIN_KEY: the bootstrap admin key, owned by the operator (a Kubernetes Secret); kept out of repr.
    admin_key: str = field(default="", repr=False)
    # FN_METRICS_KEY: an unscoped invoke key for a Prometheus scraper (GET /metrics), owned like FN_ADMIN_KEY.
    metrics_key: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, **overrides: object) -> PlatformSettings:
        settings = cls(**overrides)  # type: ignore[arg-type]
        env = os.environ
        settings.ray_address = settings.ray_address or env.get("FN_RAY_ADDRESS") or None
        settings.database_url = settings.database_url or env.get("FN_DATABASE_URL") or (
            f"sqlite:///{settings.home / 'registry.db'}")
        if settings.store is None:
            bucket = env.get("FN_S3_BUCKET")
            settings.store = (
                StoreConfig(kind="s3", bucket=bucket, prefix=env.get("FN_S3_PREFIX", ""),
                            endpoint=env.get("FN_S3_ENDPOINT") or env.get("AWS_ENDPOINT_URL") or None,
                            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None)
                if bucket else StoreConfig(kind="local", root=str(settings.home / "store"))
            )
        settings.cache_dir = settings.cache_dir or env.get("FN_CACHE_DIR") or str(settings.home / "cache" / "bundles")
        settings.max_bundle_bytes = int(_float("FN_MAX_BUNDLE_MB", settings.max_bundle_bytes / 2**20) * 2**20)
        settings.max_artifact_bytes = int(_float("FN_MAX_ARTIFACT_MB", settings.max_artifact_bytes / 2**20) * 2**20)
        limits = settings.bundle_limits
        settings.bundle_limits = BundleLimits(
            max_unpacked_bytes=int(_float("FN_MAX_UNPACKED_MB", limits.max_unpacked_bytes / 2**20) * 2**20),
            max_entries=int(_float("FN_MAX_BUNDLE_ENTRIES", limits.max_entries)),
            max_manifest_bytes=int(_float("FN_MAX_MANIFEST_KB", limits.max_manifest_bytes / 2**10) * 2**10),
            max_ratio=_float("FN_MAX_COMPRESSION_RATIO", limits.max_ratio),
        )
        settings.cache_max_bytes = int(_float("FN_CACHE_MAX_MB", settings.cache_max_bytes / 2**20) * 2**20)
        settings.cache_idle_s = _float("FN_CACHE_IDLE_S", settings.cache_idle_s)
        if settings.cache_max_bytes < 0 or settings.cache_idle_s < 0:
            raise ConfigError(f"FN_CACHE_MAX_MB and FN_CACHE_IDLE_S must not be negative (got "
                              f"{settings.cache_max_bytes / 2**20:g} MB and {settings.cache_idle_s:g} s)")
        settings.deploy_timeout_s = _float("FN_DEPLOY_TIMEOUT_S", settings.deploy_timeout_s)
        settings.run_retention_s = _float("FN_RUN_RETENTION_DAYS", settings.run_retention_s / 86400) * 86400
        if settings.run_retention_s <= 0:
            raise ConfigError(f"FN_RUN_RETENTION_DAYS must be a positive number of days, not {env['FN_RUN_RETENTION_DAYS']}")
        settings.log_retention_s = _float("FN_LOG_RETENTION_HOURS", settings.log_retention_s / 3600) * 3600
        settings.log_max_bytes = int(_float("FN_LOG_MAX_MB", settings.log_max_bytes / 2**20) * 2**20)
        if settings.log_retention_s <= 0 or settings.log_max_bytes <= 0:
            raise ConfigError(f"FN_LOG_RETENTION_HOURS and FN_LOG_MAX_MB must be positive (got "
                              f"{settings.log_retention_s / 3600:g} hours and {settings.log_max_bytes / 2**20:g} MB)")
        settings.keep_versions = int(_float("FN_KEEP_VERSIONS", settings.keep_versions))
        if settings.keep_versions < 1:
            raise ConfigError(f"FN_KEEP_VERSIONS must be at least 1 (the versions kept for rollback), "
                              f"not {env['FN_KEEP_VERSIONS']}")
        settings.pin_idle_s = _float("FN_PIN_IDLE_HOURS", settings.pin_idle_s / 3600) * 3600
        if settings.pin_idle_s <= 0:
            raise ConfigError(f"FN_PIN_IDLE_HOURS must be a positive number of hours, not {env['FN_PIN_IDLE_HOURS']}")
        settings.bundle_gc_after_s = _float("FN_BUNDLE_GC_HOURS", settings.bundle_gc_after_s / 3600) * 3600
        if settings.bundle_gc_after_s < 0:
            raise ConfigError(f"FN_BUNDLE_GC_HOURS must be a number of hours (0: never delete unused bundles), "
                              f"not {env['FN_BUNDLE_GC_HOURS']}")
        try:  # read again by every replica and run host (serving.tracing): refused here, at start, once
            sample_ratio(env.get(SAMPLE_VARIABLE))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        settings.ingress = env.get("FN_INGRESS", settings.ingress)
        if settings.ingress not in {"proxy", "haproxy"}:
            raise ConfigError(f"FN_INGRESS={settings.ingress!r} is invalid: use 'haproxy' (the default) or 'proxy'")
        settings.warm_workers = max(0, int(_float("FN_WARM_WORKERS", settings.warm_workers)))
        settings.admin_key = settings.admin_key or env.get("FN_ADMIN_KEY", "")
        if settings.admin_key:
            _check_key("FN_ADMIN_KEY", settings.admin_key, "or unset to let the platform create an admin key in "
                                                           "FN_HOME/credentials.json")
        settings.metrics_key = settings.metrics_key or env.get("FN_METRICS_KEY", "")
        if settings.metrics_key:
            _check_key("FN_METRICS_KEY", settings.metrics_key, "or unset (then give the scraper a key made with "
                                                               "'fnctl keys create prometheus --role invoke')")
            if settings.metrics_key == settings.admin_key:
                # The scraper's copy would then be an admin key: it could mint keys and deploy code.
                raise ConfigError("FN_METRICS_KEY is the same key as FN_ADMIN_KEY; give the scraper a key of its own "
                                  "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        return settings

    @property
    def cache_policy(self) -> CachePolicy:
        return CachePolicy(max_bytes=self.cache_max_bytes, idle_s=self.cache_idle_s, limits=self.bundle_limits)

    @property
    def api_url(self) -> str:
        return f"http://{_connect_host(self.api_host)}:{self.api_port}"

    @property
    def http_url(self) -> str:
        return f"http://{_connect_host(self.http_host)}:{self.http_port}"

    @property
    def runtime_dir(self) -> Path:
        return runtime_dir(self.home)

    @property
    def ray_temp_dir(self) -> Path:
        return self.runtime_dir / "ray"

    @property
    def haproxy_dir(self) -> Path:
        return self.runtime_dir / "h"


ADMIN_KEY_MIN_LEN = 32
ADMIN_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def _check_key(env_name: str, key: str, otherwise: str) -> None:
    # Keys are stored as a fast hash (fnplatform.keys), which is only safe for long random keys; the value
    # itself is never quoted in the error. FN_ADMIN_KEY and FN_METRICS_KEY follow the same rule.
    bad = {c for c in key if c not in ADMIN_KEY_CHARS}
    if len(key) < ADMIN_KEY_MIN_LEN:
        problem = f"has {len(key)} characters"
    elif any(c.isspace() for c in bad):
        problem = "contains whitespace (a trailing newline from echo?)"
    elif bad:
        problem = "contains characters other than letters, digits and - _ . ~"
    else:
        return
    raise ConfigError(f"{env_name} {problem}; it must be at least {ADMIN_KEY_MIN_LEN} random letters, digits or "
                      f"- _ . ~ (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'), {otherwise}")


def runtime_dir(home: Path) -> Path:
    """The short folder for this platform's sockets: ``FN_RUNTIME_DIR``, or one per user and FN_HOME in the temp dir."""
    configured = os.environ.get("FN_RUNTIME_DIR")
    if configured:
        if len(configured) > RUNTIME_DIR_MAX_LEN or not os.path.isabs(configured):
            raise ConfigError(f"FN_RUNTIME_DIR={configured!r} must be an absolute path of at most {RUNTIME_DIR_MAX_LEN} "
                              f"characters (socket paths are nested under it); unset it to use a folder in /tmp")
        return Path(configured)
    digest = hashlib.sha256(f"{os.getuid()}:{Path(home).expanduser().absolute()}".encode()).hexdigest()[:10]
    name = f"fn-{digest}"
    base = tempfile.gettempdir()
    if len(base) + 1 + len(name) > RUNTIME_DIR_MAX_LEN:
        base = "/tmp"
    return Path(base) / name


def ensure_private_dir(path: Path) -> Path:
    """Create *path* as a folder only this user can enter; refuse one that someone else made or that is a link."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise ConfigError(f"{path} (the platform's socket folder) exists but is not a folder owned by this user; "
                          f"remove it, or set FN_RUNTIME_DIR to a short private folder")
    if info.st_mode & 0o077:
        path.chmod(0o700)
    return path


def _connect_host(host: str) -> str:
    return "127.0.0.1" if host in {"0.0.0.0", ""} else host
