"""``fnctl ls``, ``describe``, ``invoke``, ``logs`` and ``rm``: deployed functions."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

import fn

from ._api import Api
from ._output import console, json_option, print_json, print_table


@click.command("ls")
@json_option
def list_functions(as_json: bool) -> None:
    """List deployed functions: pool, active version, replicas running/target, endpoint."""
    rows = Api().get("/v1/functions")
    if as_json:
        print_json(rows)
        return
    print_table(["NAME", "POOL", "VERSION", "STATUS", "REPLICAS", "ENDPOINT"],
                [[r["name"], r["pool"], r["version"], r["status"], f"{r['running']}/{r['target']}", _endpoint(r)]
                 for r in rows], empty="no functions deployed; deploy some with 'fnctl deploy PATH'")


def _endpoint(info: dict[str, Any]) -> str:
    return "internal (no HTTP)" if info.get("internal") else str(info["endpoint"])


@click.command()
@click.argument("name")
@json_option
def describe(name: str, as_json: bool) -> None:
    """Show NAME's full spec, bundle sha256, versions and replica states."""
    info = Api().get(f"/v1/functions/{name}")
    if as_json:
        print_json(info)
        return
    console.print(f"[bold]{info['name']}[/]  {_endpoint(info)}")
    if info.get("internal"):
        console.print("internal: only other functions (fn.call inside the cluster) and flows call it; HTTP gets 404")
    console.print(f"active version: {info['active_version']}   bundle sha256: {info['bundle_sha256']}")
    console.print(f"status: {info['app_status']}   replicas running/target: {info['running']}/{info['target']}")
    if info.get("message"):
        console.print(f"message: {info['message']}")
    console.print("spec:")
    for key, value in info["spec"].items():
        console.print(f"  {key}: {value}")
    console.print("versions:")
    print_table(["VERSION", "STATUS", "BUNDLE", "CREATED", "ERROR"],
                [[v["version"], v["status"], v["bundle_sha256"][:12], v["created_at"],
                  (v["error"] or "").splitlines()[0][:80] if v["error"] else ""] for v in info["versions"]])
    if info["replicas"]:
        console.print("replicas:")
        print_table(["REPLICA", "STATE", "PID", "NODE"],
                    [[r["replica_id"], r["state"], r["pid"], r["node_ip"]] for r in info["replicas"]])
    _print_cold_starts(info.get("cold_starts") or [])


COLD_PHASES = ("total", "scale", "place", "start", "fetch", "import", "setup", "route")


def _print_cold_starts(calls: list[dict[str, Any]]) -> None:
    """The last calls that waited for a replica to start, in seconds per phase (docs/observability.md)."""
    if not calls:
        console.print("cold starts: none recorded (a call that waits for a replica gets an Fn-Cold-Start header)")
        return
    console.print("last cold starts (seconds):")
    print_table(["AT", "REQUEST", *(phase.upper() for phase in COLD_PHASES)],
                [[c["at"], c["request_id"], *(f"{c['seconds'].get(phase, 0.0):.2f}" for phase in COLD_PHASES)]
                 for c in calls])


def parse_data(data: str | None) -> dict[str, Any]:
    """--data as keyword arguments: a JSON object, or @path of a file holding one (``fnctl jobs spawn`` shares it)."""
    if not data:
        return {}
    source = Path(data[1:]).read_text() if data.startswith("@") else data
    try:
        arguments = json.loads(source)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON ({exc}); e.g. --data '{{\"a\": 2}}'", param_hint="--data") from None
    if not isinstance(arguments, dict):
        raise click.BadParameter("must be a JSON object mapping parameter names to values", param_hint="--data")
    return arguments


@click.command()
@click.argument("name")
@click.option("--data", "-d", default=None, help='Keyword arguments as a JSON object, e.g. \'{"a": 2, "b": 3}\'.')
@click.option("--timeout", default=None, type=float, help="Seconds to wait for the result.")
@click.option("--version", "version", default=None, type=click.IntRange(min=1),
              help="Call this version (started from zero if needed) whatever the traffic split says.")
@click.option("--spawn", is_flag=True,
              help="Queue the call as a job instead and print its id at once, as 'fnctl jobs spawn' does.")
@click.option("--stream", "stream", is_flag=True,
              help="Print a generator function's chunks as they come, one JSON value per line.")
@json_option
def invoke(name: str, data: str | None, timeout: float | None, version: int | None, spawn: bool, stream: bool,
           as_json: bool) -> None:
    """Call NAME with --data and print its result as JSON; with --spawn, queue it as a job and print the job's id;
    with --stream, print a generator function's chunks as they are produced.

    \b
        fnctl invoke add -d '{"a": 2, "b": 3}'
        fnctl invoke resize -d @args.json --spawn    (then: fnctl jobs get ID --wait 60)
        fnctl invoke generate -d '{"prompt": "hi"}' --stream
    """
    arguments = parse_data(data)
    if stream and spawn:
        raise click.UsageError("--stream and --spawn do not go together: a job keeps its result, it does not stream")
    if stream:
        for chunk in fn.ref(name, timeout=timeout, version=version).stream(**arguments):
            click.echo(json.dumps(chunk))
        return
    if spawn:
        if timeout is not None:
            raise click.UsageError("--timeout is for a call; wait for a spawned job with 'fnctl jobs get ID --wait S'")
        from .jobs import print_spawned  # jobs imports parse_data from here

        print_spawned(fn.ref(name, version=version).spawn(**arguments), as_json)
        return
    try:
        result = fn.ref(name, timeout=timeout, version=version).call(**arguments)
    except fn.NotFound:
        if _is_internal(name):
            raise click.ClickException(
                f"{name} is internal (internal=True): it has no HTTP endpoint, so it cannot be invoked from outside the "
                f"cluster; call it from another function (fn.call) or a flow, or invoke the flow or function that "
                f"calls it") from None
        raise
    click.echo(json.dumps(result, indent=2 if as_json else None))


def _is_internal(name: str) -> bool:
    """Whether the control plane knows *name* as an internal function (asked only after its endpoint said 404)."""
    try:
        info = Api().get(f"/v1/functions/{name}")
    except fn.FnError:
        return False
    return bool(isinstance(info, dict) and info.get("internal"))


def _checked(check: str) -> Any:
    """A click callback running fnplatform.logtext's *check*, so fnctl refuses what the API would, naming the option."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        from fnplatform import logtext

        if value is None:
            return None
        try:
            getattr(logtext, check)(value)
        except logtext.InvalidQuery as exc:
            raise click.BadParameter(str(exc), ctx, param) from None
        return value.strip() if check == "parse_since" else value

    return callback


@click.command()
@click.argument("name", required=False)
@click.option("--control-plane", "control_plane", is_flag=True,
              help="Read the control plane's own log instead of a function's (an admin key).")
@click.option("--since", metavar="DURATION", default=None, callback=_checked("parse_since"),
              help="Only lines of the last DURATION: seconds (90) or 30s, 10m, 2h, 1d.")
@click.option("--request-id", "request_id", default=None, callback=_checked("check_request_id"),
              help="Only lines of this request (the x-request-id a call was answered with).")
@click.option("--grep", default=None, callback=_checked("check_grep"),
              help="Only lines containing this text (case-sensitive, plain text, at most 200 characters).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until interrupted.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 5000), help="Most recent lines to show.")
@json_option
def logs(name: str | None, control_plane: bool, since: str | None, request_id: str | None, grep: str | None,
         follow: bool, limit: int, as_json: bool) -> None:
    """Print NAME's stored replica logs, oldest first; each line carries its replica and request id.

    Lines are kept for FN_LOG_RETENTION_HOURS (default 72) and survive restarts of the platform; a line
    is readable about a second after the function printed it. With --json, the page (lines and their
    parsed entries); with --follow --json, one JSON entry per line.

    Example: fnctl logs add --since 10m --grep "adding" --follow
    """
    if control_plane == (name is not None):
        raise click.UsageError("give a function NAME or --control-plane (one of them)")
    path = "/v1/logs/control-plane" if control_plane else f"/v1/functions/{name}/logs"
    query = {k: v for k, v in {"since": since, "request_id": request_id, "grep": grep}.items() if v is not None}
    api = Api()
    page = api.get(path, limit=limit, **query)
    if as_json and not follow:
        print_json(page)
        return
    _print_page(page, as_json)
    after = page["next"]
    while follow:
        page = api.get(path, after=after, limit=5000, **query)
        _print_page(page, as_json)
        if len(page["lines"]) < 5000:  # a full page: more are waiting, read on at once
            time.sleep(1)
        after = page["next"]


def _print_page(page: dict[str, Any], as_json: bool) -> None:
    if as_json:
        for entry in page.get("entries", []):
            click.echo(json.dumps(entry))
        return
    for line in page["lines"]:
        click.echo(line)


@click.command("rm")
@click.argument("name")
@click.option("--with-flows", is_flag=True,
              help="Also remove the flows that call NAME (otherwise they are named and nothing is removed).")
def remove(name: str, with_flows: bool) -> None:
    """Delete NAME: its Serve application, its versions and its endpoint."""
    result = Api().request("DELETE", f"/v1/functions/{name}", params={"with_flows": "true"} if with_flows else None).json()
    flows = result.get("flows_removed") or []
    click.echo(f"removed {name}" + (f" and flow(s) {', '.join(flows)}" if flows else ""))




COMMANDS = (list_functions, describe, invoke, logs, remove)
