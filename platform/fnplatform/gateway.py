"""The catch-all Serve application at ``/``: a JSON 404 for paths no function serves."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response


class Gateway:
    async def __call__(self, request: Request) -> Response:
        path = request.url.path
        if path in {"/-/healthz", "/healthz"}:
            return Response('{"status": "ok"}', media_type="application/json")
        name = path.strip("/").split("/", 1)[0]
        message = (f"no function is deployed at {path!r}" if name else "no function named; POST to /<function>")
        body = {"error": {"type": "NotFound", "message": f"{message}; list functions with 'fnctl ls'",
                          "request_id": request.headers.get("x-request-id", "")}}
        return Response(json.dumps(body), status_code=404, media_type="application/json")
