"""Every log buffer of the data plane is bounded: the replica's stdout tee, its batch waiting to be shipped,
and the hub's per-function buffer. Real LogShipper, tee and Hub, in-process."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from fnplatform.serving import logs
from fnplatform.serving.hub import MAX_LINE_CHARS, Hub
from fnplatform.serving.logs import LogShipper, _TeeStream, request_id_var


class Shipped:
    """A hub's ``push_logs.remote`` that keeps what it was sent."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    @property
    def push_logs(self) -> Any:
        shipped = self

        class Method:
            @staticmethod
            def remote(_function: str, lines: list[str]) -> None:
                shipped.lines += lines

        return Method


def test_text_without_a_newline_is_shipped_once_it_reaches_the_cap_not_held_forever() -> None:
    hub = Shipped()
    shipper = LogShipper("f", "r1", hub)
    tee = _TeeStream(io.StringIO(), shipper, "STDOUT")
    chunk = "x" * 4096
    for _ in range(100):  # 400 KiB printed with end="" and never a newline
        tee.write(chunk)
    shipper.flush()
    assert len(hub.lines) >= 5
    assert all(len(line) < logs.MAX_LINE_CHARS + 200 for line in hub.lines)
    assert sum(len(t) for t in tee._partial.values()) < logs.MAX_LINE_CHARS


def test_unfinished_lines_of_many_requests_are_held_for_a_bounded_number_of_them() -> None:
    hub = Shipped()
    shipper = LogShipper("f", "r1", hub)
    tee = _TeeStream(io.StringIO(), shipper, "STDOUT")
    for n in range(logs.MAX_PARTIAL_REQUESTS * 3):
        token = request_id_var.set(f"req-{n}")
        tee.write(f"progress {n} ...")  # each request leaves a line without its newline
        request_id_var.reset(token)
    assert len(tee._partial) == logs.MAX_PARTIAL_REQUESTS
    shipper.flush()
    assert any("request=req-0 progress 0 ..." in line for line in hub.lines)  # the oldest shipped, not lost


def test_a_batch_that_cannot_be_shipped_drops_its_oldest_lines_and_says_how_many() -> None:
    hub = Shipped()
    shipper = LogShipper("f", "r1", hub)
    extra = 25
    for n in range(logs.MAX_PENDING_LINES + extra):
        shipper.line("INFO", f"line {n}")
    shipper.flush()
    assert len(hub.lines) == logs.MAX_PENDING_LINES + 1
    assert f"{extra} log lines dropped" in hub.lines[0]
    assert hub.lines[-1].endswith(f"line {logs.MAX_PENDING_LINES + extra - 1}")


def test_the_hub_cuts_a_huge_line() -> None:
    hub = Hub()
    asyncio.run(hub.push_logs("f", ["y" * (MAX_LINE_CHARS * 4)]))
    _, lines = asyncio.run(hub.read_logs("f"))
    assert len(lines[0]) < MAX_LINE_CHARS + 10 and lines[0].endswith("[cut]")
