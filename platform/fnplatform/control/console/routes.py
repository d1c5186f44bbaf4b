"""The console's routes: server-rendered pages (read-only), sign-in and sign-out, and two static files.

The edge (``control.edge``) authenticates the console's GET pages from the ``fn_console`` cookie, and only
them: the JSON API never reads it, so a page on another site cannot make the browser call the API with it.
Sign-in and sign-out check that the form was posted from the console's own origin (the cookie is also
``SameSite=Strict``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from fn import ClientError
from fnplatform.keys import Grant

from ..edge import CONSOLE_COOKIE, GRANT_SCOPE_KEY
from ..plane import ControlPlane
from . import data
from .gantt import timeline
from .history import History

HERE = Path(__file__).parent
STATIC = {"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8",
          "favicon.svg": "image/svg+xml"}
# No inline script or style anywhere (the charts' data is a JSON block, read by console.js); no framing.
# Referrer-Policy is same-origin, not no-referrer: under no-referrer browsers post the console's own forms with
# "Origin: null", which the sign-in's origin check must refuse; same-origin still tells other sites nothing.
HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}
REFUSED = "that key was refused"
Lookup = Callable[[str], Grant | None]

_templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                         trim_blocks=True, lstrip_blocks=True)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _when(value: float | datetime | None) -> str:
    if value is None:
        return "-"
    at = datetime.fromtimestamp(value, UTC) if isinstance(value, float | int) else value
    return at.strftime("%Y-%m-%d %H:%M:%S") + " UTC"


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text):,} characters)"


_templates.filters.update(ms=_ms, when=_when, pct=lambda v: "-" if v is None else f"{v * 100:.1f}%",
                          rate=lambda v: "-" if v is None else f"{v:.2f}/s", short=_short,
                          pretty=lambda v: json.dumps(v, indent=2))


def page(template: str, status: int = 200, grant: Grant | None = None, **context: Any) -> HTMLResponse:
    html = _templates.get_template(template).render(grant=grant, **context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def error_page(exc: ClientError, scope: dict[str, Any]) -> Response:
    """The edge's answer on a console page: the sign-in form without a valid cookie, else the message."""
    if exc.status == 401:
        return page("sign_in.html", 401, message="sign in with an API key")
    grant = scope.get(GRANT_SCOPE_KEY)
    return page("error.html", exc.status or 500, grant=grant if isinstance(grant, Grant) else None, message=exc.message)


def _grant(request: Request) -> Grant | None:
    grant = request.scope.get(GRANT_SCOPE_KEY)
    return grant if isinstance(grant, Grant) else None


def _same_origin(request: Request) -> bool:
    """True when the form was posted by a page of this very origin (Origin, else Referer); neither: refused."""
    source = request.headers.get("origin") or request.headers.get("referer") or ""
    parts = urlsplit(source)
    host = request.headers.get("host", "")
    return bool(host) and parts.scheme == request.url.scheme and parts.netloc.lower() == host.lower()


async def _form(request: Request) -> dict[str, str]:
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=5)
    return {name: values[0] for name, values in fields.items()}


def console_router(control: ControlPlane, history: History, lookup: Lookup) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def render(request: Request, template: str, build: Callable[[Grant], Any]) -> Response:
        grant = _grant(request)
        assert grant is not None, "the edge lets no console page through without a grant"
        try:
            context = await asyncio.to_thread(build, grant)
        except ClientError as exc:
            return page("error.html", exc.status or 500, grant=grant, message=exc.message)
        return page(template, grant=grant, **context)

    @router.get("/")
    async def home(request: Request) -> Response:
        if _grant(request) is None:  # the edge lets "/" through without a cookie: here is where one signs in
            return page("sign_in.html")

        def build(grant: Grant) -> dict[str, Any]:
            rows, problem = data.functions(control, history, grant)
            return {"functions": rows, "problem": problem, "charts": {row["name"]: row["series"] for row in rows}}

        return await render(request, "functions.html", build)

    @router.get("/console/functions/{name}")
    async def function(request: Request, name: str, grep: str = "") -> Response:
        return await render(request, "function.html",
                            lambda grant: data.function_page(control, history, grant, name, grep[:200]))

    @router.get("/console/flows")
    async def flows(request: Request) -> Response:
        return await render(request, "flows.html", lambda grant: {"flows": data.flows(control, grant)})

    @router.get("/console/flows/{flow}/runs/{run_id}")
    async def run(request: Request, flow: str, run_id: str) -> Response:
        def build(grant: Grant) -> dict[str, Any]:
            record = data.run_page(control, grant, flow, run_id)
            now = datetime.now(UTC).replace(tzinfo=None)  # the checkpoint's times are naive UTC
            return {"run": record, "timeline": timeline(record, now)}

        return await render(request, "run.html", build)

    @router.get("/console/keys")
    async def keys(request: Request) -> Response:  # the edge lets admin keys only through
        return await render(request, "keys.html", lambda _grant: {"keys": data.keys(control)})

    @router.get("/console/static/{name}")
    async def static(name: str) -> Response:
        if name not in STATIC:
            return Response("not found", status_code=404, media_type="text/plain")
        body = await asyncio.to_thread((HERE / "static" / name).read_bytes)
        return Response(body, media_type=STATIC[name], headers={"cache-control": "no-cache",
                                                                "x-content-type-options": "nosniff"})

    @router.post("/console/sign-in")
    async def sign_in(request: Request) -> Response:
        if not _same_origin(request):
            return page("error.html", 403, message="sign-in refused: the form was not posted from this console")
        key = (await _form(request)).get("key", "").strip()
        grant = await asyncio.to_thread(lookup, key) if key else None
        if grant is None:
            return page("sign_in.html", 401, message=REFUSED)
        response = RedirectResponse("/", status_code=303, headers=HEADERS)
        # Session cookie (gone with the browser), never readable by scripts, never sent from another site.
        response.set_cookie(CONSOLE_COOKIE, key, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
        return response

    @router.post("/console/sign-out")
    async def sign_out(request: Request) -> Response:
        if not _same_origin(request):
            return page("error.html", 403, message="sign-out refused: the form was not posted from this console")
        response = RedirectResponse("/", status_code=303, headers=HEADERS)
        response.delete_cookie(CONSOLE_COOKIE, path="/", httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
        return response

    return router


def sampler(control: ControlPlane, history: History) -> Callable[[], None]:
    """One sample of the hub's totals into *history* (the housekeeping thread calls it every 10 s)."""
    def sample() -> None:
        history.add(control.hub.metrics(), time.time())

    return sample

