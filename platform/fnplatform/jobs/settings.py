"""The jobs' settings, read from the environment of the process that needs them (gateway, runner, control plane)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from fn import ConfigError
from fnplatform.storage.db import database_url_from_env
from fnplatform.storage.jobs import MAX_LOST


def _number(name: str, default: float, low: float, high: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise ConfigError(f"{name} is {raw!r}; it must be a number from {low:g} to {high:g} (the default is {default:g})")
    return value


def _flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} is {raw!r}; it must be 1 or 0 (true or false)")


@dataclass(frozen=True)
class JobSettings:
    database_url: str
    retention_s: float  # FN_JOB_RETENTION_S: how long an ended job (its result, its error) is kept
    max_running: int  # FN_JOBS_RUNNING: the most jobs the runner runs at once, all functions together
    default_cap: int  # a function's job_concurrency when its spec cannot be read
    max_lost: int  # the platform failing a job's run (replica gone) is retried this often before the job fails
    max_body_bytes: int  # FN_MAX_JOB_BYTES: a job's arguments
    max_unfinished_per_key: int  # FN_MAX_UNFINISHED_JOBS_PER_KEY: queued or running jobs one API key may have
    allow_private: bool  # FN_WEBHOOK_ALLOW_PRIVATE: callbacks to private, loopback and link-local addresses
    allow_loopback: bool  # FN_WEBHOOK_ALLOW_LOOPBACK: callbacks to this machine (the local platform sets it)

    @classmethod
    def from_env(cls, database_url: str | None = None) -> JobSettings:
        return cls(database_url=database_url or database_url_from_env(),
                   retention_s=_number("FN_JOB_RETENTION_S", 86400, 60, 90 * 86400),
                   max_running=int(_number("FN_JOBS_RUNNING", 1000, 1, 100_000)),
                   default_cap=32, max_lost=MAX_LOST,
                   max_body_bytes=int(_number("FN_MAX_JOB_BYTES", 16 * 1024 * 1024, 1024, 1024**3)),
                   max_unfinished_per_key=int(_number("FN_MAX_UNFINISHED_JOBS_PER_KEY", 100_000, 1, 10_000_000)),
                   allow_private=_flag("FN_WEBHOOK_ALLOW_PRIVATE"),
                   allow_loopback=_flag("FN_WEBHOOK_ALLOW_LOOPBACK") or _flag("FN_WEBHOOK_ALLOW_PRIVATE"))
