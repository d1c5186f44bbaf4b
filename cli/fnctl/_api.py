"""A small client for the control plane's /v1 API, shared by the commands."""

from __future__ import annotations

from typing import Any

import httpx

from fn import Unavailable, load_settings
from fn._platform import Settings, raise_for_response, send_with_retries, shared_client


class Api:
    def __init__(self, settings: Settings | None = None, timeout: float = 60.0) -> None:
        self.settings = settings or load_settings()
        self._client = shared_client(self.settings)  # pooled per process, like the SDK's calls
        self._timeout = timeout

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            kwargs.setdefault("timeout", self._timeout)
            response = send_with_retries(lambda: self._client.request(method, self.settings.api_url + path, **kwargs))
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach the control plane at {self.settings.api_url}: {exc}; "
                              f"is the platform running ('fnctl up')?", status=503) from None
        if method != "HEAD":
            raise_for_response(response)
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).json()

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body).json()

    def delete(self, path: str) -> None:
        self.request("DELETE", path)
