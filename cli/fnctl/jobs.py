"""``fnctl jobs ls|get|retry|cancel|spawn``: queued function calls (``fn.spawn``) and their dead letters.

The jobs API is on the function endpoint (``POST /jobs/<function>``, ``GET /jobs/<id>``...), like the calls
themselves; a job is seen only with the key that spawned it (or an admin's).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import click
import httpx
from rich.markup import escape
from rich.table import Table

import fn
from fn._platform import check_callback_url, function_url, raise_for_response, send_with_retries, shared_client

from ._output import console, json_option, print_json
from .functions import parse_data

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
ENDED = frozenset({"succeeded", "failed", "cancelled"})
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ERROR_WIDTH = 60


def _job_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not _JOB_ID.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not a job id (letters, digits, '-' and '_', like job-3f2a9c...); "
                                 f"list them with 'fnctl jobs ls'", ctx, param)
    return value


job_id_argument = click.argument("job_id", metavar="ID", callback=_job_id)


def _callback_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Its shape, as the SDK checks it; the platform checks where it resolves to when it accepts the job."""
    try:
        return check_callback_url(value) if value is not None else None
    except ValueError as exc:
        raise click.BadParameter(f"{exc}, e.g. https://example.com/hooks/fn", ctx, param) from None


def _list(params: dict[str, Any]) -> list[dict[str, Any]]:
    """``GET /jobs`` on the function endpoint (fn.Job covers one job; the SDK has no listing)."""
    settings = fn.load_settings()
    url = function_url(settings, "jobs")
    client = shared_client(settings)
    try:
        response = send_with_retries(lambda: client.get(url, params=params, timeout=60))
    except httpx.TransportError as exc:
        raise fn.Unavailable(f"cannot reach the platform at {url}: {exc}; is it running ('fnctl up')?",
                             status=503) from None
    raise_for_response(response)
    found: list[dict[str, Any]] = response.json()
    return found


def short_time(value: str | None) -> str | None:
    return value[:19].replace("T", " ") if value else None


def shorten(text: str, width: int = _ERROR_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def error_text(error: dict[str, Any] | None) -> str:
    if not error:
        return ""
    kind, message = error.get("type"), str(error.get("message") or "")
    return f"{kind}: {message}" if kind else message


def print_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], empty: str, whole: Sequence[str]) -> None:
    """A table like _output.print_table's, whose *whole* columns (ids, statuses) are never wrapped or cut short, so
    an id can be copied from a narrow terminal; the other columns wrap."""
    if not rows:
        console.print(empty)
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=column in whole, overflow="fold")
    for row in rows:
        table.add_row(*("-" if cell is None else escape(str(cell)) for cell in row))
    console.print(table)


def _attempts(state: dict[str, Any]) -> str:
    return f"{state.get('attempts', 0)}/{state.get('max_attempts', 1)}"


def print_state(state: dict[str, Any]) -> None:
    """A job's whole state for people: status, attempts, times, webhook, error, and its result as indented JSON."""
    version = f" v{state['version']}" if state.get("version") is not None else ""
    lines = [f"function: {state['function']}{version}   source: {state.get('source') or 'api'}   "
             f"attempts: {_attempts(state)}",
             "   ".join(f"{label}: {short_time(state.get(label)) or '-'}" for label in ("created", "started", "finished"))]
    if state.get("next_attempt_at"):
        lines.append(f"next attempt: {short_time(state['next_attempt_at'])}")
    webhook = state.get("webhook")
    if webhook:
        outcome = f": {webhook['outcome']}" if webhook.get("outcome") else ""
        lines.append(f"webhook: {webhook.get('status') or '-'} after {webhook.get('attempts', 0)} attempt(s){outcome}")
    console.print(f"job {escape(state['id'])}: [bold]{escape(state['status'])}[/]")
    for line in lines:
        console.print(escape(line))
    error = state.get("error")
    if error:
        status = f" ({error['status']})" if error.get("status") else ""
        label = "last error" if state["status"] in {"queued", "running"} else "error"
        console.print(f"[red]{label}{status}:[/] {escape(error_text(error))}")
    if state["status"] == "failed":
        console.print(f"a dead letter: queue it again with 'fnctl jobs retry {escape(state['id'])}'")
    if "result" in state:
        console.print("result:")
        click.echo(json.dumps(state["result"], indent=2))


def print_spawned(job: fn.Job, as_json: bool) -> None:
    """What ``fnctl jobs spawn`` and ``fnctl invoke --spawn`` print: the job's id (with --json its state)."""
    if as_json:
        print_json(job.state)
    else:
        click.echo(job.id)


def _pair(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.isidentifier():
        raise click.BadParameter(f"{item!r} is not KEY=VALUE (KEY a parameter name; VALUE JSON, or else text), "
                                 f"e.g. a=2 name=ada tags='[\"x\"]'", param_hint="KEY=VALUE")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


@click.group()
def jobs() -> None:
    """Queued function calls: spawn them, follow them, cancel them, re-drive the failed ones (dead letters).

    A job runs the function like a call does, but outlives the request: it is accepted (written down) at
    once, retried per the function's retries, and its end can be sent to a callback_url as a signed
    webhook ('fnctl keys webhook-secret').

    \b
        fnctl jobs spawn resize url=https://example.com/a.png --retries 3
        fnctl jobs ls --failed
    """


@jobs.command("ls")
@click.argument("name", required=False)
@click.option("--failed", is_flag=True, help="Only the dead letters: jobs that failed every attempt (--status failed).")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only jobs in this state.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000), help="Newest jobs shown.")
@json_option
def list_jobs(name: str | None, failed: bool, status: str | None, limit: int, as_json: bool) -> None:
    """List your jobs, newest first (an admin key: everyone's), of function NAME if given.

    Columns: id, function, status, attempts made of those allowed, created, finished, and the last error.

    \b
        fnctl jobs ls resize --failed --limit 20
    """
    if failed and status not in (None, "failed"):
        raise click.UsageError(f"--failed lists failed jobs; it cannot be combined with --status {status}")
    wanted = "failed" if failed else status
    params: dict[str, Any] = {"limit": limit}
    if name:
        params["function"] = name
    if wanted:
        params["status"] = wanted
    found = _list(params)
    if as_json:
        print_json(found)
        return
    empty = "no failed jobs (no dead letters)" if wanted == "failed" else \
        "no jobs; queue one with 'fnctl jobs spawn NAME' or 'fnctl invoke NAME --spawn'"
    print_rows(["ID", "FUNCTION", "STATUS", "ATTEMPTS", "CREATED", "FINISHED", "ERROR"],
               [[j["id"], j["function"], j["status"], _attempts(j), short_time(j.get("created")),
                 short_time(j.get("finished")), shorten(error_text(j.get("error")))] for j in found],
               empty, whole=("ID", "STATUS", "ATTEMPTS"))


@jobs.command("get")
@job_id_argument
@click.option("--wait", default=0.0, type=click.FloatRange(0, 60), metavar="S",
              help="Wait up to S seconds (at most 60) for the job to end before answering.")
@json_option
def get(job_id: str, wait: float, as_json: bool) -> None:
    """Show job ID: status, attempts, times, webhook delivery, error, and its result as JSON.

    \b
        fnctl jobs get job-3f2a9c0d1e2b4a5c6d7e --wait 30
    """
    state = fn.Job(job_id).refresh(wait=wait)
    if as_json:
        print_json(state)
    else:
        print_state(state)


@jobs.command("retry")
@job_id_argument
@json_option
def retry(job_id: str, as_json: bool) -> None:
    """Queue job ID again with all its attempts: a failed job (a dead letter) or a cancelled one.

    A job still queued, running or succeeded is refused (409).

    \b
        fnctl jobs retry job-3f2a9c0d1e2b4a5c6d7e
    """
    state = fn.Job(job_id).retry().state
    if as_json:
        print_json(state)
    else:
        print_state(state)


@jobs.command("cancel")
@job_id_argument
@json_option
def cancel(job_id: str, as_json: bool) -> None:
    """Cancel job ID: a queued job at once, a running one within about a second; an ended one stays as it is.

    \b
        fnctl jobs cancel job-3f2a9c0d1e2b4a5c6d7e
    """
    state = fn.Job(job_id).cancel()
    if as_json:
        print_json(state)
    elif state["status"] == "cancelled":
        click.echo(f"cancelled {job_id}")
    elif state["status"] == "running":
        click.echo(f"cancelling {job_id}: it is running and stops within about a second")
    else:
        click.echo(f"{job_id} had already ended: {state['status']}")


@jobs.command("spawn")
@click.argument("name")
@click.argument("pairs", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--data", "-d", default=None,
              help='Keyword arguments as a JSON object, e.g. \'{"a": 2, "b": 3}\', or @file.json; KEY=VALUE pairs are '
                   'added to it.')
@click.option("--retries", type=click.IntRange(0, 100), default=None,
              help="Retries after a failed attempt (default: the function's own retries).")
@click.option("--callback-url", default=None, metavar="URL", callback=_callback_url,
              help="POST the job's end (its state, signed: 'fnctl keys webhook-secret') to this http(s) URL; "
                   "the platform refuses private addresses. Default: the function's callback_url.")
@click.option("--version", "version", default=None, type=click.IntRange(min=1),
              help="Run this version of NAME whatever the traffic split says.")
@click.option("--wait", is_flag=True, help="Wait for the job to end and print its result as 'fnctl invoke' does.")
@click.option("--timeout", default=None, type=click.FloatRange(0, min_open=True), metavar="S",
              help="With --wait: give up waiting after S seconds (the job keeps running). Default: no limit.")
@json_option
def spawn(name: str, pairs: tuple[str, ...], data: str | None, retries: int | None, callback_url: str | None,
          version: int | None, wait: bool, timeout: float | None, as_json: bool) -> None:
    """Queue a call of NAME as a job and print its id at once (with --wait, its result when it ends).

    Arguments come from --data (a JSON object) and KEY=VALUE pairs, where VALUE is read as JSON
    (2, true, [1, 2], "text") or else taken as text. With --json, the job's state instead of its id.

    \b
        fnctl jobs spawn add a=2 b=3 --wait
        fnctl jobs spawn resize -d @args.json --retries 3 --callback-url https://example.com/hooks/fn
    """
    arguments = {**parse_data(data), **dict(_pair(item) for item in pairs)}
    if timeout is not None and not wait:
        raise click.UsageError("--timeout applies to --wait")
    job = fn.ref(name, version=version, callback_url=callback_url, retries=retries).spawn(**arguments)
    if not wait:
        print_spawned(job, as_json)
        return
    click.echo(f"job {job.id} queued; waiting for it to end", err=True)
    try:
        result = job.result(timeout=timeout)
    except fn.Timeout:
        if timeout is None or job.state.get("status") in ENDED:  # the job's own error, or the platform's: as it is
            raise
        raise click.ClickException(f"job {job.id} has not ended within {timeout:g} s (it is "
                                   f"{job.state.get('status')}); it keeps running: follow it with "
                                   f"'fnctl jobs get {job.id} --wait 60'") from None
    if as_json:
        print_json(job.state)
    else:
        click.echo(json.dumps(result))
