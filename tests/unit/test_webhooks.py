"""Signed webhooks: the SDK's sign/verify, the platform's secret derivation, target checks (SSRF) and delivery to a
real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from fn._errors import FnError
from fn._webhooks import SIGNATURE_HEADER, WebhookError, sign, verify_webhook
from fnplatform.jobs.webhooks import (
    MAX_DELIVERY_ATTEMPTS,
    Delivery,
    TargetRefused,
    TargetUnreachable,
    backoff_s,
    check_target,
    deliver,
    webhook_secret,
)

SECRET = "whsec_0123456789abcdef"
BODY = json.dumps({"job_id": "job_1", "state": "succeeded", "output": {"n": 3}}).encode()
NOW = 1_718_000_000
Resolve = Callable[[str, int], list[tuple[Any, ...]]]


def resolver(*addresses: str) -> Resolve:
    """A stand-in for socket.getaddrinfo that answers *addresses* for any host."""
    def resolve(host: str, port: int) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]
    return resolve


# --- sign and verify --------------------------------------------------------------------------------------------


def test_sign_verify_round_trip() -> None:
    header = sign(BODY, SECRET, NOW)
    assert header.startswith(f"t={NOW},v1=")
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"
    assert verify_webhook(BODY, header, SECRET, now=NOW + 10) == json.loads(BODY)
    assert verify_webhook(BODY.decode(), header, SECRET, now=NOW) == json.loads(BODY)
    assert verify_webhook(BODY, sign(BODY, SECRET), SECRET)["state"] == "succeeded"  # default: the clock


def test_a_changed_body_or_the_wrong_secret_is_refused() -> None:
    header = sign(BODY, SECRET, NOW)
    with pytest.raises(WebhookError, match=r"no signature .* matched: the body was changed"):
        verify_webhook(BODY.replace(b"succeeded", b"failed"), header, SECRET, now=NOW)
    with pytest.raises(WebhookError, match="secret is not the one"):
        verify_webhook(BODY, header, "whsec_other", now=NOW)


@pytest.mark.parametrize(("age", "words"), [(301, "301 s old"), (-400, "400 s in the future"), (86_400, "86400 s old")])
def test_a_timestamp_outside_the_tolerance_is_refused_as_a_possible_replay(age: int, words: str) -> None:
    header = sign(BODY, SECRET, NOW)
    with pytest.raises(WebhookError, match=f"{words}, outside the tolerance of 300 s: it may be a replay"):
        verify_webhook(BODY, header, SECRET, now=NOW + age)
    assert verify_webhook(BODY, header, SECRET, now=NOW + age, tolerance_s=abs(age))["job_id"] == "job_1"


def test_any_of_several_v1_signatures_passes_while_a_secret_rotates() -> None:
    old, new = sign(BODY, "whsec_old", NOW), sign(BODY, SECRET, NOW)
    header = f"t={NOW},v1={old.split('v1=')[1]},v0=ignored,v1={new.split('v1=')[1]}"
    assert verify_webhook(BODY, header, SECRET, now=NOW)["job_id"] == "job_1"
    assert verify_webhook(BODY, header, "whsec_old", now=NOW)["job_id"] == "job_1"
    with pytest.raises(WebhookError, match="no signature"):
        verify_webhook(BODY, header, "whsec_third", now=NOW)


@pytest.mark.parametrize(("header", "words"), [
    (None, "missing Fn-Signature header"),
    ("", "missing Fn-Signature header"),
    ("garbage", "'garbage' is not key=value"),
    ("v1=abc", "no t= entry"),
    (f"t={NOW}", "no v1= entry"),
    ("t=yesterday,v1=abc", "expected one t=<unix seconds>"),
    (f"t=-{NOW},v1=abc", "expected one t=<unix seconds>"),
    (f"t={NOW},t={NOW},v1=abc", "expected one t=<unix seconds>"),
])
def test_malformed_headers_say_what_is_expected(header: str | None, words: str) -> None:
    with pytest.raises(WebhookError, match=words) as caught:
        verify_webhook(BODY, header, SECRET, now=NOW)
    if header:
        assert "t=<unix seconds>,v1=<hex HMAC-SHA256>" in str(caught.value)


def test_messages_never_carry_the_secret_or_the_expected_signature() -> None:
    good = sign(BODY, SECRET, NOW)
    expected = good.split("v1=")[1]
    for body, header, now in [(b"{}", good, NOW), (BODY, good, NOW + 10_000), (BODY, "t=1", NOW), (BODY, None, NOW)]:
        with pytest.raises(WebhookError) as caught:
            verify_webhook(body, header, SECRET, now=now)
        assert SECRET not in str(caught.value)
        assert expected not in str(caught.value)
    assert issubclass(WebhookError, FnError) and issubclass(WebhookError, ValueError)
    assert SIGNATURE_HEADER == "Fn-Signature"


def test_a_signed_body_that_is_not_a_json_object_is_refused() -> None:
    for body in (b"[1, 2]", b"not json"):
        with pytest.raises(WebhookError, match=r"not JSON|not an object"):
            verify_webhook(body, sign(body, SECRET, NOW), SECRET, now=NOW)


# --- secrets and backoff ----------------------------------------------------------------------------------------


def test_webhook_secrets_are_derived_per_key_and_deterministic() -> None:
    master, other_master = bytes(range(32)), bytes(range(1, 33))
    secret = webhook_secret(master, "key_abc")
    assert secret == webhook_secret(master, "key_abc")
    assert secret == "whsec_" + hmac.new(master, b"fn-webhook-v1:key_abc", hashlib.sha256).hexdigest()
    assert len(secret) == len("whsec_") + 64
    assert secret != webhook_secret(master, "key_abd")
    assert secret != webhook_secret(other_master, "key_abc")
    with pytest.raises(ValueError, match="32-byte key"):
        webhook_secret(b"short", "key_abc")


def test_backoff_doubles_from_one_second_and_stops_at_ten_minutes() -> None:
    assert [backoff_s(n) for n in range(1, MAX_DELIVERY_ATTEMPTS + 1)] == [1, 2, 4, 8, 16, 32, 64, 128]
    assert backoff_s(10) == 512 and backoff_s(11) == 600 and backoff_s(10_000) == 600
    with pytest.raises(ValueError, match="attempt must be >= 1"):
        backoff_s(0)


# --- target checks ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "64:ff9b::808:808"])
def test_a_public_address_is_allowed(address: str) -> None:
    check_target("https://hooks.example.com/fn?token=x", allow_private=False, allow_loopback=False, resolve=resolver(address))


@pytest.mark.parametrize(("address", "kind"), [
    ("10.1.2.3", "a private address"),
    ("192.168.1.20", "a private address"),
    ("172.16.0.1", "a private address"),
    ("fd00::1", "a private address"),
    ("127.0.0.1", "a loopback address"),
    ("::1", "a loopback address"),
    ("169.254.169.254", "a cloud metadata service address"),
    ("fe80::1", "a link-local address"),
    ("::ffff:127.0.0.1", "::ffff:7f00:1 (IPv4 127.0.0.1), a loopback address"),
    ("::ffff:169.254.169.254", "a cloud metadata service address"),
    ("64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe (IPv4 169.254.169.254), a cloud metadata service address"),
    ("100.64.0.1", "a carrier-grade NAT (100.64.0.0/10) address"),
    ("0.0.0.0", "an unspecified address"),
    ("::", "an unspecified address"),
    ("224.0.0.1", "a multicast address"),
    ("ff02::1", "a multicast address"),
])
def test_a_non_public_address_is_refused(address: str, kind: str) -> None:
    with pytest.raises(TargetRefused) as caught:
        check_target("https://hooks.example.com/x", allow_private=False, allow_loopback=False, resolve=resolver(address))
    message = str(caught.value)
    assert "'hooks.example.com' resolves to" in message and address.split("::ffff:")[-1] in message
    assert kind in message, message
    settable = any(word in kind for word in ("private", "loopback", "link-local"))
    assert ("FN_WEBHOOK_ALLOW_PRIVATE=1" in message) == settable


def test_one_private_address_among_public_ones_is_refused() -> None:
    with pytest.raises(TargetRefused, match=r"resolves to 10\.0\.0\.7, a private address"):
        check_target("https://hooks.example.com/", allow_private=False, allow_loopback=False,
                     resolve=resolver("93.184.216.34", "10.0.0.7"))


def test_a_host_that_does_not_resolve_is_refused() -> None:
    def fail(host: str, port: int) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(TargetRefused, match=r"callback host 'nowhere\.invalid' does not resolve"):
        check_target("https://nowhere.invalid/", allow_private=False, allow_loopback=False, resolve=fail)
    with pytest.raises(TargetRefused, match="resolves to no address"):
        check_target("https://empty.example/", allow_private=False, allow_loopback=False, resolve=resolver())


@pytest.mark.parametrize(("url", "words"), [
    ("ftp://hooks.example.com/", "scheme 'ftp' is not allowed; use http:// or https://"),
    ("file:///etc/passwd", "scheme 'file' is not allowed"),
    ("hooks.example.com/x", "scheme '' is not allowed"),
    ("https://user:hunter2@hooks.example.com/", r"carries credentials \(user:password@host\)"),
    ("https://user@hooks.example.com/", "carries credentials"),
    ("http:///just-a-path", "has no host"),
    ("https://hooks.example.com:99999/", "does not parse"),
    ("https://hooks.example.com/" + "a" * 2048, "2074 characters long; at most 2048"),
])
def test_urls_that_are_not_plain_http_targets_are_refused(url: str, words: str) -> None:
    with pytest.raises(TargetRefused, match=words) as caught:
        check_target(url, allow_private=True, allow_loopback=True, resolve=resolver("93.184.216.34"))
    assert "hunter2" not in str(caught.value)


def test_allow_loopback_admits_only_loopback_and_allow_private_admits_the_local_network() -> None:
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        check_target("http://hooks.local/", allow_private=False, allow_loopback=True, resolve=resolver(address))
    for address in ("10.0.0.1", "169.254.1.1"):
        with pytest.raises(TargetRefused, match="FN_WEBHOOK_ALLOW_PRIVATE=1"):
            check_target("http://hooks.local/", allow_private=False, allow_loopback=True, resolve=resolver(address))
    for address in ("127.0.0.1", "10.0.0.1", "192.168.0.9", "fe80::1"):
        check_target("http://hooks.local/", allow_private=True, allow_loopback=False, resolve=resolver(address))
    for address in ("0.0.0.0", "224.0.0.1", "100.64.0.1"):
        with pytest.raises(TargetRefused):
            check_target("http://hooks.local/", allow_private=True, allow_loopback=True, resolve=resolver(address))


# --- delivery to a real server ----------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    host: str
    headers: dict[str, str]
    payload: dict[str, Any] | None
    error: str | None


class Receiver(ThreadingHTTPServer):
    """A webhook receiver on loopback that verifies every delivery; /status/<code> answers <code>."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.received: list[Received] = []
        self.release = threading.Event()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client hanging up on /big is expected


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, fmt: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        payload, error = None, None
        try:
            payload = verify_webhook(body, self.headers.get("Fn-Signature"), SECRET)
        except WebhookError as exc:
            error = str(exc)
        self.server.received.append(Received(self.path, self.headers.get("Host", ""), dict(self.headers), payload, error))
        if self.path == "/slow":
            self.server.release.wait(10)
        if self.path == "/big":
            self.send_response(500)
            self.send_header("Content-Length", str(8 * 1024 * 1024))
            self.end_headers()
            for _ in range(128):
                self.wfile.write(b"x" * 65536)
            return
        status = int(self.path.rsplit("/", 1)[1]) if self.path.startswith("/status/") else (204 if payload else 400)
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", f"{self.server.base}/status/204")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


def send(url: str, **options: Any) -> Delivery:
    options.setdefault("allow_loopback", True)
    return asyncio.run(deliver(url, BODY, SECRET, allow_private=False, **options))


def test_a_delivery_is_signed_and_the_receiver_verifies_it(receiver: Receiver) -> None:
    assert send(f"{receiver.base}/hook") == Delivery(True, False, "HTTP 204")
    [got] = receiver.received
    assert got.error is None and got.payload == json.loads(BODY)
    assert got.headers["Content-Type"] == "application/json" and got.headers["User-Agent"] == "fn-webhooks/1"
    assert got.headers["Fn-Signature"].startswith("t=")


def test_plain_http_connects_to_the_checked_address_and_keeps_the_name(receiver: Receiver) -> None:
    port = receiver.server_address[1]
    url = f"http://hooks.example.test:{port}/hook?job=1"
    assert send(url, resolve=resolver("127.0.0.1")).delivered
    assert [(r.path, r.host, r.error) for r in receiver.received] == [("/hook?job=1", f"hooks.example.test:{port}", None)]


@pytest.mark.parametrize(("status", "retry"), [(500, True), (503, True), (408, True), (429, True), (404, False),
                                               (400, False), (410, False)])
def test_a_failed_answer_says_whether_to_retry(receiver: Receiver, status: int, retry: bool) -> None:
    result = send(f"{receiver.base}/status/{status}")
    assert result == Delivery(False, retry, f"HTTP {status}")


def test_a_redirect_is_not_followed_even_by_a_client_that_follows_them(receiver: Receiver) -> None:
    async def run() -> Delivery:
        async with httpx.AsyncClient(follow_redirects=True) as client:
            return await deliver(f"{receiver.base}/status/302", BODY, SECRET, client=client,
                                 allow_private=False, allow_loopback=True)

    assert asyncio.run(run()) == Delivery(False, False, "HTTP 302 (redirects are not followed)")
    assert [r.path for r in receiver.received] == ["/status/302"]


def test_loopback_is_refused_without_allow_loopback_and_nothing_is_sent(receiver: Receiver) -> None:
    result = send(f"{receiver.base}/hook", allow_loopback=False)
    assert (result.delivered, result.retry) == (False, False)
    assert result.outcome.startswith("refused: callback host '127.0.0.1' resolves to 127.0.0.1, a loopback address")
    assert receiver.received == []


def test_a_large_answer_is_read_only_in_part(receiver: Receiver) -> None:
    started = time.monotonic()
    assert send(f"{receiver.base}/big") == Delivery(False, True, "HTTP 500: " + "x" * 200)
    assert time.monotonic() - started < 5


def test_a_slow_receiver_times_out(receiver: Receiver) -> None:
    assert send(f"{receiver.base}/slow", timeout_s=0.3) == Delivery(False, True, "timed out after 0.3 s")


def test_a_closed_port_is_a_retryable_connection_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert send(f"http://127.0.0.1:{port}/hook") == Delivery(False, True, "could not connect")


def test_the_cloud_metadata_service_is_refused_even_where_private_addresses_are_allowed() -> None:
    for address in ("169.254.169.254", "fd00:ec2::254"):
        with pytest.raises(TargetRefused, match="cloud metadata"):
            check_target("http://hooks.example.com/x", allow_private=True, allow_loopback=True, resolve=resolver(address))


def test_a_non_ascii_host_is_refused_when_checked_and_never_crashes_a_delivery() -> None:
    with pytest.raises(TargetRefused, match="IDNA"):
        check_target("http://☃.example.com/hook", allow_private=False, allow_loopback=False, resolve=resolver("93.184.216.34"))
    # a name httpx cannot encode: an outcome, not an exception that would stop every other delivery
    delivery = asyncio.run(deliver("https://xn--.example.com/", b"{}", "s", allow_private=False, allow_loopback=False,
                                   resolve=resolver("127.0.0.1"), timeout_s=2))
    assert not delivery.delivered


def test_a_resolver_that_fails_for_now_is_tried_again_not_refused() -> None:
    import socket

    def flaky(host: str, port: int) -> list[Any]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with pytest.raises(TargetUnreachable):
        check_target("https://hooks.example.com/", allow_private=False, allow_loopback=False, resolve=flaky)
    delivery = asyncio.run(deliver("https://hooks.example.com/", b"{}", "s", allow_private=False, allow_loopback=False,
                                   resolve=flaky))
    assert not delivery.delivered and delivery.retry
