"""``fn.Dict`` and ``fn.Queue``: named state shared by every replica of every function, durable.

Inside a deployed function the platform installs a backend that talks to its state server directly (one Ray
actor call per operation); anywhere else the SDK uses the control plane's HTTP API with the configured key
(reads need an unscoped key, writes the ``deploy`` role). Values are JSON: what ``json.dumps`` takes comes back
as ``json.loads`` gives it (a tuple comes back a list).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Protocol

from ._errors import BadRequest, PayloadTooLarge, TooManyRequests

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 1024 * 1024  # one value, JSON-encoded
MAX_DICT_KEYS = 100_000
MAX_QUEUE_ITEMS = 100_000
MAX_WAIT_S = 20.0  # one wait at the server; a longer get(timeout=...) asks again
_MISSING = object()
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class StateBackend(Protocol):
    def op(self, method: str, *args: Any) -> Any:
        """Run one state server method (``dict_get``, ``queue_put``, ...) and return its result (blocking)."""

    async def aop(self, method: str, *args: Any) -> Any:
        """The same, awaited."""


_backend: StateBackend | None = None


def install(backend: StateBackend | None) -> None:
    global _backend
    _backend = backend


def _current() -> StateBackend:
    if _backend is not None:
        return _backend
    from ._state_http import HttpState

    return HttpState()


def check_name(name: str) -> str:
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise BadRequest(f"state name {str(name)[:80]!r} is invalid: lowercase letters, digits, '_' and '-', starting "
                         f"with a letter, at most 63 characters, e.g. fn.Dict('bandit-weights')", status=400)
    return name


def check_key(key: str, what: str = "a key", empty: bool = False) -> str:
    """A dict key (or a key prefix, *empty* allowed): text of at most MAX_KEY_BYTES, without control characters,
    which some databases refuse (PostgreSQL: NUL) and which would fail every write committed with it."""
    if not isinstance(key, str):
        raise BadRequest(f"{what} must be a str, not {type(key).__name__}; e.g. d[str(user_id)]", status=400)
    try:
        size = len(key.encode())
    except UnicodeEncodeError:
        raise BadRequest(f"{what} must be valid Unicode text: it holds a lone surrogate", status=400) from None
    if not (0 if empty else 1) <= size <= MAX_KEY_BYTES:
        raise BadRequest(f"{what} must be {0 if empty else 1} to {MAX_KEY_BYTES} bytes (UTF-8), not {size}",
                         status=400)
    control = _CONTROL.search(key)
    if control:
        raise BadRequest(f"{what} may not hold control characters: {control.group()!r} at position "
                         f"{control.start()}", status=400)
    return key


def check_value(text: str) -> str:
    if len(text) > MAX_VALUE_BYTES or len(text.encode()) > MAX_VALUE_BYTES:
        raise PayloadTooLarge(f"the value is {len(text.encode()):,} bytes as JSON, over the limit of "
                              f"{MAX_VALUE_BYTES:,} per value; store it with fn.artifact or in object storage and "
                              f"keep its address here", status=413, detail={"limit_bytes": MAX_VALUE_BYTES})
    return text


def encode(value: Any) -> str:
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"the value must be JSON-serialisable (dict, list, str, int, float, bool, None): {exc}",
                         status=400) from None
    return check_value(text)


def decode(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class Dict:
    """A named dict shared across replicas and functions, kept in the platform's database.

    Example::

        counts = fn.Dict("clicks")
        counts.incr("home")            # atomic, returns the new count
        counts["config"] = {"k": 3}
        counts.get("config", {})
    """

    def __init__(self, name: str) -> None:
        self.name = check_name(name)

    def __repr__(self) -> str:
        return f"fn.Dict({self.name!r})"

    def __getitem__(self, key: str) -> Any:
        text = _current().op("dict_get", self.name, check_key(key))
        if text is None:
            raise KeyError(key)
        return decode(text)

    def get(self, key: str, default: Any = None) -> Any:
        text = _current().op("dict_get", self.name, check_key(key))
        return default if text is None else decode(text)

    def __setitem__(self, key: str, value: Any) -> None:
        _current().op("dict_set", self.name, check_key(key), encode(value))

    def put(self, key: str, value: Any) -> None:
        self[key] = value

    def __delitem__(self, key: str) -> None:
        if not _current().op("dict_delete", self.name, check_key(key)):
            raise KeyError(key)

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        """Remove *key* and return its value (not atomic with the read: two pops may both see it)."""
        value = self.get(key, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise KeyError(key)
            return default
        _current().op("dict_delete", self.name, key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and _current().op("dict_get", self.name, check_key(key)) is not None

    def incr(self, key: str, by: int = 1) -> int:
        """Add *by* to the whole number at *key* (0 if absent) atomically; the new value."""
        return int(_current().op("dict_incr", self.name, check_key(key), _whole(by)))

    def keys(self, limit: int = 1000, prefix: str = "") -> list[str]:
        """Up to *limit* keys (1 to 100000), sorted, those starting with *prefix* only if given."""
        keys, _ = _current().op("dict_keys", self.name, _limit(limit), check_key(prefix, "prefix", empty=True))
        return list(keys)

    def __len__(self) -> int:
        _, count = _current().op("dict_keys", self.name, 0, "")
        return int(count)

    async def aget(self, key: str, default: Any = None) -> Any:
        text = await _current().aop("dict_get", self.name, check_key(key))
        return default if text is None else decode(text)

    async def aput(self, key: str, value: Any) -> None:
        await _current().aop("dict_set", self.name, check_key(key), encode(value))

    async def adelete(self, key: str) -> bool:
        return bool(await _current().aop("dict_delete", self.name, check_key(key)))

    async def aincr(self, key: str, by: int = 1) -> int:
        return int(await _current().aop("dict_incr", self.name, check_key(key), _whole(by)))


class Queue:
    """A named FIFO queue shared across replicas and functions, kept in the platform's database.

    ``put`` waits up to *timeout* seconds for room when the queue holds *maxsize* items (then 429); ``get``
    waits up to *timeout* seconds for an item (None: as long as it takes) and returns None if none came.
    None is not a value a queue holds, so a get that found nothing is never confused with an item.
    """

    def __init__(self, name: str, maxsize: int = 10_000) -> None:
        self.name = check_name(name)
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or not 1 <= maxsize <= MAX_QUEUE_ITEMS:
            raise BadRequest(f"maxsize={maxsize!r} must be a whole number from 1 to {MAX_QUEUE_ITEMS:,}", status=400)
        self.maxsize = maxsize

    def __repr__(self) -> str:
        return f"fn.Queue({self.name!r}, maxsize={self.maxsize})"

    def put(self, value: Any, timeout: float = 0.0) -> None:
        text, deadline = _item(value), time.monotonic() + _seconds(timeout)
        while True:  # one wait at the server is at most MAX_WAIT_S: a longer timeout asks again
            try:
                _current().op("queue_put", self.name, text, self.maxsize, _left(deadline))
                return
            except TooManyRequests:
                if time.monotonic() >= deadline:
                    raise

    def get(self, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + _seconds(timeout)
        while True:
            left = MAX_WAIT_S if deadline is None else max(0.0, deadline - time.monotonic())
            text = _current().op("queue_get", self.name, min(left, MAX_WAIT_S))
            if text is not None or (deadline is not None and time.monotonic() >= deadline):
                return decode(text)

    def get_many(self, n: int, timeout: float = 0.0) -> list[Any]:
        """Up to *n* items: the first waited for up to *timeout*, the rest only if already there."""
        first = self.get(timeout)
        if first is None:
            return []
        items = [first]
        while len(items) < n:
            text = _current().op("queue_get", self.name, 0.0)
            if text is None:
                break
            items.append(decode(text))
        return items

    def __len__(self) -> int:
        return int(_current().op("queue_len", self.name))

    async def aput(self, value: Any, timeout: float = 0.0) -> None:
        text, deadline = _item(value), time.monotonic() + _seconds(timeout)
        while True:
            try:
                await _current().aop("queue_put", self.name, text, self.maxsize, _left(deadline))
                return
            except TooManyRequests:
                if time.monotonic() >= deadline:
                    raise

    async def aget(self, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + _seconds(timeout)
        while True:
            left = MAX_WAIT_S if deadline is None else max(0.0, deadline - time.monotonic())
            text = await _current().aop("queue_get", self.name, min(left, MAX_WAIT_S))
            if text is not None or (deadline is not None and time.monotonic() >= deadline):
                return decode(text)


def _left(deadline: float) -> float:
    return min(max(0.0, deadline - time.monotonic()), MAX_WAIT_S)


def _item(value: Any) -> str:
    if value is None:
        raise BadRequest("a queue does not hold None (get returns None when no item came); put a value", status=400)
    return encode(value)


def _whole(by: int) -> int:
    if isinstance(by, bool) or not isinstance(by, int) or abs(by) > 2**53:
        raise BadRequest(f"by={by!r} must be a whole number up to 2**53 in size", status=400)
    return by


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_DICT_KEYS:
        raise BadRequest(f"limit={limit!r} must be a whole number from 1 to {MAX_DICT_KEYS:,}", status=400)
    return limit


def _seconds(timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 <= timeout <= 86400:
        raise BadRequest(f"timeout={timeout!r} must be seconds from 0 to 86400", status=400)
    return float(timeout)
