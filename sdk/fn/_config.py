"""Where the platform is: FN_HOME, FN_API_URL, FN_API_KEY and the credentials file ``fnctl up`` writes."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ._errors import ConfigError

CREDENTIALS_FILE = "credentials.json"


def fn_home() -> Path:
    """The folder that holds all local state: ``$FN_HOME`` or ``~/.fn``."""
    return Path(os.environ.get("FN_HOME") or Path.home() / ".fn").expanduser().resolve()


@dataclass(frozen=True)
class Settings:
    api_url: str
    api_key: str
    http_url: str | None = None


def load_settings() -> Settings:
    """FN_API_URL / FN_API_KEY / FN_HTTP_URL from the environment, else the credentials file."""
    stored: dict[str, str] = {}
    path = fn_home() / CREDENTIALS_FILE
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
            if not isinstance(stored, dict):
                raise ValueError(f"expected a JSON object, got {type(stored).__name__}")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}; run 'fnctl up' again or set FN_API_URL and FN_API_KEY") from None
    api_url = os.environ.get("FN_API_URL") or stored.get("api_url")
    api_key = os.environ.get("FN_API_KEY") or stored.get("api_key")
    if not api_url or not api_key:
        raise ConfigError(
            f"no platform configured: set FN_API_URL and FN_API_KEY, or run 'fnctl up' "
            f"(it writes {path})"
        )
    http_url = os.environ.get("FN_HTTP_URL") or (stored.get("http_url") if not os.environ.get("FN_API_URL") else None)
    return Settings(api_url=api_url.rstrip("/"), api_key=api_key, http_url=http_url.rstrip("/") if http_url else None)
