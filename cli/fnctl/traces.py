"""``fnctl trace ID``: a request's (or a flow run's) spans as a tree with durations."""

from __future__ import annotations

import time
from typing import Any

import click

from fn import NotFound

from ._api import Api
from ._output import json_option, print_json

WAIT_POLL_S = 0.5


def _checked_id(_ctx: click.Context, param: click.Parameter, value: str) -> str:
    from fnplatform.logtext import InvalidQuery, check_request_id  # what the API checks, named as this option

    try:
        return check_request_id(value)
    except InvalidQuery as exc:
        raise click.BadParameter(str(exc).replace("request id", "trace or request id"), _ctx, param) from None


@click.command()
@click.argument("trace_id", metavar="ID", callback=_checked_id)
@click.option("--wait", default=5.0, show_default=True, type=click.FloatRange(0, 300),
              help="Seconds to wait for the spans to arrive (they arrive a second or two after a request ends).")
@json_option
def trace(trace_id: str, wait: float, as_json: bool) -> None:
    """Print the spans of a trace as a tree: ID is a request id (the x-request-id of a call's answer), a
    trace id (the traceparent's), or a flow run's id (its whole run, step by step).

    Each line: the span, where it ran, when it started (ms after the trace's first span), how long it took.

    Example: fnctl trace 4bf92f3577b34da6a3ce929d0e0e4736
    """
    api = Api()
    deadline = time.monotonic() + wait
    while True:
        try:
            found = api.get(f"/v1/traces/{trace_id}")
            break
        except NotFound:
            if time.monotonic() >= deadline:
                raise
            time.sleep(WAIT_POLL_S)
    if as_json:
        print_json(found)
        return
    click.echo(f"trace {found['trace_id']}")
    for line in render_tree(found["spans"]):
        click.echo(line)


def render_tree(spans: list[dict[str, Any]]) -> list[str]:
    """One line per span, children indented under their parent, siblings by start; a span whose parent
    was not recorded here (the caller's own, outside fn) is a root."""
    if not spans:
        return []
    ids = {span["span"] for span in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span.get("parent") if span.get("parent") in ids else None
        children.setdefault(parent, []).append(span)
    origin = min(span["start"] for span in spans)
    lines: list[str] = []

    def walk(parent: str | None, depth: int, seen: set[str]) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: (s["start"], s["end"])):
            if span["span"] in seen:  # a cycle in damaged data: print each span once
                continue
            seen.add(span["span"])
            duration = (span["end"] - span["start"]) * 1000
            offset = (span["start"] - origin) * 1000
            error = "  ERROR" if span.get("status") == "error" else ""
            label = f"{'  ' * depth}{span['name']}"
            lines.append(f"{label:<44} {span.get('source', ''):<20} +{offset:9.1f} ms {duration:10.1f} ms{error}")
            walk(span["span"], depth + 1, seen)

    walk(None, 0, set())
    return lines
