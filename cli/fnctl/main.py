"""The ``fnctl`` entry point: one click group, one module per noun."""

from __future__ import annotations

from typing import Any

import click

from fn import FnError

from . import deploy, flows, functions, jobs, keys, local, schedules, secrets, traces, traffic


class _Group(click.Group):
    """Turns the platform's errors into one clear line and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FnError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fn-platform", prog_name="fnctl")
def cli() -> None:
    """Deploy Python functions and models as autoscaling, scale-to-zero endpoints on Ray Serve.

    The platform is found through FN_API_URL and FN_API_KEY, or the credentials file that
    'fnctl up' writes under FN_HOME (default ~/.fn).
    """


for command in (*local.COMMANDS, deploy.deploy, *functions.COMMANDS, *traffic.COMMANDS):
    cli.add_command(command)
cli.add_command(keys.keys)
cli.add_command(secrets.secrets)
cli.add_command(flows.flow)
cli.add_command(traces.trace)
cli.add_command(traffic.shadow)
cli.add_command(jobs.jobs)
cli.add_command(schedules.schedules)


def _broken(name: str, error: BaseException) -> click.Command:
    @click.command(name, help=f"(could not be loaded: {type(error).__name__})", context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        raise click.ClickException(f"the command group {name!r} is installed but failed to load: "
                                   f"{type(error).__name__}: {error}; reinstall the package that provides it")

    return command


def add_plugins(group: click.Group) -> None:
    """Command groups other packages provide under the ``fnctl.commands`` entry point (applications add theirs
    this way; the platform CLI names none). One that fails to load says so when used, and breaks nothing else."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="fnctl.commands"):
        if entry.name in group.commands:
            continue  # the platform's own commands cannot be replaced
        try:
            command = entry.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break fnctl
            command = _broken(entry.name, exc)
        group.add_command(command, entry.name)


add_plugins(cli)


if __name__ == "__main__":
    cli()
