"""``fnctl up``, ``down``, ``server`` and ``quickstart``: the platform's own process."""

from __future__ import annotations

import importlib.resources
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import click
import httpx

from fn import fn_home

from ._output import console, json_option, print_json

STATE_FILE = "platform.json"  # written by fnplatform.control.server once it is ready


def _state(home: Path) -> dict[str, Any] | None:
    path = home / STATE_FILE
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@click.command()
@click.option("--api-port", default=8080, show_default=True, help="Port of the control-plane API.")
@click.option("--http-port", default=8000, show_default=True, help="Port of the function endpoints.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address both servers listen on.")
@click.option("--gpus", default=0.0, type=click.FloatRange(min=0), show_default=True,
              help="Declare N fake GPUs so GPU-pool functions schedule on this machine (they run on the CPU).")
@click.option("--cpus", default=None, type=click.FloatRange(min=1),
              help="CPUs Ray may hand out (default: twice the cores, at least 4; replicas cap their threads to their cpus).")
@click.option("--ray-address", envvar="FN_RAY_ADDRESS", default=None,
              help="A Ray cluster to run on (HOST:PORT of its head, started with 'ray start'; see docs/operations.md) "
                   "instead of starting a local Ray. Its nodes declare the pools.")
@click.option("--timeout", default=180.0, show_default=True, help="Seconds to wait for the platform to be ready.")
@json_option
def up(api_port: int, http_port: int, host: str, gpus: float, cpus: float | None, ray_address: str | None,
       timeout: float, as_json: bool) -> None:
    """Start the local platform (Ray, Serve, control plane) and return once it is ready.

    All state lives under FN_HOME; the first admin API key is written to FN_HOME/credentials.json.
    """
    if ray_address and (cpus is not None or gpus):
        raise click.UsageError("--cpus and --gpus declare a local Ray's resources; with --ray-address the cluster's "
                               "nodes declare theirs ('ray start --num-cpus N --num-gpus N'): drop them")
    home = fn_home()
    state = _state(home)
    if state and _alive(int(state["pid"])) and _healthy(state["api_url"]):
        _report_up(state, as_json, already=True)
        return
    if state and not _alive(int(state["pid"])):
        # The last platform died without 'fnctl down' (killed, a crash): what it left (HAProxy, Ray's
        # processes) may still hold the ports. They are ours, found by the runtime folder as 'down' does.
        from fnplatform.control.local import kill_survivors
        from fnplatform.control.settings import PlatformSettings

        left = kill_survivors(Path(state.get("runtime_dir") or PlatformSettings(home=home).runtime_dir))
        (home / STATE_FILE).unlink(missing_ok=True)
        if left and not as_json:
            console.print(f"stopped {left} processes left by a platform that ended without 'fnctl down'")
    for port, flag in ((api_port, "--api-port"), (http_port, "--http-port")):
        if not _port_free(host, port):
            raise click.ClickException(f"port {port} on {host} is in use; choose another with {flag} PORT")
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / "platform.log"
    command = [sys.executable, "-m", "fnplatform.control.server", "--api-host", host, "--api-port", str(api_port),
               "--http-host", host, "--http-port", str(http_port), "--gpus", str(gpus)]
    if cpus is not None:
        command += ["--cpus", str(cpus)]
    if ray_address:
        command += ["--ray-address", ray_address]
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "FN_HOME": str(home)})
    deadline = time.monotonic() + timeout
    with console.status("starting Ray, Serve and the control plane...", spinner="dots") if not as_json else nullcontext():
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise click.ClickException(f"the platform exited with code {proc.returncode}; "
                                           f"last lines of {log_path}:\n{_tail(log_path)}")
            state = _state(home)
            if state and state.get("pid") == proc.pid and _healthy(state["api_url"]):
                _report_up(state, as_json, already=False)
                return
            time.sleep(0.3)
    proc.terminate()
    raise click.ClickException(f"the platform was not ready within {timeout:g} s (stopped it); "
                               f"last lines of {log_path}:\n{_tail(log_path)}")


def _report_up(state: dict[str, Any], as_json: bool, already: bool) -> None:
    home = fn_home()
    info = {"api_url": state["api_url"], "http_url": state["http_url"], "pid": state["pid"], "home": str(home),
            "credentials": str(home / "credentials.json"), "already_running": already}
    if as_json:
        print_json(info)
        return
    console.print("fn platform is " + ("already running" if already else "up"))
    console.print(f"  API:        {info['api_url']}")
    console.print(f"  functions:  {info['http_url']}/<name>")
    console.print(f"  home:       {home}")
    console.print("  next:       fnctl deploy PATH   (stop with: fnctl down)")


@click.command()
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait before killing it.")
def down(timeout: float) -> None:
    """Stop what 'fnctl up' started under FN_HOME; nothing is left running."""
    from fnplatform.control.local import kill_survivors
    from fnplatform.control.settings import PlatformSettings

    home = fn_home()
    state = _state(home)
    settings = PlatformSettings(home=home)
    if state is None or not _alive(int(state["pid"])):
        left = kill_survivors(settings.runtime_dir)
        console.print(f"no platform running under {home}" + (f" (stopped {left} leftover Ray processes)" if left else ""))
        (home / STATE_FILE).unlink(missing_ok=True)
        return
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    with console.status("stopping...", spinner="dots"):
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        kill_survivors(Path(state.get("runtime_dir") or settings.runtime_dir))
    (home / STATE_FILE).unlink(missing_ok=True)
    console.print("fn platform stopped")


@click.command()
@click.option("--api-host", default="0.0.0.0", show_default=True)
@click.option("--api-port", default=8080, show_default=True)
@click.option("--http-host", default="0.0.0.0", show_default=True)
@click.option("--http-port", default=8000, show_default=True)
@click.option("--ray-address", envvar="FN_RAY_ADDRESS", default=None,
              help="Ray cluster to use (e.g. 'auto' inside the head pod); default: start a local Ray.")
def server(api_host: str, api_port: int, http_host: str, http_port: int, ray_address: str | None) -> None:
    """Run the control plane in the foreground (production: on a Ray cluster, FN_* settings from the environment)."""
    from fnplatform.control.server import main

    argv = ["--api-host", api_host, "--api-port", str(api_port), "--http-host", http_host, "--http-port", str(http_port)]
    main(argv + (["--ray-address", ray_address] if ray_address else []))


def _hello_project() -> Path:
    """The hello example shipped inside fnctl (package data), wherever fnctl is installed."""
    return Path(str(importlib.resources.files("fnctl") / "examples" / "hello"))


@click.command()
@click.option("--project", type=click.Path(exists=True, file_okay=False), default=None,
              help="Project to deploy (default: the hello example shipped with fnctl).")
@click.option("--api-port", default=8080, show_default=True, help="Port of the control-plane API.")
@click.option("--http-port", default=8000, show_default=True, help="Port of the function endpoints.")
@click.pass_context
def quickstart(ctx: click.Context, project: str | None, api_port: int, http_port: int) -> None:
    """Start the local platform, deploy the hello example and call add(a=2, b=3)."""
    import fn

    from .deploy import deploy

    path = project or str(_hello_project())
    if not Path(path).is_dir():
        raise click.ClickException(f"{path} does not exist; pass --project PATH")
    ctx.invoke(up, gpus=1.0, api_port=api_port, http_port=http_port)
    ctx.invoke(deploy, path=path)
    console.print("fn.call('add', a=2, b=3) ->", fn.call("add", a=2, b=3))


COMMANDS = (up, down, server, quickstart)
