"""The control plane's HTTP edge, an ASGI middleware in front of the API: the key, its role for the
route, its rate limit and the route's body limit are all checked before the API sees a byte of the
body (FastAPI would otherwise parse a JSON body before any dependency runs). The key comes from a header,
except on the web console's GET pages, which read it from the console's cookie and from nothing else."""

from __future__ import annotations

import asyncio
import re
import threading
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from fn import BadRequest, ClientError, Unauthorized
from fnplatform.keys import Grant
from fnplatform.serving.auth import NO_KEY
from fnplatform.serving.edge import RateLimiter, api_key, declared_over, limited
from fnplatform.serving.http import client_error_response, replay_receive
from fnplatform.storage.db import utcnow

JSON_LIMIT_BYTES = 1024 * 1024
FORM_LIMIT_BYTES = 4096  # the console's sign-in form: one key
# Each body limit: what the body is, and the setting that changes the limit.
LIMITS = {"json": ("the JSON body", ""), "bundle": ("the bundle", "FN_MAX_BUNDLE_MB"),
          "artifact": ("the artifact", "FN_MAX_ARTIFACT_MB"), "secret": ("the secret", ""),
          "state": ("the value", ""), "form": ("the form", "")}
GRANT_SCOPE_KEY = "fn.grant"
CONSOLE_COOKIE = "fn_console"  # the web console's credential: the API key itself, in an HttpOnly cookie
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
PageError = Callable[[ClientError, dict[str, Any]], Any]  # an ASGI response for a console page's refusal


@dataclass(frozen=True)
class Rule:
    methods: frozenset[str] | None  # None: any method
    path: re.Pattern[str]
    role: str | None  # None: no key needed
    limit: str = "json"  # which of LIMITS applies
    streamed: bool = False  # the handler reads the body as a stream (checked there); else read here
    # The key comes from the console's cookie, never from a header: the console's GET pages only. With role
    # None the page is open and a valid cookie's grant is passed on (the console's home: sign-in or functions).
    cookie: bool = False


def _rule(methods: str | None, path: str, role: str | None, limit: str = "json", streamed: bool = False,
          cookie: bool = False) -> Rule:
    # A path with a control character is refused before any rule is matched; DOTALL keeps the rules total
    # anyway (the last, admin-only rule matches a path holding a newline too), should that check ever move.
    return Rule(frozenset(methods.split()) if methods else None, re.compile(path, re.DOTALL), role, limit, streamed,
                cookie)


# First match wins; what no rule names needs an admin key (deny by default). Reading functions and
# flows, the API docs and /v1/info are open to every role; the handlers narrow by scope and role.
RULES = (
    _rule("GET", r"/healthz", None),
    # The web console (control/console): read-only pages by cookie; the JSON API below never reads the cookie
    # (a page of another site could otherwise make a signed-in browser call it: CSRF).
    _rule("GET", r"/", None, cookie=True),
    _rule("GET", r"/console/static/[a-z]+\.(js|css|svg)", None),
    _rule("POST", r"/console/sign-(in|out)", None, "form"),  # the handler checks the key and the form's origin
    _rule("GET", r"/console/keys", "admin", cookie=True),
    _rule("GET", r"/console/(functions|flows)(/[^/]+|/[^/]+/runs/[^/]+)?", "invoke", cookie=True),
    _rule("GET", r"/v1/(info|functions|flows)", "invoke"),
    _rule("GET", r"/v1/functions/[^/]+", "invoke"),
    _rule("GET", r"/(openapi\.json|docs|docs/oauth2-redirect|redoc)", "invoke"),
    _rule("GET", r"/metrics", "invoke"),  # and no scope (the handler): the least a Prometheus scraper needs
    _rule("PUT", r"/v1/bundles/[^/]+", "deploy", "bundle", streamed=True),
    _rule("PUT", r"/v1/artifacts/[^/]+", "deploy", "artifact", streamed=True),
    _rule(None, r"/v1/(bundles|artifacts)/[^/]+", "deploy"),
    _rule(None, r"/v1/deployments(/.*)?", "deploy"),
    _rule("PUT", r"/v1/secrets/[^/]+", "deploy", "secret", streamed=True),
    _rule(None, r"/v1/secrets(/.*)?", "deploy"),
    _rule("GET", r"/v1/functions/[^/]+/logs", "deploy"),
    _rule("GET", r"/v1/functions/[^/]+/(versions|traffic|shadow)", "deploy"),
    _rule("POST", r"/v1/functions/[^/]+/rollback", "deploy"),
    _rule("PUT", r"/v1/functions/[^/]+/traffic", "deploy"),
    _rule("GET", r"/v1/traces/[^/]+", "deploy"),  # a trace crosses functions: no function scope narrows it
    _rule("GET", r"/v1/schedules(/[^/]+)?", "deploy"),
    _rule("POST", r"/v1/schedules/[^/]+/(pause|resume)", "deploy"),
    _rule("GET", r"/v1/webhook-secret", "invoke"),  # the key's own; another key's: admins (the handler)
    # fn.Dict / fn.Queue: reading with any unscoped key (the handler), changing with deploy; a value is at most 1 MiB
    _rule("GET", r"/v1/state(/(dicts|queues)/[^/]+(/(value|keys))?)?", "invoke"),
    _rule("PUT DELETE POST", r"/v1/state/(dicts|queues)/[^/]+(/(value|incr|put|get))?", "deploy", "state"),
    _rule("DELETE", r"/v1/functions/[^/]+", "deploy"),
    _rule(None, r".*", "admin"),
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def rule_for(method: str, path: str) -> Rule:
    method = "GET" if method == "HEAD" else method  # the framework answers HEAD with the GET route's handler
    for rule in RULES:
        if (rule.methods is None or method in rule.methods) and rule.path.fullmatch(path):
            return rule
    raise AssertionError("the last rule matches every path")

class KeyUse:
    """When each key was last used here, written to the registry in batches (not a write per request)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: dict[str, datetime] = {}

    def note(self, key_id: str) -> None:
        with self._lock:
            self._used[key_id] = utcnow()

    def take(self) -> dict[str, datetime]:
        with self._lock:
            used, self._used = self._used, {}
        return used


class Edge:
    """ASGI middleware: authenticate, authorize, rate-limit and size-limit every request to the API."""

    def __init__(self, app: ASGIApp, lookup: Callable[[str], Grant | None], limits: dict[str, int],
                 use: KeyUse | None = None, page_error: PageError | None = None) -> None:
        self.app = app
        self._lookup = lookup
        self._limits = {"json": JSON_LIMIT_BYTES, "form": FORM_LIMIT_BYTES, **limits}
        self._page_error = page_error
        self._limiter = RateLimiter()
        self.use = use or KeyUse()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        rule = rule_for(scope["method"], scope["path"])
        limit = self._limits[rule.limit]
        try:
            if _CONTROL.search(scope["path"]):
                # The router's "$" matches before a final newline where the rules' fullmatch does not: a path
                # like "/v1/keys\n" must never reach a route under another rule than its own.
                raise BadRequest("the path holds a control character", status=400)
            if rule.role is not None or rule.cookie:
                key = cookie_parser(headers.get("cookie", "")).get(CONSOLE_COOKIE) if rule.cookie else api_key(headers)
                grant = await asyncio.to_thread(self._lookup, key) if key else None
                if grant is None and rule.role is not None:
                    raise Unauthorized(NO_KEY, status=401)
                if grant is not None:
                    if rule.role is not None:
                        grant.require(rule.role)
                    self._limiter.check(grant)
                    self.use.note(grant.key_id)
                    scope[GRANT_SCOPE_KEY] = grant
            what, setting = LIMITS[rule.limit]
            declared_over(headers, limit, what, setting)
            receive = limited(receive, limit, what, setting)
            if not rule.streamed:
                receive = await _buffered(receive)
        except ClientError as exc:
            if rule.cookie and self._page_error is not None:
                response = self._page_error(exc, scope)  # a person at a browser: a page, not JSON
            else:
                response = client_error_response(exc, headers.get("x-request-id") or uuid.uuid4().hex)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _buffered(receive: Any) -> Any:
    """Read the whole (already size-limited) body now, so an over-limit body is a 413 here and not an
    error inside the framework's body parsing; the app then reads it from memory."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return replay_receive(b"".join(chunks), receive)


def grant_of(scope: MutableMapping[str, Any]) -> Grant:
    grant = scope.get(GRANT_SCOPE_KEY)
    if not isinstance(grant, Grant):
        raise Unauthorized(NO_KEY, status=401)
    return grant
