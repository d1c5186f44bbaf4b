"""``fnctl flow run|close|status|ls``: runs of deployed flows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

import fn

from ._api import Api
from ._output import console, json_option, print_json, print_table


def _input_value(spec: str) -> tuple[str, Any]:
    name, sep, raw = spec.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"{spec!r} is not NAME=VALUE (VALUE: @file for its bytes, or JSON, or text)",
                                 param_hint="--input")
    if raw.startswith("@"):
        path = Path(raw[1:]).expanduser()
        if not path.is_file():
            raise click.BadParameter(f"{path} is not a file", param_hint="--input")
        return name, path.read_bytes()
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


@click.group()
def flow() -> None:
    """Start flow runs, give them inputs, and read their state."""


def _inputs_text(state: dict[str, Any]) -> str:
    """``front, back? (not given, inputs closed)``: each input, optional ones marked with '?'."""
    optional, closed = set(state.get("optional") or ()), bool(state.get("inputs_closed"))
    shown = []
    for name, given in state["inputs"].items():
        text = f"{name}?" if name in optional else name
        if not given:
            text += " (not given, inputs closed)" if closed else " (missing)"
        shown.append(text)
    return ", ".join(shown)


def _pins(items: tuple[str, ...]) -> dict[str, int]:
    pins: dict[str, int] = {}
    for item in items:
        function, sep, number = item.partition("=")
        if not sep or not function or not number.isdigit() or int(number) < 1:
            raise click.BadParameter(f"{item!r} is not FUNCTION=N (a step's function and a version number), "
                                     f"e.g. score=3", param_hint="--version")
        pins[function] = int(number)
    return pins


@flow.command("run")
@click.argument("name")
@click.option("--input", "-i", "inputs", multiple=True, metavar="NAME=VALUE",
              help="An input: NAME=@path (file bytes), NAME=<JSON> or NAME=<text>. Repeat for each input.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for the output.")
@click.option("--no-wait", is_flag=True, help="Print the run id after giving the inputs, without waiting.")
@click.option("--close/--no-close", default=None,
              help="Close the run's inputs after giving them, so it finishes without the optional inputs not given. "
                   "Default: --close, or --no-close with --no-wait (more inputs may follow from elsewhere).")
@click.option("--version", "versions", multiple=True, metavar="FUNCTION=N",
              help="Call version N of a step's function in this run, whatever its traffic split; repeatable.")
@json_option
def run(name: str, inputs: tuple[str, ...], timeout: float, no_wait: bool, close: bool | None,
        versions: tuple[str, ...], as_json: bool) -> None:
    """Start a run of flow NAME, give it each --input in turn, close its inputs, and print its output.

    An optional input not given reaches its steps as None, e.g. for a flow whose 'back' is optional:

    \b
        fnctl flow run documents -i front=@front.jpg -i selfie=@me.jpg
    """
    values = [_input_value(item) for item in inputs]
    started = fn.flows.start(name, versions=_pins(versions))
    for input_name, value in values:
        started.put(input_name, value)
    if (not no_wait) if close is None else close:
        try:
            started.close_inputs()
        except fn.Conflict as exc:  # a required input was not given: say which, and what became of the run
            raise click.ClickException(f"{exc.message}. Pass each required input with -i NAME=VALUE; run "
                                       f"{started.id} was left open (it fails after the flow's ttl_s)") from None
    if no_wait:
        click.echo(started.id)
        return
    output = started.result(timeout=timeout)
    if as_json:
        print_json({"id": started.id, "output": output})
    else:
        console.print(f"run {started.id} succeeded")
        click.echo(json.dumps(output, indent=2))


@flow.command("close")
@click.argument("name")
@click.argument("run_id")
@json_option
def close(name: str, run_id: str, as_json: bool) -> None:
    """Close the inputs of run RUN_ID of flow NAME: no more will come, and steps taking an optional input
    not given run with None for it. Refused while a required input is missing; closing again is no error."""
    state = fn.flows.run(name, run_id).close_inputs()
    if as_json:
        print_json(state)
        return
    console.print(f"inputs of run {state['id']} closed; it is [bold]{state['status']}[/]")
    console.print("inputs: " + _inputs_text(state))


@flow.command("status")
@click.argument("name")
@click.argument("run_id")
@click.option("--wait", default=0.0, type=click.FloatRange(0, 60), help="Long-poll up to this many seconds for the end.")
@json_option
def status(name: str, run_id: str, wait: float, as_json: bool) -> None:
    """Show run RUN_ID of flow NAME: status, each step's state, output or error."""
    state = fn.flows.run(name, run_id).status(wait=wait)
    if as_json:
        print_json(state)
        return
    console.print(f"run {state['id']} of {state['flow']}: [bold]{state['status']}[/]")
    if state.get("trace_id"):
        console.print(f"trace: {state['trace_id']} (fnctl trace {state['id']})")
    console.print("inputs: " + _inputs_text(state))
    print_table(["STEP", "STATUS", "ATTEMPTS", "MS", "ERROR"],
                [[step, s["status"], s.get("attempts", 0), s.get("duration_ms", ""),
                  (s.get("error") or {}).get("message", "")] for step, s in state["steps"].items()])
    if "output" in state:
        click.echo(json.dumps(state["output"], indent=2))
    if "error" in state:
        console.print(f"[red]error:[/] {state['error']}")


@flow.command("get")
@click.argument("name")
@click.argument("run_id")
@click.option("--evidence", is_flag=True,
              help="What decided the run (admin keys): inputs' SHA-256 and sizes, every step's result with its "
                   "function's version and times, the bundle, the output.")
def get(name: str, run_id: str, evidence: bool) -> None:
    """Print run RUN_ID of flow NAME as JSON: its output (or error), or with --evidence its evidence."""
    run = fn.flows.run(name, run_id)
    if evidence:
        print_json(run.evidence())
        return
    state = run.status()
    print_json({k: state[k] for k in ("id", "flow", "status", "output", "error") if k in state})


@flow.command("ls")
@json_option
def list_flows(as_json: bool) -> None:
    """List deployed flows with their inputs, steps and latest runs."""
    flows = Api().get("/v1/flows")
    if as_json:
        print_json(flows)
        return
    print_table(["FLOW", "INPUTS (? optional)", "STEPS", "OUTPUT", "LATEST RUN"],
                [[f["name"], ", ".join(f"{i}?" if i in f.get("optional", ()) else i for i in f["inputs"]),
                  ", ".join(f["steps"]), f["output"],
                  f"{f['runs'][0]['id']} {f['runs'][0]['status']}" if f["runs"] else ""] for f in flows],
                empty="no flows deployed; declare one with fn.Flow and 'fnctl deploy' its project")
