"""``fnctl deploy PATH``: package, upload, record and deploy every decorated function."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any, BinaryIO

import click
from rich.live import Live
from rich.table import Table

from ._api import Api
from ._output import console, json_option, print_json

_DONE = {"deployed", "unchanged", "failed"}
_STYLE = {"deployed": "green", "unchanged": "green", "failed": "red"}


def _render(stages: dict[str, tuple[str, str]]) -> Table:
    table = Table(box=None, pad_edge=False, show_header=False)
    for name, (stage, message) in sorted(stages.items()):
        spinner = "" if stage in _DONE else "…"
        style = _STYLE.get(stage, "yellow")
        first_line = message.splitlines()[0] if message else ""
        table.add_row(f"  {name}", f"[{style}]{stage}{spinner}[/]", first_line[:100])
    return table


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--timeout", default=900.0, show_default=True, help="Seconds to wait for the deploy to finish.")
@click.option("--canary", type=click.FloatRange(0, 100, min_open=True, max_open=True), default=None,
              help="Run each changed function's new version beside the active one with this percent of calls.")
@click.option("--steps", default=None, help="With --canary: promote step by step, e.g. 10,50,100 (the first is --canary).")
@click.option("--interval", default="5m", show_default=True, help="With --steps: how long each step lasts, e.g. 90s, 5m.")
@click.option("--max-error-rate", default="1%", show_default=True,
              help="With --steps: roll back when the canary fails this much more often than the stable version.")
@click.option("--max-p99-ratio", default=1.5, show_default=True, type=click.FloatRange(0, min_open=True),
              help="With --steps: roll back when the canary's p99 is over this times the stable version's.")
@click.option("--min-calls", default=10, show_default=True, type=click.IntRange(1),
              help="With --steps: canary calls a step needs before it is promoted.")
@json_option
def deploy(path: str, timeout: float, canary: float | None, steps: str | None, interval: str, max_error_rate: str,
           max_p99_ratio: float, min_calls: int, as_json: bool) -> None:
    """Package the project at PATH, upload it, and deploy every @fn.function / @fn.model in it.

    Unchanged functions are left as they are; a function whose code fails to load keeps its
    previous version serving, and the command exits 1 with the error.
    """
    from fnplatform.bundles.packaging import DEFAULT_MAX_BUNDLE_BYTES, build_bundle
    from fnplatform.bundles.safety import BundleLimits

    plan = _canary_plan(canary, steps, interval, max_error_rate, max_p99_ratio, min_calls)
    api = Api()
    started = time.monotonic()
    info = api.get("/v1/info")  # the server's limits: a bundle it would refuse is refused here, before uploading
    max_bytes = int(info.get("max_bundle_bytes", DEFAULT_MAX_BUNDLE_BYTES))
    with console.status("packaging...", spinner="dots") if not as_json else nullcontext():
        bundle = build_bundle(path, max_bytes=max_bytes, limits=BundleLimits.from_dict(info.get("bundle_limits")))
    if not as_json:
        names = ", ".join(s.name for s in bundle.manifest.functions)
        console.print(f"bundle {bundle.sha256[:12]} ({len(bundle.data):,} bytes, {len(bundle.files)} files): {names}")
    if api.request("HEAD", f"/v1/bundles/{bundle.sha256}").status_code != 200:
        with console.status("uploading...", spinner="dots") if not as_json else nullcontext():
            api.request("PUT", f"/v1/bundles/{bundle.sha256}", content=bundle.data,
                        headers={"content-type": "application/zip"})
    for sha256, file in sorted(bundle.artifact_files.items()):
        if api.request("HEAD", f"/v1/artifacts/{sha256}").status_code != 200:
            size = file.stat().st_size
            with console.status(f"uploading {file.name} ({size / 1e6:.1f} MB)...", spinner="dots") if not as_json \
                    else nullcontext(), file.open("rb") as handle:
                api.request("PUT", f"/v1/artifacts/{sha256}", content=_chunks(handle),
                            headers={"content-type": "application/octet-stream", "content-length": str(size)})
    job = api.post("/v1/deployments", {"bundle_sha256": bundle.sha256, **({"canary": plan} if plan else {})})
    job = _follow(api, job, timeout, as_json)
    if as_json:
        print_json(job)
    failed = {name: r for name, r in job["results"].items() if r["status"] == "failed"}
    if job["state"] == "running":
        raise click.ClickException(f"the deploy did not finish within {timeout:g} s; it goes on: "
                                   f"'fnctl ls' shows where it stands")
    if failed:
        details = "\n".join(f"{name}: {r['error']}" for name, r in sorted(failed.items()))
        raise click.ClickException(f"{len(failed)} of {len(job['results'])} functions failed to deploy:\n{details}")
    if not as_json:
        console.print(f"deployed in {time.monotonic() - started:.1f} s; call with: fnctl invoke NAME --data '{{...}}'")


def _canary_plan(canary: float | None, steps: str | None, interval: str, max_error_rate: str, max_p99_ratio: float,
                 min_calls: int) -> dict[str, Any] | None:
    """The deploy request's canary plan (checked again by the API), or None without --canary."""
    from fn import BadRequest
    from fnplatform.control.rollout_gates import parse_duration, parse_percent

    if canary is None:
        if steps is not None:
            raise click.UsageError("--steps needs --canary (the first step's percent)")
        return None
    plan: dict[str, Any] = {"percent": canary}
    if steps is not None:
        try:
            weights = [float(s.strip().rstrip("%")) for s in steps.split(",") if s.strip()]
        except ValueError:
            raise click.BadParameter(f"{steps!r} is not a list of percents, e.g. 10,50,100", param_hint="--steps") from None
        try:
            plan.update(steps=weights, interval_s=parse_duration(interval, "--interval"),
                        gates={"max_error_rate": parse_percent(max_error_rate, "--max-error-rate"),
                               "max_p99_ratio": max_p99_ratio, "min_calls": min_calls})
        except BadRequest as exc:
            raise click.UsageError(exc.message) from None
    return plan


def _follow(api: Api, job: dict[str, Any], timeout: float, as_json: bool) -> dict[str, Any]:
    stages: dict[str, tuple[str, str]] = {name: ("queued", "") for name in job["functions"]}
    after = 0
    deadline = time.monotonic() + timeout
    with Live(_render(stages), console=console, transient=False, refresh_per_second=8,
              auto_refresh=not as_json) if not as_json else nullcontext() as live:
        while True:
            for event in job["events"]:
                stages[event["function"]] = (event["stage"], event["message"])
                after = max(after, event["seq"])
            if live is not None:
                live.update(_render(stages))
            if job["state"] != "running" or time.monotonic() > deadline:
                break
            job = api.get(f"/v1/deployments/{job['id']}", after=after, wait=5)
    if live is not None and not console.is_terminal:
        console.print()  # off a terminal, Live prints its last frame without ending the line
    final: dict[str, Any] = api.get(f"/v1/deployments/{job['id']}")
    return final


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    while block := handle.read(1 << 20):
        yield block
