"""``fnctl flow run|status|ls``: runs of deployed flows."""

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


@flow.command("run")
@click.argument("name")
@click.option("--input", "-i", "inputs", multiple=True, metavar="NAME=VALUE",
              help="An input: NAME=@path (file bytes), NAME=<JSON> or NAME=<text>. Repeat for each input.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for the output.")
@click.option("--no-wait", is_flag=True, help="Print the run id after giving the inputs, without waiting.")
@json_option
def run(name: str, inputs: tuple[str, ...], timeout: float, no_wait: bool, as_json: bool) -> None:
    """Start a run of flow NAME, give it each --input in turn, and print its output."""
    values = [_input_value(item) for item in inputs]
    started = fn.flows.start(name)
    for input_name, value in values:
        started.put(input_name, value)
    if no_wait:
        click.echo(started.id)
        return
    output = started.result(timeout=timeout)
    if as_json:
        print_json({"id": started.id, "output": output})
    else:
        console.print(f"run {started.id} succeeded")
        click.echo(json.dumps(output, indent=2))


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
    console.print("inputs: " + ", ".join(f"{k}{'' if v else ' (missing)'}" for k, v in state["inputs"].items()))
    print_table(["STEP", "STATUS", "ATTEMPTS", "MS", "ERROR"],
                [[step, s["status"], s.get("attempts", 0), s.get("duration_ms", ""),
                  (s.get("error") or {}).get("message", "")] for step, s in state["steps"].items()])
    if "output" in state:
        click.echo(json.dumps(state["output"], indent=2))
    if "error" in state:
        console.print(f"[red]error:[/] {state['error']}")


@flow.command("ls")
@json_option
def list_flows(as_json: bool) -> None:
    """List deployed flows with their inputs, steps and latest runs."""
    flows = Api().get("/v1/flows")
    if as_json:
        print_json(flows)
        return
    print_table(["FLOW", "INPUTS", "STEPS", "OUTPUT", "LATEST RUN"],
                [[f["name"], ", ".join(f["inputs"]), ", ".join(f["steps"]), f["output"],
                  f"{f['runs'][0]['id']} {f['runs'][0]['status']}" if f["runs"] else ""] for f in flows],
                empty="no flows deployed; declare one with fn.Flow and 'fnctl deploy' its project")
