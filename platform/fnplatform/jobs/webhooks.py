"""Webhook delivery: the signed POST of a job's final state to its ``callback_url``, and the target checks that
keep a caller from aiming that POST at the platform's own network (SSRF: cloud metadata, databases, admin ports).
Receivers check the ``Fn-Signature`` header with ``fn.verify_webhook`` and their key's ``webhook_secret``."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpx

from fn._platform import sign_webhook

MAX_DELIVERY_ATTEMPTS = 8
MAX_URL_LENGTH = 2048
MAX_ANSWER_BYTES = 64 * 1024  # read of a receiver's answer, so a huge or endless one cannot fill memory
ALLOW_PRIVATE_SETTING = "FN_WEBHOOK_ALLOW_PRIVATE=1"
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_METADATA = frozenset({"169.254.169.254", "fd00:ec2::254", "169.254.170.2"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix: the last 32 bits are an IPv4 address
_PRIVATE_KINDS = frozenset({"private", "loopback", "link-local"})
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Iterable[tuple[Any, ...]]]


def webhook_secret(master_key: bytes, key_id: str) -> str:
    """The webhook secret of API key *key_id*. Derived rather than stored, so every control-plane process gets the
    same one without a table, and one key's secret reveals neither the master key nor another key's secret."""
    if len(master_key) < 32:
        raise ValueError(f"the master key is {len(master_key)} bytes; webhook secrets need a 32-byte key")
    return "whsec_" + hmac.new(master_key, b"fn-webhook-v1:" + key_id.encode(), hashlib.sha256).hexdigest()


_TRY_AGAIN = frozenset({getattr(socket, "EAI_AGAIN", -3), getattr(socket, "EAI_SYSTEM", -11)})


class TargetRefused(ValueError):
    """A ``callback_url`` the platform will not POST to (bad URL, unresolvable or non-public host); never retried."""


class TargetUnreachable(TargetRefused):
    """The callback host's name could not be resolved for now (the resolver timed out or failed): try again later."""


def _embedded(ip: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped or NAT64 IPv6 one: where a connection to it ends up."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    return ip.ipv4_mapped or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)


def _kind(address: Address) -> str | None:
    """What kind of non-public address this is, or None for a public one."""
    ip = _embedded(address) or address
    # The metadata service hands out cloud credentials: refused whatever FN_WEBHOOK_ALLOW_PRIVATE says.
    checks = [(str(ip) in _METADATA, "cloud metadata service"), (ip.is_unspecified, "unspecified"),
              (ip.is_loopback, "loopback"), (ip.is_link_local, "link-local"),
              (ip.is_multicast, "multicast"), (ip in _CGNAT, "carrier-grade NAT (100.64.0.0/10)"),
              (ip.is_private, "private"), (ip.is_reserved, "reserved"), (not ip.is_global, "non-public")]
    return next((kind for hit, kind in checks if hit), None)


def _refusal(host: str, ip: Address, kind: str) -> str:
    inner = _embedded(ip)
    shown = f"{ip} (IPv4 {inner})" if inner else str(ip)
    what = ("an " if kind[0] in "aeiou" else "a ") + kind + " address"
    hint = f"; set {ALLOW_PRIVATE_SETTING} to allow private, loopback and link-local targets" if kind in _PRIVATE_KINDS else ""
    return f"callback host {host!r} resolves to {shown}, {what}: webhooks may not reach the platform's own network{hint}"


def _checked(url: str, *, allow_private: bool, allow_loopback: bool, resolve: Resolver) -> tuple[SplitResult, list[Address]]:
    """The parsed *url* and every address its host resolves to, all allowed; else ``TargetRefused``."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"the callback URL is {len(url)} characters long; at most {MAX_URL_LENGTH} are allowed")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise TargetRefused(f"the callback URL does not parse ({exc}); expected http(s)://host/path") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused(f"callback URL scheme {parts.scheme!r} is not allowed; use http:// or https://")
    if "@" in parts.netloc:
        raise TargetRefused("the callback URL carries credentials (user:password@host); verify Fn-Signature instead")
    host = parts.hostname
    if not host:
        raise TargetRefused("the callback URL has no host; expected http(s)://host/path")
    if not parts.netloc.isascii():  # what is checked must be what is sent: the resolver and httpx encode names apart
        raise TargetRefused(f"callback host {host!r} is not ASCII; give its IDNA form (xn--...)")
    try:
        infos = list(resolve(host, port))
    except socket.gaierror as exc:
        if exc.errno in _TRY_AGAIN:
            raise TargetUnreachable(f"callback host {host!r} could not be resolved just now ({exc}); try again") from None
        raise TargetRefused(f"callback host {host!r} does not resolve ({exc})") from None
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(f"callback host {host!r} does not resolve ({exc})") from None
    addresses: list[Address] = []
    for info in infos:
        try:
            ip = ipaddress.ip_address(info[4][0])
        except ValueError:
            raise TargetRefused(f"callback host {host!r} resolves to {info[4][0]!r}, not an IP address") from None
        kind = _kind(ip)
        if kind is not None and not ((allow_loopback and kind == "loopback") or (allow_private and kind in _PRIVATE_KINDS)):
            raise TargetRefused(_refusal(host, ip, kind))
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise TargetRefused(f"callback host {host!r} resolves to no address")
    return parts, addresses


def check_target(url: str, *, allow_private: bool, allow_loopback: bool, resolve: Resolver = socket.getaddrinfo) -> None:
    """Raise ``TargetRefused`` unless *url* is http(s), without credentials, at most 2048 characters, and every address
    its host resolves to (a connection may use any) is public. *allow_loopback* admits loopback (local development);
    *allow_private* (``FN_WEBHOOK_ALLOW_PRIVATE=1``) admits private, loopback and link-local ones."""
    _checked(url, allow_private=allow_private, allow_loopback=allow_loopback, resolve=resolve)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt: *delivered* on a 2xx; *retry* if another could go better; *outcome* for people (``HTTP 500``)."""

    delivered: bool
    retry: bool
    outcome: str


def backoff_s(attempt: int) -> float:
    """Seconds to wait after failed attempt number *attempt* (1-based): 1, 2, 4, 8 ... at most 600."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    return float(min(2 ** min(attempt - 1, 10), 600))


async def _read_some(answer: httpx.Response) -> bytes:
    data = bytearray()
    async for chunk in answer.aiter_raw():  # raw: a small compressed answer could decode to gigabytes
        data += chunk
        if len(data) >= MAX_ANSWER_BYTES:
            break
    return bytes(data[:MAX_ANSWER_BYTES])


def _judge(status: int, answer: bytes) -> Delivery:
    if 200 <= status < 300:
        return Delivery(True, False, f"HTTP {status}")
    outcome = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
    snippet = " ".join(answer[:400].decode("utf-8", "replace").split())[:200]
    return Delivery(False, status >= 500 or status in (408, 429), f"{outcome}: {snippet}" if snippet else outcome)


async def _post(client: httpx.AsyncClient, urls: list[str], body: bytes, headers: dict[str, str], timeout_s: float,
                server_name: str) -> Delivery:
    """POST to each target in turn until one connects (the addresses of one host), then judge its answer. Why a
    connection failed is not recorded: the job's state would tell its owner which inside ports are open."""
    failure = Delivery(False, True, "no address to connect to")
    for target in urls:
        try:
            async with client.stream("POST", target, content=body, headers=headers, timeout=timeout_s,
                                     follow_redirects=False, extensions={"sni_hostname": server_name}) as answer:
                return _judge(answer.status_code, await _read_some(answer))
        except httpx.ConnectError:
            failure = Delivery(False, True, "could not connect")
        except httpx.TimeoutException:
            return Delivery(False, True, f"timed out after {timeout_s:g} s")
        except httpx.HTTPError as exc:  # the connection dropped, the answer was not HTTP, or TLS failed
            return Delivery(False, True, f"the connection failed ({type(exc).__name__})")
    return failure


async def deliver(
    url: str, body: bytes, secret: str, *, timeout_s: float = 10, client: httpx.AsyncClient | None = None,
    allow_private: bool, allow_loopback: bool, resolve: Resolver = socket.getaddrinfo,
) -> Delivery:
    """POST *body* (JSON) to *url*, signed with *secret*; never raises for the receiver's failures. The target is
    checked again (its DNS may have changed since the job was accepted); plain http then connects to the very addresses
    checked, keeping the name in Host, and https by name (a name rebound inside fails its certificate). Redirects are
    not followed: a public URL could redirect inside. *timeout_s* (seconds) bounds the whole attempt."""
    headers = {"Content-Type": "application/json", "Fn-Signature": sign_webhook(body, secret),
               "User-Agent": "fn-webhooks/1", "Accept-Encoding": "identity"}
    try:
        async with asyncio.timeout(timeout_s):
            parts, addresses = await asyncio.to_thread(
                _checked, url, allow_private=allow_private, allow_loopback=allow_loopback, resolve=resolve)
            # Connect to the very addresses checked (a second lookup could answer an internal one), keeping the name
            # in Host and, for https, as the TLS server name the certificate is checked against.
            headers["Host"], port = parts.netloc, parts.port or (443 if parts.scheme == "https" else 80)
            targets = [parts._replace(netloc=f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}").geturl()
                       for ip in addresses]
            server_name = parts.hostname or ""
            if client is not None:
                return await _post(client, targets, body, headers, timeout_s, server_name)
            async with httpx.AsyncClient(trust_env=False) as own:  # no proxy from the environment: it would resolve anew
                return await _post(own, targets, body, headers, timeout_s, server_name)
    except TargetUnreachable as exc:
        return Delivery(False, True, f"not delivered: {exc}")
    except TargetRefused as exc:
        return Delivery(False, False, f"refused: {exc}")
    except TimeoutError:
        return Delivery(False, True, f"timed out after {timeout_s:g} s")
    except httpx.InvalidURL as exc:
        return Delivery(False, False, f"refused: invalid URL ({exc})")
    except Exception as exc:  # noqa: BLE001 - a URL httpx cannot send: given up, never a crash of every delivery
        return Delivery(False, False, f"refused: {type(exc).__name__}: {exc}")
