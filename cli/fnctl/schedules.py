"""``fnctl schedules ls|history|pause|resume``: functions deployed with ``schedule=fn.Cron(...)`` or ``fn.Period(...)``."""

from __future__ import annotations

from typing import Any

import click

from ._api import Api
from ._output import console, json_option, print_json
from .jobs import error_text, print_rows, short_time, shorten


@click.group()
def schedules() -> None:
    """Scheduled functions: when they run next, what their runs did, and pausing them.

    A function deployed with schedule=fn.Cron('*/5 * * * *') or fn.Period(seconds=30) runs as a job with
    no arguments at each tick, once per tick however many control planes run.

    \b
        fnctl schedules ls
        fnctl schedules history nightly-report --limit 5
    """


@schedules.command("ls")
@json_option
def list_schedules(as_json: bool) -> None:
    """List the scheduled functions: schedule, paused or not, next and last tick, the last run's job and status.

    \b
        fnctl schedules ls --json
    """
    found: list[dict[str, Any]] = Api().get("/v1/schedules")
    if as_json:
        print_json(found)
        return
    print_rows(["NAME", "SCHEDULE", "STATE", "NEXT", "LAST", "LAST JOB", "LAST STATUS"],
               [[s["name"], s["schedule"], "paused" if s["paused"] else "active", short_time(s.get("next_at")),
                 short_time(s.get("last_at")), s.get("last_job"), s.get("last_status")] for s in found],
               "no schedules; deploy a function with @fn.function(schedule=fn.Cron('0 * * * *'))",
               whole=("NAME", "STATE", "LAST JOB"))


@schedules.command("history")
@click.argument("name")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000), help="Newest runs shown.")
@json_option
def history(name: str, limit: int, as_json: bool) -> None:
    """Show the newest runs of NAME's schedule: each run's job, status, times and error.

    A run's job can be read with 'fnctl jobs get JOB' and, once failed, re-driven with 'fnctl jobs retry JOB'.

    \b
        fnctl schedules history nightly-report --limit 5
    """
    found: dict[str, Any] = Api().get(f"/v1/schedules/{name}", limit=limit)
    if as_json:
        print_json(found)
        return
    _print_header(found)
    print_rows(["JOB", "STATUS", "CREATED", "FINISHED", "ERROR"],
               [[r["job"], r["status"], short_time(r.get("created")), short_time(r.get("finished")),
                 shorten(error_text(r.get("error")))] for r in found["runs"]],
               "no runs yet", whole=("JOB", "STATUS"))


def _print_header(found: dict[str, Any]) -> None:
    state = "paused" if found.get("paused") else "active"
    console.print(f"[bold]{found['name']}[/]: {found.get('schedule') or '-'} ({state})")


@schedules.command("pause")
@click.argument("name")
@json_option
def pause(name: str, as_json: bool) -> None:
    """Stop running NAME on its schedule until 'fnctl schedules resume NAME'; ticks meanwhile are skipped.

    A redeploy keeps the schedule paused; a run already queued or running is not cancelled ('fnctl jobs cancel').

    \b
        fnctl schedules pause nightly-report
    """
    found: dict[str, Any] = Api().post(f"/v1/schedules/{name}/pause", None)
    if as_json:
        print_json(found)
        return
    click.echo(f"paused {name}: it runs again after 'fnctl schedules resume {name}'")


@schedules.command("resume")
@click.argument("name")
@json_option
def resume(name: str, as_json: bool) -> None:
    """Run NAME on its schedule again, from its next tick (ticks missed while paused are not run).

    \b
        fnctl schedules resume nightly-report
    """
    found: dict[str, Any] = Api().post(f"/v1/schedules/{name}/resume", None)
    if as_json:
        print_json(found)
        return
    click.echo(f"resumed {name}: {found.get('schedule') or 'its schedule'}, from its next tick")
